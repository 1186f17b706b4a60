// Measures ResNet18-sized inference (64x64 input) under TensorFlow thread-pool settings; picks src/runtime's default.
// Usage: npx tsx bench/runtime-threads.ts [--rounds 3] [--model model_tfjs]
// Each setting runs in its own process (threads are fixed at load); --model times a converted graph model instead.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadRuntime, type Tf } from '../src/runtime';

/** Thread pool sizes and whether TensorFlow's oneDNN CPU kernels are on. */
interface Setting { intra: number; inter: number; oneDnn: boolean }
interface Sample { batch1Ms: number; batch1CpuMs: number; batch8Ms: number }

// TensorFlow's own default is one thread per core in each pool (2 and 2 on the target machine).
const CORES = os.cpus().length;
const SETTINGS: Setting[] = [true, false].flatMap((oneDnn) => [
  ...(CORES > 2 ? [{ intra: CORES, inter: CORES, oneDnn }] : []),
  { intra: 1, inter: 1, oneDnn },
  { intra: 2, inter: 1, oneDnn },
  { intra: 1, inter: 2, oneDnn },
  { intra: 2, inter: 2, oneDnn },
]);

/** ResNet18's layer shapes (BatchNorm folded into the convolutions, as the converter emits) with random weights. */
function resnet18(tf: Tf, classes: number): import('@tensorflow/tfjs-node').LayersModel {
  const conv = (x: import('@tensorflow/tfjs-node').SymbolicTensor, filters: number, kernel: number, stride: number) =>
    tf.layers.conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'same' }).apply(x) as typeof x;
  const relu = (x: import('@tensorflow/tfjs-node').SymbolicTensor) => tf.layers.reLU().apply(x) as typeof x;
  const input = tf.input({ shape: [64, 64, 3] });
  let x = relu(conv(input, 64, 7, 2));
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(x) as typeof x;
  for (const [filters, stride] of [[64, 1], [64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1]]) {
    const shortcut = stride === 1 && x.shape[3] === filters ? x : conv(x, filters, 1, stride);
    const y = conv(relu(conv(x, filters, 3, stride)), filters, 3, 1);
    x = relu(tf.layers.add().apply([y, shortcut]) as typeof x);
  }
  x = tf.layers.globalAveragePooling2d({}).apply(x) as typeof x;
  return tf.model({ inputs: input, outputs: tf.layers.dense({ units: classes }).apply(x) as typeof x });
}

/** Child side: load with one setting, time median latency of batch 1 and batch 8, print a Sample. */
async function measure(setting: Setting, modelDir: string | undefined): Promise<void> {
  const { tf } = loadRuntime({ device: 'cpu', intraOpThreads: setting.intra, interOpThreads: setting.inter });
  const model = modelDir === undefined
    ? resnet18(tf, 102)
    : await tf.loadGraphModel(tf.io.fileSystem(path.resolve(modelDir, 'model.json')));
  /** Median wall time and mean CPU time (all threads of the process) per prediction, after 3 warm-up runs. */
  const time = (batch: number, runs: number): { wallMs: number; cpuMs: number } => {
    const input = tf.randomNormal([batch, 64, 64, 3]);
    const times: number[] = [];
    let cpu = process.cpuUsage();
    for (let i = 0; i < runs + 3; i++) {
      if (i === 3) cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      const out = model.predict(input) as import('@tensorflow/tfjs-node').Tensor;
      out.dataSync();
      out.dispose();
      if (i >= 3) times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    const used = process.cpuUsage(cpu);
    input.dispose();
    return { wallMs: times.sort((a, b) => a - b)[Math.floor(times.length / 2)], cpuMs: (used.user + used.system) / 1e3 / runs };
  };
  const one = time(1, 40);
  const sample: Sample = { batch1Ms: one.wallMs, batch1CpuMs: one.cpuMs, batch8Ms: time(8, 12).wallMs };
  process.stdout.write(`${JSON.stringify(sample)}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '3' }, model: { type: 'string' }, child: { type: 'string' } },
  });
  if (values.child !== undefined) {
    await measure(JSON.parse(values.child) as Setting, values.model);
    return;
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be a positive integer, got ${values.rounds}`);
  const results = new Map<Setting, Sample[]>(SETTINGS.map((s) => [s, []]));
  // Rounds interleave the settings so that load from other processes on the machine spreads over all of them.
  for (let r = 0; r < rounds; r++) {
    for (const setting of SETTINGS) {
      const child = spawnSync(process.execPath,
        ['-r', require.resolve('tsx/cjs'), path.join(__dirname, 'runtime-threads.ts'), '--child', JSON.stringify(setting),
          ...(values.model === undefined ? [] : ['--model', values.model])],
        { encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', TF_ENABLE_ONEDNN_OPTS: setting.oneDnn ? '1' : '0' } });
      if (child.status !== 0) throw new Error(`measurement for ${JSON.stringify(setting)} failed: ${child.stderr}`);
      const lines = child.stdout.trim().split('\n');
      results.get(setting)!.push(JSON.parse(lines[lines.length - 1]) as Sample);
    }
  }
  const best = (xs: number[]) => Math.min(...xs).toFixed(1);
  console.log(`${values.model ?? 'ResNet18-shaped layers model'}; ${CORES} CPUs (${os.cpus()[0].model}), ` +
    `${rounds} rounds, best of the per-round medians`);
  console.log('| intra-op | inter-op | oneDNN | batch 1 (ms) | batch 1 CPU (ms) | batch 8 (ms) |\n|---|---|---|---|---|---|');
  for (const [s, samples] of results) {
    console.log(`| ${s.intra} | ${s.inter} | ${s.oneDnn ? 'on' : 'off'} | ${best(samples.map((x) => x.batch1Ms))} | ${best(samples.map((x) => x.batch1CpuMs))} | ` +
      `${best(samples.map((x) => x.batch8Ms))} |`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
