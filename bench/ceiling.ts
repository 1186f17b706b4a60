// Ceiling of the benchmark: per-image decode, preprocess and inference cost outside any server; prints JSON (a Ceiling).
import { readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import path from 'node:path';
import type { Tensor as TfTensor, Tensor4D } from '@tensorflow/tfjs-node';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { parseConfig } from '../src/config';
import { decodeImage } from '../src/image/decode';
import { Model, readModelFolder, writeSessionModel } from '../src/engine/model';
import { PANEL, runPackedConv } from '../src/engine/packed-conv';
import { createPreprocessor } from '../src/image/preprocess';
import { loadRuntime, readOut, type Tf } from '../src/runtime';
import { interOpWords, median, medianStage, type Ceiling, type ModelOnly, type Stage, type StageCosts } from './report';

const INFER_WARMUP = 5;
const INFER_RUNS = 50;
const BATCH = 32;
const PHOTO_RUNS = 3;
const STREAM_PASSES = 5;
// One untimed call per photo first: the server has warmed up too (caches such as resize weights per image size).
const PHOTO_WARMUP = 1;

/** Best wall time and mean CPU time (all threads of this process) of `fn` in milliseconds, after `warmup` calls. */
async function measure(fn: () => unknown, runs: number, warmup = 0): Promise<Stage> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const cpu = process.cpuUsage(cpuBefore);
  // The best run is the ceiling: slower ones waited for a core another process held.
  return { ms: Math.min(...times), cpuMs: (cpu.user + cpu.system) / 1000 / runs };
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const meanStage = (stages: Stage[]): Stage => ({ ms: mean(stages.map((s) => s.ms)), cpuMs: mean(stages.map((s) => s.cpuMs)) });

async function main(): Promise<void> {
  const { values, positionals: photos } = parseArgs({
    allowPositionals: true,
    options: { 'model-dir': { type: 'string' }, onnx: { type: 'string' }, 'stages-only': { type: 'boolean' } },
  });
  if (!values['model-dir'] || (!values.onnx && !values['stages-only']) || photos.length === 0) {
    throw new Error('usage: ceiling.ts --model-dir model_tfjs (--onnx .cache/convert/model.onnx | --stages-only) photo...');
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
  const infer = await measure(
    () => readOut(tf, () => model.predict(tf.tensor4d(input, [1, height, width, 3]) as Tensor4D)),
    INFER_RUNS,
    INFER_WARMUP,
  );
  // And as a loaded server runs it: batches of 32, per image.
  const batch = new Float32Array(BATCH * input.length).map((_, i) => input[i % input.length]);
  const batched = await measure(
    () => readOut(tf, () => model.predict(tf.tensor4d(batch, [BATCH, height, width, 3]) as Tensor4D)),
    Math.ceil(INFER_RUNS / 4),
    INFER_WARMUP,
  );
  const inferBatched = { ms: batched.ms / BATCH, cpuMs: batched.cpuMs / BATCH };

  const decode: Stage[] = [];
  const preprocessing: Stage[] = [];
  const pipeline: Stage[] = [];
  const options = { maxPixels: config.maxPixels, honourExif: config.honourExif };
  const lone = async (bytes: Uint8Array) => {
    const decoded = await decodeImage(tf, bytes, options);
    const prepared = readOut<Float32Array>(tf, () => preprocess(decoded.pixels));
    decoded.pixels.dispose();
    readOut(tf, () => model.predict(tf.tensor4d(prepared, [1, height, width, 3]) as Tensor4D));
  };
  const uploads = photos.map((photo) => new Uint8Array(readFileSync(photo)));
  for (const bytes of uploads) {
    decode.push(await measure(async () => (await decodeImage(tf, bytes, options)).pixels.dispose(), PHOTO_RUNS, PHOTO_WARMUP));
    const { pixels } = await decodeImage(tf, bytes, options);
    preprocessing.push(await measure(() => readOut(tf, () => preprocess(pixels)), PHOTO_RUNS, PHOTO_WARMUP));
    pixels.dispose();
    // The three stages one after the other, as a lone request runs them, rather than trusting the sum of the stages
    // measured alone to hold for their sequence.
    pipeline.push(await measure(() => lone(bytes), PHOTO_RUNS, PHOTO_WARMUP));
  }
  // Lone requests as the load generator sends them at concurrency 1: every photo in turn, once per pass. A p50
  // latency is the median of single requests, so it compares with the median of these single runs, not with a best.
  const stream: Stage[] = [];
  for (let pass = 0; pass < STREAM_PASSES; pass++) for (const bytes of uploads) stream.push(await measure(() => lone(bytes), 1));
  model.dispose();
  const stages: StageCosts = {
    decode: meanStage(decode),
    preprocess: meanStage(preprocessing),
    infer,
    pipeline: meanStage(pipeline),
    pipelineMedian: medianStage(pipeline),
    loneStream: { ms: median(stream.map((s) => s.ms)), cpuMs: mean(stream.map((s) => s.cpuMs)) },
    inferBatched,
  };
  if (values['stages-only'] || !values.onnx) {
    process.stdout.write(`${JSON.stringify(stages)}\n`);
    return;
  }

  // The same model through onnxruntime-node with default options, as the ort baseline runs it (NCHW).
  const session = await InferenceSession.create(values.onnx);
  const feeds = { [session.inputNames[0]]: new Tensor('float32', input, [1, 3, height, width]) };
  const ortInfer = await measure(() => session.run(feeds), INFER_RUNS, INFER_WARMUP);
  await session.release();

  const modelOnly = await modelPaths(tf, model0(values['model-dir']), values.onnx, height, width, fp32Peak(tf));

  const ceiling: Omit<Ceiling, 'otherCores'> = {
    backend:
      `${info.backend} on ${info.device}, TensorFlow ${info.tfVersion}, intra-op threads ${info.intraOpThreads}, ` +
      `${interOpWords(info.interOpThreads)}, oneDNN ${info.oneDnn ? 'on' : 'off'}, convolutions ${info.convolutions}`,
    ...stages,
    ortInfer,
    modelOnly,
  };
  process.stdout.write(`${JSON.stringify(ceiling)}\n`);
}

/**
 * One thread's FP32 rate on a 1024x1024 product, best of 8 warm runs, through the faster of TensorFlow's MatMul and
 * our PackedConv2D (as a 1 x 1 convolution of 1024 pixels).
 */
function fp32Peak(tf: Tf): number {
  const size = 1024;
  const a = tf.randomNormal([size, size]);
  const packed = tf.randomNormal([size / PANEL, size, PANEL]);
  const bias = tf.zeros([size]);
  const products = [() => tf.matMul(a, a), () => runPackedConv(tf, { kernel: [1, 1], padding: 'VALID' }, a, packed, bias)];
  let best = Infinity;
  for (const product of products) {
    for (let i = 0; i < 10; i++) {
      const start = process.hrtime.bigint();
      readOut(tf, product);
      if (i >= 2) best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }
  tf.dispose([a, packed, bias]);
  return (2 * size ** 3) / best / 1e9;
}

/** The model folder's graph model for the op-by-op path (the converter's artifact, as tfjs runs it). */
function model0(dir: string) {
  return { dir, json: JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[]; weights: object[] }[] } };
}

/** Rounds of the model-only measurement; in each, every path runs a block at every batch size in turn. */
const MODEL_ROUNDS = 4;

/**
 * Milliseconds per image (best of repeats) at batch 1, 8 and 32 for each way to run the model, all on one thread
 * (as one engine worker runs it): tfjs's op-by-op GraphModel.execute, the server's session, the session with
 * TensorFlow's convolutions, onnxruntime-node. And one thread's FP32 rate on a large matrix product. The paths take
 * turns, a short block each per round (its first run untimed), so that the machine's drift falls on all of them
 * alike, as the servers' slices do.
 */
async function modelPaths(tf: Tf, folder: ReturnType<typeof model0>, onnx: string, height: number, width: number, peakGflops: number): Promise<ModelOnly> {
  const batches = [1, 8, 32];
  const inputs = new Map(batches.map((n) => [n, Float32Array.from({ length: n * height * width * 3 }, (_, i) => Math.sin(i))]));
  const nhwc = (n: number) => tf.tensor4d(inputs.get(n)!, [n, height, width, 3]);
  const shards = Buffer.concat(folder.json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(path.join(folder.dir, p)))));
  const graph = await tf.loadGraphModel(tf.io.fromMemory({ ...(folder.json as object), weightSpecs: folder.json.weightsManifest.flatMap((g) => g.weights), weightData: shards.buffer.slice(shards.byteOffset, shards.byteOffset + shards.byteLength) } as Parameters<Tf['io']['fromMemory']>[0]));
  const model = await Model.load(tf, folder.dir);
  // The same session with TensorFlow's own convolutions (as on a GPU, or a CPU without vector kernels for ours).
  const read = await readModelFolder(folder.dir);
  const plainDir = writeSessionModel(read, { packedConvolutions: false });
  const plain = await Model.fromSession(tf, read.metadata, folder.dir, plainDir);
  rmSync(plainDir, { recursive: true, force: true });
  const ortSession = await InferenceSession.create(onnx, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const paths: Record<'eager' | 'session' | 'sessionTfConv' | 'ort', (n: number) => unknown> = {
    eager: (n) => readOut(tf, () => graph.execute(nhwc(n)) as TfTensor),
    session: (n) => readOut(tf, () => model.predict(nhwc(n) as Tensor4D)),
    sessionTfConv: (n) => readOut(tf, () => plain.predict(nhwc(n) as Tensor4D)),
    ort: (n) => ortSession.run({ [ortSession.inputNames[0]]: new Tensor('float32', inputs.get(n)!, [n, 3, height, width]) }),
  };
  const best = Object.fromEntries(Object.keys(paths).map((name) => [name, Object.fromEntries(batches.map((n) => [n, Infinity]))]));
  for (let round = 0; round < MODEL_ROUNDS; round++) {
    for (const [name, run] of Object.entries(paths)) {
      for (const n of batches) {
        const { ms } = await measure(() => run(n), Math.max(2, Math.ceil(16 / n)), 1);
        best[name][n] = Math.min(best[name][n], ms / n);
      }
    }
  }
  graph.dispose();
  model.dispose();
  plain.dispose();
  await ortSession.release();
  return { eager: best.eager, session: best.session, sessionTfConv: best.sessionTfConv, ort: best.ort, peakGflops };
}

main().then(
  // TensorFlow's thread pools would keep the process alive.
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
