// Pillow-exact bilinear resize: the PilResample op against Pillow itself on awkward synthetic sizes, bit for bit.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { uint8Image } from '../../src/image/decode';
import { bilinearTaps, PRECISION_BITS, resizeBilinearPil, resizeWeights } from '../../src/image/pil-resize';
import { nativeBackend, readOut } from '../../src/runtime';
import { tf } from '../helpers/runtime';
import { pillowResize } from './reference';
import { CASES } from './resize-cases';

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

test('the AVX2, SSE4.1 and scalar horizontal passes each give Pillow\'s bytes on every case', () => {
  const expected = pillowResize(CASES);
  const want = CASES.map((c) => createHash('sha256').update(expected.get(c.name)!).digest('hex'));
  const run = (kernels?: string) => {
    const env = { ...process.env };
    delete env.RESAMPLE_KERNELS;
    if (kernels) env.RESAMPLE_KERNELS = kernels;
    const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', path.join(__dirname, 'resize-child.ts')], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop() as string) as { kernels: string; hashes: string[] };
  };
  const best = run();
  const paths = best.kernels === 'avx2' ? ['avx2', 'sse4.1', 'scalar'] : best.kernels === 'sse4.1' ? ['sse4.1', 'scalar'] : ['scalar'];
  for (const kernels of paths) {
    const result = kernels === best.kernels ? best : run(kernels);
    assert.is(result.kernels, kernels);
    CASES.forEach((c, i) => assert.is(result.hashes[i], want[i], `${c.name} on the ${kernels} path differs from Pillow`));
  }
  console.log(`  compared: ${paths.join(', ')}`);
});

test('weights too large to split into 16-bit halves (not bilinear ones) take the 32-bit sums', () => {
  const raw = nativeBackend(tf);
  // A row of eight pixels (wide enough for the vector paths), its first two to one pixel:
  // (p0 * 2^26 + p1 * 2^25 + 2^21) >> 22 = 16 p0 + 8 p1.
  const pixels = uint8Image(tf, Uint8Array.from({ length: 24 }, (_, i) => i + 1), 1, 8);
  const taps = [tf.tensor2d([0, 2], [1, 2], 'int32'), tf.tensor2d([2 ** 26, 2 ** 25], [1, 2], 'int32'), tf.tensor2d([0, 1], [1, 2], 'int32'), tf.tensor2d([2 ** 22], [1, 1], 'int32')];
  const out = readOut<Int32Array>(tf, () => (raw.executeSingleOutput('PilResample', [], [pixels, ...taps]) as Tensor3D).toInt());
  assert.equal(Array.from(out), [48, 72, 96]);
  tf.dispose([pixels, ...taps]);
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
