// The whole prediction without HTTP: decode -> preprocess -> infer -> postprocess. Images are decoded and
// preprocessed one by one and inferred as one batch; a Batcher gathers concurrent requests into those batches.
import type { Tensor3D, Tensor4D } from '@tensorflow/tfjs-node';
import { decodeImage, type DecodeOptions } from '../image/decode';
import { createPreprocessor } from '../image/preprocess';
import { readOut, type Tf } from '../runtime';
import { Batcher, type BatcherOptions, type Settled } from './batcher';
import { Model } from './model';
import { topPredictions, type Prediction } from './postprocess';

/** What the decode stage hands on: RGB pixels [H, W, 3] valued 0..255 (the caller disposes) and what the file was. */
export interface DecodedImage {
  pixels: Tensor3D;
  format: string;
  width: number;
  height: number;
}

/** The stages, each a plain function the batch runner composes. */
export interface Stages {
  tf: Tf;
  model: Pick<Model, 'predict' | 'inputSize' | 'numClasses' | 'labels'>;
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

export interface PredictJob {
  bytes: Uint8Array;
  topk: number;
}

export interface PipelineResult {
  predictions: Prediction[];
  source: PreparedImage['source'];
  /** For logs and metrics: images in the model call, its time, and the wait before the batch started (pool only). */
  timing: { batchSize: number; inferMs: number; queuedMs?: number };
}

export interface Pipeline {
  readonly numClasses: number;
  /**
   * Top-`topk` predictions for one encoded image. Concurrent calls are batched; aborting `signal` drops a call
   * still queued (it rejects with the signal's reason and never runs).
   */
  predict(bytes: Uint8Array, topk: number, options?: { signal?: AbortSignal }): Promise<PipelineResult>;
}

/** Stage 1+2: encoded bytes -> plain float32 input; every tensor made here is disposed here. */
async function prepare(stages: Stages, bytes: Uint8Array): Promise<PreparedImage> {
  const decoded = await stages.decode(bytes);
  try {
    const input = readOut<Float32Array>(stages.tf, () => stages.preprocess(decoded.pixels));
    return { input, source: { format: decoded.format, width: decoded.width, height: decoded.height } };
  } finally {
    decoded.pixels.dispose();
  }
}

/**
 * Stage 3: a batch of prepared inputs -> one row of C logits per image, in one model call. An image's logits do not
 * depend on the batch around it (the session graph gives every matrix product at least two rows).
 */
function infer(stages: Stages, inputs: Float32Array[]): Float32Array[] {
  const { tf, model } = stages;
  const { height, width } = model.inputSize;
  const size = height * width * 3;
  const batch = new Float32Array(inputs.length * size);
  inputs.forEach((input, i) => batch.set(input, i * size));
  const logits = readOut<Float32Array>(tf, () => model.predict(tf.tensor4d(batch, [inputs.length, height, width, 3], 'float32') as Tensor4D));
  const classes = model.numClasses;
  return inputs.map((_, i) => logits.slice(i * classes, (i + 1) * classes));
}

/**
 * Runs one batch of jobs: each image prepared on its own (a bad upload fails only its job), all prepared images
 * inferred in one model call, each answered with its own top-k. `progress` hears of each step before it starts.
 * After each image, `more` may hand over jobs that arrived meanwhile: they join this batch, answered after the
 * others in the order they came. The model call's step says how many images it takes.
 */
export async function runBatch(
  stages: Stages,
  jobs: PredictJob[],
  progress: (step: { index: number; job: PredictJob } | { infer: number }) => void = () => undefined,
  more: () => PredictJob[] = () => [],
): Promise<Settled<PipelineResult>[]> {
  const all = [...jobs];
  const prepared: Settled<PreparedImage>[] = [];
  for (let index = 0; index < all.length; index++) {
    progress({ index, job: all[index] });
    try {
      prepared.push({ ok: true, value: await prepare(stages, all[index].bytes) });
    } catch (error) {
      prepared.push({ ok: false, error });
    }
    all.push(...more());
  }
  const ready = prepared.flatMap((p, i) => (p.ok ? [{ i, image: p.value }] : []));
  let logits: Float32Array[] = [];
  let failure: Settled<PipelineResult> | undefined;
  progress({ infer: ready.length });
  const started = performance.now();
  try {
    if (ready.length > 0) logits = infer(stages, ready.map((r) => r.image.input));
  } catch (error) {
    failure = { ok: false, error };
  }
  const results: Settled<PipelineResult>[] = prepared.map((p) => (p.ok ? (failure ?? { ok: false, error: new Error('not inferred') }) : p));
  if (!failure) {
    const timing = { batchSize: ready.length, inferMs: performance.now() - started };
    ready.forEach(({ i, image }, k) => {
      try {
        results[i] = { ok: true, value: { predictions: topPredictions(stages.tf, logits[k], all[i].topk, stages.model.labels), source: image.source, timing } };
      } catch (error) {
        results[i] = { ok: false, error };
      }
    });
  }
  return results;
}

/** A pipeline that runs its batches in this thread (tests, scripts); the server's workers call runBatch directly. */
export function createPipeline(stages: Stages, batching: BatcherOptions = { maxBatch: 16, maxDelayMs: 0 }): Pipeline {
  const batcher = new Batcher<PredictJob, PipelineResult>([(jobs) => runBatch(stages, jobs)], batching);
  return {
    numClasses: stages.model.numClasses,
    predict: (bytes, topk, options = {}) => batcher.submit({ bytes, topk }, options.signal),
  };
}

/** The stages of the project's decoder and PIL-exact preprocessor around a loaded model. */
export function createStages(tf: Tf, model: Model, options: DecodeOptions): Stages {
  const { height, width } = model.inputSize;
  const { mean, std } = model.metadata;
  return {
    tf,
    model,
    decode: (bytes) => decodeImage(tf, bytes, options),
    preprocess: createPreprocessor(tf, { height, width, mean, std }),
  };
}

/**
 * Loads and warms the model in `modelDir` (Model.load) and wires the project's decoder and PIL-exact preprocessor
 * to it: the same stages the server's workers run, in this thread, for use without HTTP (tests, scripts).
 */
export async function loadPipeline(
  tf: Tf,
  modelDir: string,
  options: { maxPixels: number; honourExif: boolean },
): Promise<{ pipeline: Pipeline; model: Model }> {
  const model = await Model.load(tf, modelDir);
  return { pipeline: createPipeline(createStages(tf, model, options)), model };
}
