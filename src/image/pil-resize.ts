// Pillow's bilinear resampling (Image.resize with BILINEAR, as torchvision's Resize uses it) as exact integer weights.
//
// Facts from Pillow's src/libImaging/Resample.c (Pillow 9.4, unchanged since 4.x): the filter is a triangle of
// support 1 widened by the downscale factor (antialiasing); each output sample sums the source samples whose
// centres fall in [center - support, center + support) (bounds rounded to the nearest pixel, clipped to the
// image); weights are normalised to sum 1 in double precision and then turned into integers with 22 fractional
// bits (PRECISION_BITS = 32 - 8 - 2, rounding half away from zero); a pass accumulates in int32 from 2^21
// (rounding) and keeps (sum >> 22) clipped to 0..255. Horizontal pass first, then vertical, each rounding to 8 bits.
//
// As tf ops each pass is a matrix product. float32 products are several times faster than int32 ones on the
// native backend (TensorFlow's float GEMM is vectorised, its int32 one is not), and they are exact as long as every
// partial sum is an integer below 2^24 (in units of its smallest bit): so each coefficient is split into bit
// ranges, the parts are multiplied separately in float32, and their sums are added in int32 (exact: every total is
// below 255 * 2^22 < 2^31). Only when no split keeps the sums below 2^24 (a downscale by about 100000) does a pass
// multiply in int32 directly. The horizontal pass works on rows of interleaved RGB (no transpose of the image: that
// costs as much as the products) and each group of output columns reads only the band of source columns it needs.
import type { Tensor, Tensor2D, Tensor3D } from '@tensorflow/tfjs-node';
import { nativeBackend, type Tf } from '../runtime';

/** Fractional bits of Pillow's fixed-point coefficients. */
export const PRECISION_BITS = 22;

/**
 * Pillow's integer bilinear coefficients for resampling one axis of `inSize` samples to `outSize`, as a dense
 * row-major int32 matrix `[outSize, inSize]` (row o holds the weights of output sample o; most are zero).
 * Every sum of 8-bit samples times one row fits in int32: the coefficients are non-negative and their sum is
 * 2^22 plus at most half a unit per tap.
 */
export function bilinearCoefficients(inSize: number, outSize: number): Int32Array {
  if (!Number.isInteger(inSize) || inSize < 1 || !Number.isInteger(outSize) || outSize < 1) {
    throw new RangeError(`resize sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const matrix = new Int32Array(outSize * inSize);
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the bilinear (triangle) filter's support is 1
  const inverse = 1 / filterScale;
  const unit = 2 ** PRECISION_BITS;
  const weights: number[] = [];
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    // Pillow rounds with a C (int) cast, which truncates toward zero: Math.trunc, not Math.floor.
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    weights.length = 0;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const w = triangle((i + first - center + 0.5) * inverse);
      weights.push(w);
      total += w;
    }
    for (let i = 0; i < count; i++) {
      const normalised = total !== 0 ? weights[i] / total : weights[i];
      // (int)(0.5 + w * 2^22): w >= 0 here, so truncation is rounding half up.
      matrix[out * inSize + first + i] = Math.trunc(0.5 + normalised * unit);
    }
  }
  return matrix;
}

function triangle(x: number): number {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

/**
 * How a pass's coefficients are multiplied: in float32 as the sum of bit-range parts (`lowBits` holds each part's
 * lowest bit, most significant part first), or whole in int32 (`lowBits` [0], one part).
 */
export interface PassPrecision {
  dtype: 'float32' | 'int32';
  lowBits: number[];
}

/** Largest integer float32 sums reach exactly (every partial sum below it is exact). */
const FLOAT_EXACT = 2 ** 24;
/**
 * Significant bits per part: 11 keeps every part exact in TensorFloat-32 too (10 stored mantissa bits), which
 * TensorFlow uses for float32 products on recent NVIDIA GPUs (tfjs-node-gpu) unless told otherwise.
 */
const PART_BITS = 11;

/**
 * The fewest parts (the top one bits 11 and up, the lower 11 bits split evenly) for which every part of every row
 * of `matrix` `[outSize, inSize]`, times 8-bit samples, sums below 2^24 in units of its lowest bit, so float32
 * products are exact; else int32. Two parts do for downscales up to about 30, three up to at least 1000; int32 is
 * left for downscales by about 100000.
 */
export function passPrecision(matrix: Int32Array, inSize: number, outSize: number): PassPrecision {
  const { first, end } = tapRuns(matrix, inSize, outSize);
  for (let partCount = 2; partCount <= PART_BITS + 1; partCount++) {
    const lowBits = [PART_BITS, ...Array.from({ length: partCount - 1 }, (_, p) => Math.floor((PART_BITS * (partCount - 2 - p)) / (partCount - 1)))];
    const sums = new Float64Array(partCount);
    let fits = true;
    for (let out = 0; out < outSize && fits; out++) {
      sums.fill(0);
      for (let i = out * inSize + first[out]; i < out * inSize + end[out]; i++) {
        for (let p = 0; p < partCount; p++) sums[p] += partOf(matrix[i], lowBits, p) >> lowBits[p];
      }
      fits = sums.every((sum) => 255 * sum < FLOAT_EXACT);
    }
    if (fits) return { dtype: 'float32', lowBits };
  }
  return { dtype: 'int32', lowBits: [0] };
}

/**
 * Part `p` of a non-negative weight: its bits from lowBits[p] up to the next part's, in place (a multiple of
 * 2^lowBits[p]), so the parts' sums simply add up.
 */
function partOf(weight: number, lowBits: number[], p: number): number {
  const upTo = p === 0 ? weight : weight & ((1 << lowBits[p - 1]) - 1);
  return upTo - (weight & ((1 << lowBits[p]) - 1));
}

/** Where each row's non-zero taps lie: `[first[o], end[o])` (Pillow's taps form one run per output). */
function tapRuns(matrix: Int32Array, inSize: number, outSize: number): { first: Int32Array; end: Int32Array } {
  const first = new Int32Array(outSize);
  const end = new Int32Array(outSize);
  for (let out = 0; out < outSize; out++) {
    const row = out * inSize;
    let i = 0;
    while (i < inSize - 1 && matrix[row + i] === 0) i++;
    first[out] = i;
    let j = inSize;
    while (j > i + 1 && matrix[row + j - 1] === 0) j--;
    end[out] = j;
  }
  return { first, end };
}

/** Output columns `[first, first + outputs)` of the horizontal pass and the source columns they read. */
export interface ColumnGroup {
  /** First source column read, and how many. */
  start: number;
  count: number;
  /**
   * `[3 * count, parts * 3 * outputs]`, row (source column, channel), column (part, output column, channel): the
   * group's coefficients spread over the interleaved RGB of a pixel row (zero across channels).
   */
  matrix: Float32Array | Int32Array;
}

/** Both passes' coefficients for one (source size, target size) pair. */
export interface ResizeWeights {
  srcHeight: number;
  srcWidth: number;
  height: number;
  width: number;
  /** Vertical pass, `[parts * height, srcHeight]` (parts stacked); undefined when the height does not change. */
  rows?: { precision: PassPrecision; matrix: Float32Array | Int32Array };
  /** Horizontal pass by groups of equally many output columns; undefined when the width does not change. */
  columns?: { precision: PassPrecision; groups: ColumnGroup[] };
  /** Bytes held by the coefficient arrays (the cache's cost). */
  bytes: number;
}

/**
 * Coefficients of both passes. `columnGroups` (a divisor of `width`) overrides the number of column groups chosen
 * by cost: one group reads every source column for every output (a dense product), more read narrower bands.
 */
export function resizeWeights(
  srcHeight: number, srcWidth: number, height: number, width: number, columnGroups?: number,
): ResizeWeights {
  const rows = srcHeight === height ? undefined : rowWeights(srcHeight, height);
  const columns = srcWidth === width ? undefined : columnWeights(srcHeight, srcWidth, width, columnGroups);
  const bytes = (rows?.matrix.byteLength ?? 0) + (columns?.groups.reduce((n, g) => n + g.matrix.byteLength, 0) ?? 0);
  return { srcHeight, srcWidth, height, width, rows, columns, bytes };
}

function rowWeights(inSize: number, outSize: number): NonNullable<ResizeWeights['rows']> {
  const coefficients = bilinearCoefficients(inSize, outSize);
  const precision = passPrecision(coefficients, inSize, outSize);
  if (precision.dtype === 'int32') return { precision, matrix: coefficients };
  const { lowBits } = precision;
  const matrix = new Float32Array(lowBits.length * outSize * inSize);
  const { first, end } = tapRuns(coefficients, inSize, outSize);
  for (let out = 0; out < outSize; out++) {
    for (let i = out * inSize + first[out]; i < out * inSize + end[out]; i++) {
      for (let p = 0; p < lowBits.length; p++) matrix[p * outSize * inSize + i] = partOf(coefficients[i], lowBits, p);
    }
  }
  return { precision, matrix };
}

function columnWeights(
  srcHeight: number, inSize: number, outSize: number, groupCount?: number,
): NonNullable<ResizeWeights['columns']> {
  const coefficients = bilinearCoefficients(inSize, outSize);
  const precision = passPrecision(coefficients, inSize, outSize);
  const { lowBits } = precision;
  const partCount = lowBits.length;
  // A group of outputs reads the union of their runs of taps.
  const { first, end } = tapRuns(coefficients, inSize, outSize);
  const bands = (groups: number) => {
    const size = outSize / groups;
    return Array.from({ length: groups }, (_, g) => ({
      out: g * size,
      start: first.subarray(g * size, (g + 1) * size).reduce((a, b) => Math.min(a, b)),
      end: end.subarray(g * size, (g + 1) * size).reduce((a, b) => Math.max(a, b)),
    }));
  };
  if (groupCount !== undefined && !(Number.isInteger(groupCount) && groupCount > 0 && outSize % groupCount === 0)) {
    throw new RangeError(`column groups must divide the width ${outSize}, got ${groupCount}`);
  }
  const cost = (groups: number) => groupCost(bands(groups), srcHeight, inSize, outSize, partCount);
  const count = groupCount ?? divisors(outSize).reduce((best, g) => (cost(g) < cost(best) ? g : best), 1);
  const outputs = outSize / count;
  const groups = bands(count).map(({ out, start, end: stop }): ColumnGroup => {
    const width = partCount * 3 * outputs;
    const matrix = precision.dtype === 'int32' ? new Int32Array(3 * (stop - start) * width) : new Float32Array(3 * (stop - start) * width);
    for (let o = 0; o < outputs; o++) {
      const row = (out + o) * inSize;
      for (let i = first[out + o]; i < end[out + o]; i++) {
        for (let p = 0; p < partCount; p++) {
          const v = precision.dtype === 'int32' ? coefficients[row + i] : partOf(coefficients[row + i], lowBits, p);
          for (let c = 0; c < 3; c++) matrix[(3 * (i - start) + c) * width + p * 3 * outputs + 3 * o + c] = v;
        }
      }
    }
    return { start, count: stop - start, matrix };
  });
  return { precision, groups };
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/**
 * Estimated time of a horizontal pass split into `bands`, in units of one float32 multiply-add: the products, the
 * slice and cast of each band's samples, and a fixed cost per group and row band (its ops). The constants were
 * fitted on the 2-core target by timing every grouping of 1024x683, 683x1024, 1024x640, 535x426, 512x512,
 * 380x254, 3264x2448, 2056x3088 and 4000x30 images to 64x64: the choice is the fastest for the photo sizes up to
 * 1024 pixels, within 25% of it for the 8-megapixel ones and within 45% for the strip.
 */
function groupCost(
  bands: { start: number; end: number }[], srcHeight: number, inSize: number, outSize: number, partCount: number,
): number {
  const outputsPerGroup = outSize / bands.length;
  const rowBands = Math.ceil(srcHeight / bandRows(inSize));
  let cost = 0;
  for (const { start, end } of bands) {
    const read = 3 * (end - start);
    cost += srcHeight * read * (partCount * 3 * outputsPerGroup + READ_COST) + GROUP_COST * rowBands;
  }
  return cost;
}
const READ_COST = 30;
const GROUP_COST = 7e6;

/**
 * Pillow's bilinear resize of RGB pixels `[srcHeight, srcWidth, 3]` (values 0..255; tfjs int32, stored as int32 or as
 * the decoders' uint8) to int32 `[height, width, 3]`, bit-identical to `Image.resize((width, height),
 * Image.BILINEAR)`. Returns a new tensor.
 */
export function resizeBilinearPil(tf: Tf, pixels: Tensor3D, weights: ResizeWeights): Tensor3D {
  const [srcHeight, srcWidth, channels] = pixels.shape;
  if (srcHeight !== weights.srcHeight || srcWidth !== weights.srcWidth || channels !== 3 || pixels.dtype !== 'int32') {
    throw new RangeError(
      `resize expects int32 [${weights.srcHeight}, ${weights.srcWidth}, 3] pixels, got ${pixels.dtype} [${pixels.shape.join(', ')}]`);
  }
  const { height, width, rows, columns } = weights;
  return tf.tidy(() => {
    let lines = pixels.reshape([srcHeight, 3 * srcWidth]) as Tensor2D;
    if (columns) {
      // In bands of rows, each disposed before the next, so a large upload is never copied whole.
      const step = bandRows(srcWidth);
      // Uploaded once per call and shared by the bands (not cached: no tensor outlives the call).
      const matrices = columns.groups.map(({ count, matrix }) =>
        tf.tensor2d(matrix, [3 * count, matrix.length / (3 * count)], columns.precision.dtype));
      const bands: Tensor2D[] = [];
      for (let top = 0; top < srcHeight; top += step) {
        const count = Math.min(step, srcHeight - top);
        bands.push(tf.tidy(() => horizontalPass(tf, lines, top, count, columns, matrices)));
      }
      lines = bands.length === 1 ? bands[0] : tf.concat(bands, 0);
    }
    if (rows) {
      const { precision, matrix } = rows;
      const partCount = precision.lowBits.length;
      const sums = tf.matMul(tf.tensor2d(matrix, [partCount * height, srcHeight], precision.dtype), tf.cast(lines, precision.dtype));
      lines = roundPass(tf, combineParts(tf, sums.reshape([partCount, height, 3 * width]), 0)) as Tensor2D;
    }
    return lines.reshape([height, width, 3]) as Tensor3D;
  });
}

/** Rows per band of the horizontal pass: 4 Mi values, 16 MiB per temporary copy. */
function bandRows(srcWidth: number): number {
  return Math.max(1, Math.floor(2 ** 22 / (3 * srcWidth)));
}

/**
 * Rows `[top, top + n)` of `lines` (`[srcHeight, 3 * srcWidth]`, interleaved RGB samples) -> rounded int32
 * `[n, 3 * width]`; `matrices` are the groups' coefficients as tensors.
 */
function horizontalPass(
  tf: Tf, lines: Tensor2D, top: number, n: number, columns: NonNullable<ResizeWeights['columns']>, matrices: Tensor2D[],
): Tensor2D {
  const { precision, groups } = columns;
  const [srcHeight, srcSamples] = lines.shape;
  // Each group's block is sliced straight from the samples, before the cast: decoded samples are one byte each, so
  // the copies move a quarter of the bytes.
  const sums = groups.map(({ start, count }, g) => {
    const whole = n === srcHeight && 3 * count === srcSamples;
    const block = whole ? lines : tf.slice(lines, [top, 3 * start], [n, 3 * count]);
    return tf.matMul(tf.cast(block, precision.dtype), matrices[g]);
  });
  const all = sums.length === 1 ? sums[0] : tf.concat(sums, 1);
  // Columns are (group, part, output, channel): combining over the part axis leaves (output, channel) in order.
  const combined = combineParts(tf, all.reshape([n, groups.length, precision.lowBits.length, -1]), 2);
  return roundPass(tf, combined).reshape([n, -1]) as Tensor2D;
}

/** The exact int32 sums from the parts' sums along `axis` (their total would round in float32). */
function combineParts(tf: Tf, sums: Tensor, axis: number): Tensor {
  return tf.sum(tf.cast(sums, 'int32'), axis);
}

/** Pillow's clip8: (sum + 2^21) >> 22, clipped to 0..255 (sums are never negative). */
function roundPass(tf: Tf, sums: Tensor): Tensor {
  return tf.minimum(rightShift(tf, tf.add(sums, tf.scalar(2 ** (PRECISION_BITS - 1), 'int32')), PRECISION_BITS), tf.scalar(255, 'int32'));
}

/**
 * int32 `x >> bits` with TensorFlow's RightShift, which tfjs does not expose; a fifth of the time of floorDiv, which
 * divides. The native backends (tfjs-node and tfjs-node-gpu) run any TensorFlow op by name.
 */
function rightShift(tf: Tf, x: Tensor, bits: number): Tensor {
  const raw = nativeBackend(tf);
  return raw.executeSingleOutput('RightShift', [{ name: 'T', type: raw.binding.TF_ATTR_TYPE, value: raw.binding.TF_INT32 }], [x, tf.scalar(bits, 'int32')]);
}
