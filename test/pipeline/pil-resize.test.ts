// Pillow-exact bilinear resize: the PilResample op against Pillow itself on awkward synthetic sizes, bit for bit.
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { uint8Image } from '../../src/image/decode';
import { bilinearTaps, PRECISION_BITS, resizeBilinearPil, resizeWeights } from '../../src/image/pil-resize';
import { nativeBackend, readOut } from '../../src/runtime';
import { tf } from '../helpers/runtime';
import { pillowResize, type ResizeCase } from './reference';

/** Deterministic bytes (mulberry32), so the cached Pillow output stays valid between runs. */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (t ^ (t >>> 14)) & 0xff;
  }
  return out;
}

function makeCase(name: string, [h, w]: [number, number], size: [number, number], fill?: number): ResizeCase {
  const pixels = fill === undefined ? noise(h * w * 3, h * 7919 + w) : new Uint8Array(h * w * 3).fill(fill);
  return { name, pixels, shape: [h, w, 3], size };
}

const CASES: ResizeCase[] = [
  makeCase('upscale-7x5', [5, 7], [64, 64]),
  makeCase('upscale-1x1', [1, 1], [64, 64]),
  makeCase('row-1xN', [1, 97], [64, 64]),
  makeCase('column-Nx1', [97, 1], [64, 64]),
  makeCase('identity-64', [64, 64], [64, 64]),
  makeCase('photo-1024x683', [683, 1024], [64, 64]),
  makeCase('factor-47', [1500, 3000], [32, 64]),
  makeCase('wide-4000x30', [30, 4000], [64, 64]),
  makeCase('tall-30x4000', [4000, 30], [64, 64]),
  makeCase('mixed-37x100', [100, 37], [13, 71]),
  makeCase('odd-upscale-224', [89, 97], [224, 224]),
  makeCase('to-1x1', [17, 23], [1, 1]),
  // Constant 255: the integer weights of a row may sum past 2^22, so this exercises the clip to 255.
  makeCase('white-clip', [333, 517], [64, 64], 255),
  // Downscales by 100000: 200001 taps per output sample.
  makeCase('int32-wide', [3, 100_000], [3, 1]),
  makeCase('int32-tall', [100_000, 2], [1, 2]),
];

test('resizeBilinearPil is bit-identical to Pillow Image.resize(BILINEAR), from int32 and from uint8 pixels', () => {
  const expected = pillowResize(CASES);
  const before = tf.memory().numTensors;
  for (const c of CASES) {
    const [h, w] = c.shape;
    const [height, width] = c.size;
    const reference = expected.get(c.name)!;
    const asInt32 = tf.tensor3d(Int32Array.from(c.pixels), [h, w, 3], 'int32');
    // Stored as uint8, as the decoders' pixels are.
    const asUint8 = uint8Image(tf, c.pixels, h, w);
    for (const [kind, input] of [['int32', asInt32], ['uint8', asUint8]] as const) {
      const output = resizeBilinearPil(tf, input, resizeWeights(h, w, height, width));
      assert.equal(output.shape, [height, width, 3], c.name);
      const actual = readOut<Int32Array>(tf, () => output.toInt());
      output.dispose();
      const firstDiff = reference.findIndex((v, i) => v !== actual[i]);
      assert.is(firstDiff, -1, `${c.name} from ${kind}: first difference at flat index ${firstDiff}: ${actual[firstDiff]} vs Pillow ${reference[firstDiff]}`);
      input.dispose();
    }
  }
  assert.is(tf.memory().numTensors, before, 'no tensor leaked');
});

test('PilResample refuses taps that read outside the image, naming them (a TensorFlow error, not a crash)', () => {
  const raw = nativeBackend(tf);
  const pixels = uint8Image(tf, new Uint8Array(4 * 5 * 3), 4, 5);
  resizeBilinearPil(tf, tf.zeros([1, 1, 3], 'int32') as Tensor3D, resizeWeights(1, 1, 2, 2)).dispose(); // registers the op
  const ok = bilinearTaps(4, 2);
  const run = (x: { bounds: number[]; weights: number[]; taps: number }) => tf.tidy(() =>
    raw.executeSingleOutput('PilResample', [], [pixels, tf.tensor2d(x.bounds, [x.bounds.length / 2, 2], 'int32'), tf.tensor2d(x.weights, [x.bounds.length / 2, x.taps], 'int32'),
      tf.tensor2d(ok.bounds, [2, 2], 'int32'), tf.tensor2d(ok.weights, [2, ok.taps], 'int32')]));
  assert.throws(() => run({ bounds: [3, 3], weights: [1, 1, 1], taps: 3 }), (e: unknown) => /output 0 reads \[3, 6\) of 5 samples/.test(String(e)));
  assert.throws(() => run({ bounds: [0, 4], weights: [1, 1, 1], taps: 3 }), (e: unknown) => /output 0 reads \[0, 4\) of 5 samples with 3 taps/.test(String(e)));
  assert.throws(() => tf.tidy(() => raw.executeSingleOutput('PilResample', [], [tf.zeros([4, 5, 3], 'float32'), ...[0, 0, 0, 0].map(() => tf.zeros([1, 2], 'int32'))])),
    (e: unknown) => /expected to be a uint8 tensor/.test(String(e)));
  pixels.dispose();
});

test('the op outlives the worker thread that registered it: a later worker in the process resizes alike', () => {
  // In a fresh process, so that only the workers load the addon: when the first ends, Node unloads what it loaded.
  const worker = [
    "require('tsx/cjs');",
    "const { parentPort } = require('node:worker_threads');",
    `const { loadRuntime, readOut } = require(${JSON.stringify(require.resolve('../../src/runtime'))});`,
    `const r = require(${JSON.stringify(require.resolve('../../src/image/pil-resize'))});`,
    "const { tf } = loadRuntime({ device: 'cpu' });",
    "const pixels = tf.tensor3d(Array.from({ length: 300 }, (_, i) => (i * 7) % 256), [10, 10, 3], 'int32');",
    'parentPort.postMessage(Array.from(readOut(tf, () => r.resizeBilinearPil(tf, pixels, r.resizeWeights(10, 10, 3, 4)).toInt())));',
  ].join('\n');
  const script = `
    const { Worker } = require('node:worker_threads');
    (async () => {
      const answers = [];
      for (let i = 0; i < 2; i++) {
        const thread = new Worker(process.env.WORKER_CODE, { eval: true });
        answers.push(await new Promise((resolve, reject) => thread.once('message', resolve).once('error', reject)));
        await thread.terminate();
      }
      console.log(JSON.stringify(answers));
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WORKER_CODE: worker } });
  const [first, second] = JSON.parse(out) as number[][];
  assert.is(first.length, 36);
  assert.equal(second, first);
});

test('taps: Pillow\'s bounds, and non-negative weights summing to 2^22 within the rounding of each tap', () => {
  // 1024 -> 64: scale 16, support 16; output 0 is centred on 8 and reads [0, 24); output 63 on 1016, [1000, 1024).
  const photo = bilinearTaps(1024, 64);
  assert.equal([photo.bounds[0], photo.bounds[1], photo.bounds[126], photo.bounds[127]], [0, 24, 1000, 24]);
  assert.is(photo.taps, 33);
  for (const [inSize, outSize] of [[4000, 64], [5, 64], [1, 64], [64, 1], [97, 13]]) {
    const { bounds, weights, taps: width } = bilinearTaps(inSize, outSize);
    for (let row = 0; row < outSize; row++) {
      const [first, count] = [bounds[2 * row], bounds[2 * row + 1]];
      assert.ok(first >= 0 && count >= 1 && count <= width && first + count <= inSize, `${inSize}->${outSize} row ${row} reads [${first}, ${first + count})`);
      const taps = weights.subarray(row * width, (row + 1) * width);
      assert.ok(taps.subarray(count).every((v) => v === 0), `${inSize}->${outSize} row ${row}: padding is zero`);
      const nonZero = taps.filter((v) => v !== 0).length;
      const sum = taps.reduce((a, b) => a + b, 0);
      assert.ok(taps.every((v) => v >= 0), `${inSize}->${outSize} row ${row} has a negative tap`);
      assert.ok(Math.abs(sum - 2 ** PRECISION_BITS) <= nonZero / 2, `${inSize}->${outSize} row ${row} sums to ${sum}`);
    }
  }
});

test('bad sizes and mismatched pixels are programming errors (RangeError)', () => {
  assert.throws(() => bilinearTaps(0, 64), (e: unknown) => e instanceof RangeError && /0 -> 64/.test(e.message));
  const pixels = tf.zeros([4, 4, 3], 'int32') as import('@tensorflow/tfjs-node').Tensor3D;
  assert.throws(() => resizeBilinearPil(tf, pixels, resizeWeights(5, 4, 2, 2)),
    (e: unknown) => e instanceof RangeError && /\[5, 4, 3\].*\[4, 4, 3\]/.test(e.message));
  pixels.dispose();
});

test.run();
