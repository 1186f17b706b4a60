// Pillow-exact bilinear resize: the tf-op implementation against Pillow itself on awkward synthetic sizes, bit for bit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bilinearCoefficients, passPrecision, PRECISION_BITS, resizeBilinearPil, resizeWeights } from '../../src/image/pil-resize';
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
  // Downscales by 100000: no float32 split is exact, so these passes multiply in int32.
  makeCase('int32-wide', [3, 100_000], [3, 1]),
  makeCase('int32-tall', [100_000, 2], [1, 2]),
];

test('resizeBilinearPil is bit-identical to Pillow Image.resize(BILINEAR)', () => {
  const expected = pillowResize(CASES);
  const before = tf.memory().numTensors;
  for (const c of CASES) {
    const [h, w] = c.shape;
    const [height, width] = c.size;
    const input = tf.tensor3d(Int32Array.from(c.pixels), [h, w, 3], 'int32');
    const output = resizeBilinearPil(tf, input, resizeWeights(h, w, height, width));
    assert.equal(output.shape, [height, width, 3], c.name);
    assert.is(output.dtype, 'int32', c.name);
    const actual = output.dataSync();
    const reference = expected.get(c.name)!;
    const firstDiff = reference.findIndex((v, i) => v !== actual[i]);
    assert.is(firstDiff, -1, `${c.name}: first difference at flat index ${firstDiff}: ${actual[firstDiff]} vs Pillow ${reference[firstDiff]}`);
    input.dispose();
    output.dispose();
  }
  assert.is(tf.memory().numTensors, before, 'no tensor leaked');
});

test('each pass picks float32 parts where exact, int32 beyond; every column grouping gives the same bits', () => {
  assert.is(resizeWeights(683, 1024, 64, 64).columns!.precision.dtype, 'float32');
  assert.is(resizeWeights(683, 1024, 64, 64).rows!.precision.dtype, 'float32');
  assert.is(resizeWeights(3, 100_000, 3, 1).columns!.precision.dtype, 'int32');
  assert.is(resizeWeights(100_000, 2, 1, 2).rows!.precision.dtype, 'int32');
  const expected = pillowResize(CASES);
  const before = tf.memory().numTensors;
  for (const [name, groupings] of [['photo-1024x683', [1, 2, 64]], ['factor-47', [1, 64]], ['odd-upscale-224', [7, 224]], ['int32-wide', [1]]] as const) {
    const c = CASES.find((k) => k.name === name)!;
    const [h, w] = c.shape;
    const input = tf.tensor3d(Int32Array.from(c.pixels), [h, w, 3], 'int32');
    for (const groups of groupings) {
      const weights = resizeWeights(h, w, c.size[0], c.size[1], groups);
      assert.is(weights.columns!.groups.length, groups);
      const output = resizeBilinearPil(tf, input, weights);
      const actual = output.dataSync();
      output.dispose();
      const firstDiff = expected.get(name)!.findIndex((v, i) => v !== actual[i]);
      assert.is(firstDiff, -1, `${name} in ${groups} column groups: first difference at flat index ${firstDiff}`);
    }
    input.dispose();
  }
  assert.is(tf.memory().numTensors, before, 'no tensor leaked');
  assert.throws(() => resizeWeights(683, 1024, 64, 64, 3), (e: unknown) => e instanceof RangeError && /divide the width 64, got 3/.test(e.message));
});

test('passPrecision: float32 parts of at most 11 significant bits (TF32-exact) whose row sums x 255 stay below 2^24', () => {
  for (const [inSize, outSize, partCount] of [[1024, 64, 2], [7, 64, 2], [3264, 64, 3], [4000, 2, 4], [100_000, 1, 1]]) {
    const matrix = bilinearCoefficients(inSize, outSize);
    const { dtype, lowBits } = passPrecision(matrix, inSize, outSize);
    assert.is(dtype, partCount === 1 ? 'int32' : 'float32', `${inSize}->${outSize}`);
    assert.is(lowBits.length, partCount, `${inSize}->${outSize} parts`);
    if (dtype === 'int32') continue;
    for (let row = 0; row < outSize; row++) {
      const sums = lowBits.map(() => 0);
      for (const w of matrix.subarray(row * inSize, (row + 1) * inSize)) {
        let rest = w;
        lowBits.forEach((low, p) => {
          const units = Math.floor(rest / 2 ** low); // this part, in units of its lowest bit
          rest -= units * 2 ** low;
          let significant = units;
          while (significant > 0 && significant % 2 === 0) significant /= 2;
          assert.ok(significant < 2 ** 11, `${inSize}->${outSize}: weight ${w} part ${p} has ${units}`);
          sums[p] += units;
        });
        assert.is(rest, 0);
      }
      assert.ok(Math.max(...sums) * 255 < 2 ** 24, `${inSize}->${outSize} row ${row}: part sums ${sums}`);
    }
  }
});

test('coefficients: non-negative rows summing to 2^22 within the rounding of each tap', () => {
  for (const [inSize, outSize] of [[4000, 64], [5, 64], [1, 64], [64, 1], [97, 13]]) {
    const matrix = bilinearCoefficients(inSize, outSize);
    for (let row = 0; row < outSize; row++) {
      const taps = matrix.subarray(row * inSize, (row + 1) * inSize);
      const nonZero = taps.filter((v) => v !== 0).length;
      const sum = taps.reduce((a, b) => a + b, 0);
      assert.ok(taps.every((v) => v >= 0), `${inSize}->${outSize} row ${row} has a negative tap`);
      assert.ok(Math.abs(sum - 2 ** PRECISION_BITS) <= nonZero / 2, `${inSize}->${outSize} row ${row} sums to ${sum}`);
    }
  }
});

test('bad sizes and mismatched pixels are programming errors (RangeError)', () => {
  assert.throws(() => bilinearCoefficients(0, 64), (e: unknown) => e instanceof RangeError && /0 -> 64/.test(e.message));
  const pixels = tf.zeros([4, 4, 3], 'int32') as import('@tensorflow/tfjs-node').Tensor3D;
  assert.throws(() => resizeBilinearPil(tf, pixels, resizeWeights(5, 4, 2, 2)),
    (e: unknown) => e instanceof RangeError && /\[5, 4, 3\].*\[4, 4, 3\]/.test(e.message));
  pixels.dispose();
});

test.run();
