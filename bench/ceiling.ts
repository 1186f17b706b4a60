// Ceiling of the benchmark: per-image decode, preprocess and inference cost outside any server; prints JSON (a Ceiling).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { parseConfig } from '../src/config';
import { decodeImage } from '../src/decode';
import { Model } from '../src/model';
import { createPreprocessor } from '../src/preprocess';
import { loadRuntime } from '../src/runtime';
import type { Ceiling } from './report';

const INFER_WARMUP = 5;
const INFER_RUNS = 50;
const PHOTO_RUNS = 3;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median wall time of `fn` in milliseconds over `runs` calls, after `warmup` untimed ones. */
async function timeMs(fn: () => unknown, runs: number, warmup = 0): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(times);
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

async function main(): Promise<void> {
  const { values, positionals: photos } = parseArgs({
    allowPositionals: true,
    options: { 'model-dir': { type: 'string' }, onnx: { type: 'string' } },
  });
  if (!values['model-dir'] || !values.onnx || photos.length === 0) {
    throw new Error('usage: ceiling.ts --model-dir model_tfjs --onnx .cache/convert/model.onnx photo...');
  }
  // The server's own defaults (threads, pixel limit, EXIF), so the stages cost what they cost in the server.
  const defaults = parseConfig([], {});
  if (defaults.help) throw new Error('parseConfig without arguments asked for the usage text');
  const { config } = defaults;
  const { tf, info } = await loadRuntime({ device: 'cpu', intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads });
  const model = await Model.load(tf, values['model-dir']);
  const { height, width } = model.inputSize;
  const preprocess = createPreprocessor(tf, { height, width, mean: model.metadata.mean, std: model.metadata.std });

  // Inference as the pipeline runs it: a float32 NHWC batch of one in, logits read back.
  const input = Float32Array.from({ length: height * width * 3 }, (_, i) => Math.sin(i));
  const inferMs = await timeMs(
    () => tf.tidy(() => model.predict(tf.tensor4d(input, [1, height, width, 3]) as Tensor4D).dataSync()),
    INFER_RUNS,
    INFER_WARMUP,
  );

  const decodeMs: number[] = [];
  const preprocessMs: number[] = [];
  for (const photo of photos) {
    const bytes = new Uint8Array(readFileSync(photo));
    const options = { maxPixels: config.maxPixels, honourExif: config.honourExif };
    decodeMs.push(await timeMs(async () => (await decodeImage(tf, bytes, options)).pixels.dispose(), PHOTO_RUNS));
    const { pixels } = await decodeImage(tf, bytes, options);
    preprocessMs.push(await timeMs(() => tf.tidy(() => preprocess(pixels).dataSync()), PHOTO_RUNS));
    pixels.dispose();
  }
  model.dispose();

  // The same model through onnxruntime-node with default options, as the ort baseline runs it (NCHW).
  const session = await InferenceSession.create(values.onnx);
  const feeds = { [session.inputNames[0]]: new Tensor('float32', input, [1, 3, height, width]) };
  const ortInferMs = await timeMs(() => session.run(feeds), INFER_RUNS, INFER_WARMUP);
  await session.release();

  const threads = info.intraOpThreads === null ? "TensorFlow's default threads" : `${info.intraOpThreads} intra-op threads`;
  const ceiling: Ceiling = {
    backend: `${info.backend} on ${info.device}, TensorFlow ${info.tfVersion}, ${threads}`,
    inferMs,
    ortInferMs,
    decodeMs: mean(decodeMs),
    preprocessMs: mean(preprocessMs),
  };
  process.stdout.write(`${JSON.stringify(ceiling)}\n`);
}

main().then(
  // TensorFlow's thread pools would keep the process alive.
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
