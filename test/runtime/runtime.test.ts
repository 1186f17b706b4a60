// loadRuntime in the test process: the native CPU binding, what it reports, and what it refuses.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type DeviceChoice, loadRuntime } from '../../src/runtime';
import { convolutionKernels } from '../../src/tf-ops';
import { info, tf } from '../helpers/runtime';

/** The TensorFlow version `make setup` builds against, read from the setup script's pin. */
function pinnedTfVersion(): string {
  const script = readFileSync(require.resolve('../../tools/native/setup-binding.sh'), 'utf8');
  const match = /^TF_VERSION=(\S+)$/m.exec(script);
  assert.ok(match, 'tools/native/setup-binding.sh pins TF_VERSION');
  return match[1];
}

test('the tests run on the native TensorFlow backend', () => {
  assert.is(tf.getBackend(), 'tensorflow');
  const sum = tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4]));
  assert.equal(Array.from(sum.dataSync()), [4, 6]);
  sum.dispose();
});

test('info reports the CPU binding, its devices and the pinned TensorFlow version', () => {
  const tfjs = JSON.parse(readFileSync(require.resolve('@tensorflow/tfjs/package.json'), 'utf8')) as { version: string };
  assert.equal(info, {
    binding: '@tensorflow/tfjs-node',
    backend: 'tensorflow',
    device: 'cpu',
    devices: ['CPU'],
    tfVersion: pinnedTfVersion(),
    tfjsVersion: tfjs.version,
    intraOpThreads: 1,
    interOpThreads: -1,
    oneDnn: false,
    convolutions: convolutionKernels().vector ?? 'tensorflow',
  });
});

test('compatible requests get the runtime already loaded', () => {
  assert.is(loadRuntime({ device: 'cpu' }).tf, tf);
  assert.is(loadRuntime({ device: 'auto' }).info, info);
  assert.is(loadRuntime({ device: 'cpu', intraOpThreads: 1, interOpThreads: -1 }).tf, tf);
});

test('a second, different binding or thread setting is refused', () => {
  assert.throws(() => loadRuntime({ device: 'gpu' }), /already loaded.*device 'gpu' \(loaded: @tensorflow\/tfjs-node on cpu\)/);
  assert.throws(() => loadRuntime({ device: 'cpu', intraOpThreads: 3 }), /cannot change: intraOpThreads 3 \(loaded: 1\)/);
  assert.throws(() => loadRuntime({ device: 'auto', interOpThreads: 2 }), /interOpThreads 2 \(loaded: -1\)/);
});

test('bad options are RangeErrors that name the value', () => {
  assert.throws(() => loadRuntime({ device: 'tpu' as DeviceChoice }), (e: Error) =>
    e instanceof RangeError && e.message === 'device must be one of auto, cpu, gpu, got "tpu"');
  for (const bad of [0, -2, 1.5, Number.NaN]) {
    assert.throws(() => loadRuntime({ device: 'cpu', intraOpThreads: bad }), (e: Error) =>
      e instanceof RangeError && /^intraOpThreads must be a positive integer/.test(e.message));
  }
  for (const bad of [-2, 0.5]) {
    assert.throws(() => loadRuntime({ device: 'cpu', interOpThreads: bad }), (e: Error) =>
      e instanceof RangeError && e.message === `interOpThreads must be -1 (sessions run in the calling thread), 0 or a positive integer, got ${bad}`);
  }
  const saved = process.env.TF_NUM_INTEROP_THREADS;
  process.env.TF_NUM_INTEROP_THREADS = 'two';
  try {
    assert.throws(() => loadRuntime({ device: 'cpu' }), (e: Error) =>
      e instanceof RangeError && e.message === 'TF_NUM_INTEROP_THREADS must be -1 (sessions run in the calling thread), 0 or a positive integer, got "two"');
  } finally {
    if (saved === undefined) delete process.env.TF_NUM_INTEROP_THREADS;
    else process.env.TF_NUM_INTEROP_THREADS = saved;
  }
});

test.run();
