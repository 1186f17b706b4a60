// Pillow's bilinear resampling (Image.resize with BILINEAR, as torchvision's Resize uses it) as exact integer weights.
//
// Facts from Pillow's src/libImaging/Resample.c (Pillow 9.4, unchanged since 4.x): the filter is a triangle of
// support 1 widened by the downscale factor (antialiasing); each output sample sums the source samples whose
// centres fall in [center - support, center + support) (bounds rounded to the nearest pixel, clipped to the
// image); weights are normalised to sum 1 in double precision and then turned into integers with 22 fractional
// bits (PRECISION_BITS = 32 - 8 - 2, rounding half away from zero); a pass accumulates in int32 from 2^21
// (rounding) and keeps (sum >> 22) clipped to 0..255. Horizontal pass first, then vertical, each rounding to 8 bits.
// As tf ops each pass is one int32 matrix product with a dense coefficient matrix: exact, since every sum fits in
// int32 (255 * 2^22 < 2^31), so the result is bit-identical to Pillow's.
import type { Tensor2D, Tensor3D } from '@tensorflow/tfjs-node';
import type { Tf } from './runtime';

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

/** The same matrix transposed, `[inSize, outSize]`, for right-multiplication. */
export function transposeCoefficients(matrix: Int32Array, inSize: number, outSize: number): Int32Array {
  const transposed = new Int32Array(matrix.length);
  for (let out = 0; out < outSize; out++) {
    for (let i = 0; i < inSize; i++) transposed[i * outSize + out] = matrix[out * inSize + i];
  }
  return transposed;
}

/** Both passes' coefficients for one (source size, target size) pair. */
export interface ResizeWeights {
  srcHeight: number;
  srcWidth: number;
  height: number;
  width: number;
  /** Vertical pass, `[height, srcHeight]`; undefined when the height does not change (Pillow skips the pass). */
  rows?: Int32Array;
  /** Horizontal pass, transposed: `[srcWidth, width]`; undefined when the width does not change. */
  columns?: Int32Array;
}

export function resizeWeights(srcHeight: number, srcWidth: number, height: number, width: number): ResizeWeights {
  return {
    srcHeight,
    srcWidth,
    height,
    width,
    rows: srcHeight === height ? undefined : bilinearCoefficients(srcHeight, height),
    columns: srcWidth === width ? undefined : transposeCoefficients(bilinearCoefficients(srcWidth, width), srcWidth, width),
  };
}

/**
 * Pillow's bilinear resize of RGB pixels int32 `[srcHeight, srcWidth, 3]` (values 0..255) to int32
 * `[height, width, 3]`, bit-identical to `Image.resize((width, height), Image.BILINEAR)`. Returns a new tensor.
 */
export function resizeBilinearPil(tf: Tf, pixels: Tensor3D, weights: ResizeWeights): Tensor3D {
  const [srcHeight, srcWidth, channels] = pixels.shape;
  if (srcHeight !== weights.srcHeight || srcWidth !== weights.srcWidth || channels !== 3 || pixels.dtype !== 'int32') {
    throw new RangeError(
      `resize expects int32 [${weights.srcHeight}, ${weights.srcWidth}, 3] pixels, got ${pixels.dtype} [${pixels.shape.join(', ')}]`);
  }
  const { height, width, rows, columns } = weights;
  return tf.tidy(() => {
    const columnWeights = columns && tf.tensor2d(columns, [srcWidth, width], 'int32');
    // Horizontal pass in bands of rows, each disposed before the next, so a large upload is never copied whole.
    const bandRows = Math.max(1, Math.floor(BAND_VALUES / (3 * srcWidth)));
    const bands: Tensor2D[] = [];
    for (let top = 0; top < srcHeight; top += bandRows) {
      const count = Math.min(bandRows, srcHeight - top);
      bands.push(tf.tidy(() => {
        // Channel-major rows [3 * count, srcWidth], so that the pass is one plain 2-D product.
        let planes = tf.transpose(tf.slice(pixels, [top, 0, 0], [count, srcWidth, 3]), [2, 0, 1]).reshape([3 * count, srcWidth]) as Tensor2D;
        if (columnWeights) planes = roundPass(tf, tf.matMul(planes, columnWeights));
        // [3, count, width] -> [count, 3 * width]: rows first for the vertical pass.
        return tf.transpose(planes.reshape([3, count, width]), [1, 0, 2]).reshape([count, 3 * width]) as Tensor2D;
      }));
    }
    let lines = bands.length === 1 ? bands[0] : tf.concat(bands, 0);
    if (rows) {
      lines = roundPass(tf, tf.matMul(tf.tensor2d(rows, [height, srcHeight], 'int32'), lines));
    }
    return tf.transpose(lines.reshape([height, 3, width]), [0, 2, 1]) as Tensor3D;
  });
}

/** Values per band of the horizontal pass (4 Mi int32 values: 16 MiB per temporary copy). */
const BAND_VALUES = 2 ** 22;

/** Pillow's clip8: (sum + 2^21) >> 22, clipped to 0..255. */
function roundPass(tf: Tf, sums: Tensor2D): Tensor2D {
  const shifted = tf.floorDiv(tf.add(sums, tf.scalar(2 ** (PRECISION_BITS - 1), 'int32')), tf.scalar(2 ** PRECISION_BITS, 'int32'));
  return tf.clipByValue(shifted, 0, 255) as Tensor2D;
}
