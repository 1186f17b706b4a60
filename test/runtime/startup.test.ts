// Startup in fresh processes (one binding per process): device choice, GPU refusal, GPU binding parity, thread pools.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RuntimeInfo } from '../../src/runtime';
import { info, tf } from '../helpers/runtime';
import { INPUT_SHAPE, seeded, tinyGraphModel } from '../helpers/tiny-graph-model';

const ROOT = path.resolve(__dirname, '../..');
// No NVIDIA driver here means no CUDA device: CI and the dev machine have none.
const HAS_NVIDIA = existsSync('/dev/nvidiactl');
const GPU_MARKER = path.join(ROOT, 'node_modules/@tensorflow/tfjs-node-gpu/deps/provisioned-from');

/** Runs `code` (TypeScript allowed) in a fresh Node process at the repo root, without inherited TF settings. */
function runChild(code: string, env: Record<string, string> = {}): { stdout: string; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env };
  for (const name of ['TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'TF_ENABLE_ONEDNN_OPTS', 'DEVICE']) {
    if (!(name in env)) delete childEnv[name];
  }
  const child = spawnSync(process.execPath, ['-r', require.resolve('tsx/cjs'), '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    env: childEnv,
    timeout: 120_000,
  });
  assert.is(child.status, 0, `child failed: ${child.stderr}`);
  return child;
}

/** The JSON that `code` prints last. */
function inChild<T>(code: string, env: Record<string, string> = {}): T {
  const lines = runChild(code, env).stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

interface Outcome { info?: RuntimeInfo; error?: string; bindingModulesLoaded: string[] }
const startup = (opts: string) => `
  const { loadRuntime } = require('./src/runtime');
  const bindingModulesLoaded = () => Object.keys(require.cache).filter((k) => /tfjs-node(-gpu)?[\\\\/]dist[\\\\/]/.test(k));
  try {
    const { info } = loadRuntime(${opts});
    console.log(JSON.stringify({ info, bindingModulesLoaded: [...new Set(bindingModulesLoaded().map((k) => k.includes('tfjs-node-gpu') ? 'gpu' : 'cpu'))] }));
  } catch (e) {
    console.log(JSON.stringify({ error: e.message, bindingModulesLoaded: bindingModulesLoaded() }));
  }`;

test('the GPU binding is provisioned (make setup-gpu), so the GPU cases below are exercised', () => {
  assert.ok(existsSync(GPU_MARKER), `${GPU_MARKER} is missing: run \`make setup-gpu\` (make test depends on it)`);
});

test("an explicit 'gpu' without a CUDA device is a startup error that says why, and loads no binding", () => {
  const out = inChild<Outcome>(startup("{ device: 'gpu' }"));
  if (HAS_NVIDIA) {
    assert.is(out.info?.device, 'gpu', out.error);
    return;
  }
  assert.is(out.info, undefined);
  assert.match(out.error ?? '', new RegExp("^device 'gpu' requested but TensorFlow's CUDA build \\(@tensorflow/tfjs-node-gpu\\) " +
    'found no CUDA device \\(.*cu(da|Init).*\\); choose device cpu or auto \\(--device, DEVICE\\) to run on the CPU$'));
  assert.equal(out.bindingModulesLoaded, []);
});

test("'auto' without a CUDA device loads the CPU binding only", () => {
  const out = inChild<Outcome>(startup("{ device: 'auto' }"));
  assert.is(out.error, undefined);
  assert.is(out.info?.binding, HAS_NVIDIA ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
  assert.is(out.info?.device, HAS_NVIDIA ? 'gpu' : 'cpu');
  assert.equal(out.bindingModulesLoaded, [HAS_NVIDIA ? 'gpu' : 'cpu']);
});

test('the GPU binding, running on the CPU, predicts what the CPU binding predicts and resizes alike', async () => {
  interface GpuRun { backend: string; tfVersion: string; onGpu: boolean; logits: number[]; resized: number[] }
  // The PilResample op registers into whichever TensorFlow the process has loaded: the same resize in both.
  const resize = `
    const pixels = tf.tensor3d(Array.from({ length: 20 * 30 * 3 }, (_, i) => (i * 37) % 256), [20, 30, 3], 'int32');
    const resized = Array.from(readOut(tf, () => resizeBilinearPil(tf, pixels, resizeWeights(20, 30, 7, 9)).toInt()));
    pixels.dispose();`;
  // Required directly: loadRuntime rightly refuses the GPU binding where no CUDA device exists.
  const gpu = inChild<GpuRun>(`
    const tf = require('@tensorflow/tfjs-node-gpu');
    const { INPUT_SHAPE, seeded, tinyGraphModel } = require('./test/helpers/tiny-graph-model');
    const { readOut } = require('./src/runtime');
    const { resizeBilinearPil, resizeWeights } = require('./src/image/pil-resize');
    ${resize}
    tf.loadGraphModel(tf.io.fromMemory(tinyGraphModel())).then((model) => {
      const out = model.execute({ input: tf.tensor4d(seeded(4 * 16 * 16 * 3, 42, 2), [4, ...INPUT_SHAPE]) }, 'logits');
      const b = tf.backend();
      console.log(JSON.stringify({ backend: tf.getBackend(), tfVersion: b.binding.TF_Version, onGpu: b.isUsingGpuDevice,
        logits: Array.from(out.dataSync()), resized }));
    });`);
  assert.is(gpu.backend, 'tensorflow');
  assert.is(gpu.tfVersion, info.tfVersion);
  assert.is(gpu.onGpu, HAS_NVIDIA);

  const model = await tf.loadGraphModel(tf.io.fromMemory(tinyGraphModel()));
  const input = tf.tensor4d(seeded(4 * 16 * 16 * 3, 42, 2), [4, ...INPUT_SHAPE]);
  const out = model.execute({ input }, 'logits') as import('@tensorflow/tfjs-node').Tensor;
  const cpu = out.dataSync();
  tf.dispose([input, out]);
  model.dispose();
  assert.is(gpu.logits.length, cpu.length);
  let maxDiff = 0;
  let maxRef = 0;
  cpu.forEach((v, i) => {
    maxDiff = Math.max(maxDiff, Math.abs(v - gpu.logits[i]));
    maxRef = Math.max(maxRef, Math.abs(v));
  });
  assert.ok(maxDiff <= 1e-5 * maxRef, `max abs diff ${maxDiff} exceeds 1e-5 x max |logit| ${maxRef}`);
  const cpuResized = inChild<{ resized: number[] }>(`
    const { tf } = require('./src/runtime').loadRuntime({ device: 'cpu' });
    const { readOut } = require('./src/runtime');
    const { resizeBilinearPil, resizeWeights } = require('./src/image/pil-resize');
    ${resize}
    console.log(JSON.stringify({ resized }));`);
  assert.is(gpu.resized.length, 7 * 9 * 3);
  assert.equal(gpu.resized, cpuResized.resized);
});

// How many OS threads each setting starts is measured by bench/runtime-threads.ts, not asserted here.
test('thread counts reach TensorFlow: options and env variables become the pools TensorFlow is given', () => {
  interface Threads { info: RuntimeInfo; env: (string | null)[] }
  const run = (opts: string, env: Record<string, string> = {}) => inChild<Threads>(`
    const { info } = require('./src/runtime').loadRuntime(${opts});
    console.log(JSON.stringify({ info,
      env: [process.env.TF_NUM_INTRAOP_THREADS ?? null, process.env.TF_NUM_INTEROP_THREADS ?? null] }));`, env);
  const small = run("{ device: 'cpu', intraOpThreads: 1, interOpThreads: 1 }");
  const large = run("{ device: 'cpu', intraOpThreads: 4, interOpThreads: 4 }");
  assert.equal([small.info.intraOpThreads, small.info.interOpThreads, ...small.env], [1, 1, '1', '1']);
  assert.equal([large.info.intraOpThreads, large.info.interOpThreads, ...large.env], [4, 4, '4', '4']);
  // Unset: the measured defaults, one thread inside an op and sessions run by their caller, passed to TensorFlow.
  const unset = run("{ device: 'cpu' }");
  assert.equal([unset.info.intraOpThreads, unset.info.interOpThreads, ...unset.env], [1, -1, '1', '-1']);
  const fromEnv = run("{ device: 'cpu' }", { TF_NUM_INTRAOP_THREADS: '3' });
  assert.equal([fromEnv.info.intraOpThreads, fromEnv.info.interOpThreads, ...fromEnv.env], [3, -1, '3', '-1']);
  const tfDefault = run("{ device: 'cpu' }", { TF_NUM_INTEROP_THREADS: '0' });
  assert.equal([tfDefault.info.interOpThreads, tfDefault.env[1]], [0, '0']);
});

test("by default a session runs in the calling thread; with an inter-op pool, the pool's threads run it", () => {
  // CPU time of TensorFlow's pool threads (named tf_*) and of the calling thread while a session model predicts,
  // from the kernel's nanosecond counters (/proc/<tid>/schedstat).
  const run = (opts: string) => inChild<{ pool: number; caller: number }>(`
    const { readdirSync, readFileSync } = require('node:fs');
    const { loadRuntime } = require('./src/runtime');
    const { Model } = require('./src/engine/model');
    const { tempDir, writeTinyModel } = require('./test/helpers/app');
    const { tf } = loadRuntime(${opts});
    const ns = (tid) => Number(readFileSync('/proc/self/task/' + tid + '/schedstat', 'utf8').split(' ')[0]);
    const poolNs = () => readdirSync('/proc/self/task')
      .filter((t) => readFileSync('/proc/self/task/' + t + '/comm', 'utf8').startsWith('tf_'))
      .reduce((sum, t) => sum + ns(t), 0);
    Model.load(tf, writeTinyModel(tempDir('inline')).dir).then((model) => {
      const input = tf.ones([4, 8, 8, 3]);
      tf.dispose(model.predict(input));
      const pool0 = poolNs(), caller0 = ns(process.pid);
      for (let i = 0; i < 500; i++) tf.dispose(model.predict(input));
      console.log(JSON.stringify({ pool: poolNs() - pool0, caller: ns(process.pid) - caller0 }));
    });`);
  const inline = run("{ device: 'cpu' }");
  const pooled = run("{ device: 'cpu', interOpThreads: 1 }");
  assert.ok(inline.pool < 0.02 * inline.caller, `sessions in the caller: pool threads ran ${inline.pool} ns, the caller ${inline.caller} ns`);
  assert.ok(pooled.pool > 0.1 * pooled.caller, `an inter-op pool: its threads ran ${pooled.pool} ns, the caller ${pooled.caller} ns`);
});

test('oneDNN is off unless TF_ENABLE_ONEDNN_OPTS turns it on, and TensorFlow follows', () => {
  const code = `const { info } = require('./src/runtime').loadRuntime({ device: 'cpu' }); console.log(JSON.stringify(info.oneDnn));`;
  // TensorFlow announces oneDNN when it is on, whatever TF_CPP_MIN_LOG_LEVEL says.
  const announce = /oneDNN custom operations are on/;
  const off = runChild(code);
  assert.is(off.stdout.trim(), 'false');
  assert.not.match(off.stderr, announce);
  const on = runChild(code, { TF_ENABLE_ONEDNN_OPTS: 'true' });
  assert.is(on.stdout.trim(), 'true');
  assert.match(on.stderr, announce);
  const bad = inChild<Outcome>(startup("{ device: 'cpu' }"), { TF_ENABLE_ONEDNN_OPTS: 'yes' });
  assert.is(bad.error, 'TF_ENABLE_ONEDNN_OPTS must be 0, 1, true or false, got "yes"');
});

test.run();
