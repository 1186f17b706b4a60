// The whole prediction without HTTP: decode -> preprocess -> infer -> postprocess, one image at a time.
import type { Tensor3D, Tensor4D } from '@tensorflow/tfjs-node';
import { decodeImage } from './decode';
import { Model } from './model';
import { topPredictions, type Prediction } from './postprocess';
import { createPreprocessor } from './preprocess';
import type { Tf } from './runtime';

/** What the decode stage hands on: RGB pixels [H, W, 3] valued 0..255 (the caller disposes) and what the file was. */
export interface DecodedImage {
  pixels: Tensor3D;
  format: string;
  width: number;
  height: number;
}

export interface PipelineDeps {
  tf: Tf;
  model: Model;
  /** bytes -> RGB pixels; throws ServiceError (415/422/413) for what it refuses. Options are already bound. */
  decode: (bytes: Uint8Array) => DecodedImage | Promise<DecodedImage>;
  /** RGB [H, W, 3] (0..255) of any size -> normalised float32 [h, w, 3] at the model's input size (a new tensor). */
  preprocess: (pixels: Tensor3D) => Tensor3D;
}

/** One image ready for the model: float32 NHWC values [h, w, 3] (row-major), plus what the upload was. */
export interface PreparedImage {
  input: Float32Array;
  source: { format: string; width: number; height: number };
}

export interface PipelineResult {
  predictions: Prediction[];
  source: PreparedImage['source'];
}

export interface Pipeline {
  readonly numClasses: number;
  /**
   * Top-`topk` predictions for one encoded image. Calls run one after another (tfjs-node ops block the event
   * loop, so running them interleaved would only add latency); aborting `signal` drops a call still queued.
   */
  predict(bytes: Uint8Array, topk: number, options?: { signal?: AbortSignal }): Promise<PipelineResult>;
}

export function createPipeline(deps: PipelineDeps): Pipeline {
  const { tf, model } = deps;
  const serial = new SerialRunner();

  /** Stage 1+2: encoded bytes -> plain float32 input; every tensor made here is disposed here. */
  async function prepare(bytes: Uint8Array): Promise<PreparedImage> {
    const decoded = await deps.decode(bytes);
    try {
      await nextTurn();
      const input = tf.tidy(() => deps.preprocess(decoded.pixels).dataSync() as Float32Array);
      return { input, source: { format: decoded.format, width: decoded.width, height: decoded.height } };
    } finally {
      decoded.pixels.dispose();
    }
  }

  /** Stage 3: a batch of prepared inputs -> one row of C logits per image. */
  function infer(inputs: Float32Array[]): Float32Array[] {
    const { height, width } = model.inputSize;
    const size = height * width * 3;
    const batch = new Float32Array(inputs.length * size);
    inputs.forEach((input, i) => batch.set(input, i * size));
    const logits = tf.tidy(() => {
      const out = model.predict(tf.tensor4d(batch, [inputs.length, height, width, 3], 'float32') as Tensor4D);
      return out.dataSync() as Float32Array;
    });
    const classes = model.numClasses;
    return inputs.map((_, i) => logits.slice(i * classes, (i + 1) * classes));
  }

  return {
    numClasses: model.numClasses,
    predict(bytes, topk, options = {}) {
      return serial.run(async () => {
        const prepared = await prepare(bytes);
        // Each stage blocks the event loop; letting it turn between them keeps /health and uploads moving.
        await nextTurn();
        const [logits] = infer([prepared.input]);
        return { predictions: topPredictions(tf, logits, topk, model.labels), source: prepared.source };
      }, options.signal);
    },
  };
}

/**
 * Loads and warms the model in `modelDir` (Model.load) and wires the project's decoder and PIL-exact preprocessor
 * to it: the same pipeline the server runs, for use without HTTP (end-to-end tests, scripts).
 */
export async function loadPipeline(
  tf: Tf,
  modelDir: string,
  options: { maxPixels: number; honourExif: boolean },
): Promise<{ pipeline: Pipeline; model: Model }> {
  const model = await Model.load(tf, modelDir);
  const { height, width } = model.inputSize;
  const { mean, std } = model.metadata;
  const preprocess = createPreprocessor(tf, { height, width, mean, std });
  const pipeline = createPipeline({ tf, model, decode: (bytes) => decodeImage(tf, bytes, options), preprocess });
  return { pipeline, model };
}

/** Resolves after pending I/O callbacks have run (one turn of the event loop). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs async jobs strictly one after another, yielding to the event loop between them. */
class SerialRunner {
  private tail: Promise<unknown> = Promise.resolve();

  /** Queues `job`; an abort while it waits rejects at once with the signal's reason and the job never runs. */
  run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const result = this.tail
        .then(nextTurn)
        .then(() => {
          // Once started, a job runs to its end: the signal only guards the wait.
          signal?.removeEventListener('abort', onAbort);
          signal?.throwIfAborted();
          return job();
        });
      this.tail = result.catch(() => undefined);
      result.then(resolve, reject);
    });
  }
}
