// Pillow's bilinear resampling (Image.resize with BILINEAR, as torchvision's Resize uses it) with Pillow's exact
// integer weights, run by the TensorFlow op PilResample (src/native/resample.c).
//
// Facts from Pillow's src/libImaging/Resample.c (Pillow 9.4, unchanged since 4.x): the filter is a triangle of
// support 1 widened by the downscale factor (antialiasing); each output sample sums the source samples whose
// centres fall in [center - support, center + support) (bounds rounded to the nearest pixel, clipped to the
// image); weights are normalised to sum 1 in double precision and then turned into integers with 22 fractional
// bits (PRECISION_BITS = 32 - 8 - 2, rounding half away from zero); a pass accumulates in int32 from 2^21
// (rounding) and keeps (sum >> 22) clipped to 0..255. Horizontal pass first, then vertical, each rounding to 8 bits.
// The weights are computed here (once per source size, preprocess.ts caches them) and the op runs both passes in C:
// as general tf ops (matrix products of float32 parts, exact below 2^24) the same resize cost five times as much
// (docs/runtime.md, "Resizing").
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { nativeBackend, type Tf } from '../runtime';
import { registerOp } from '../tf-ops';

/** Fractional bits of Pillow's fixed-point coefficients (PRECISION_BITS in resample.c too). */
export const PRECISION_BITS = 22;

/**
 * One axis's taps: output o reads `bounds[2o + 1]` source samples from `bounds[2o]`, with the integer weights
 * `weights[o * taps ...]` (rows padded with zeros to `taps`).
 */
export interface AxisTaps {
  inSize: number;
  outSize: number;
  taps: number;
  bounds: Int32Array;
  weights: Int32Array;
}

/**
 * Pillow's integer bilinear taps for resampling one axis of `inSize` samples to `outSize`. Every sum of 8-bit
 * samples times one row fits in int32: the weights are non-negative and their sum is 2^22 plus at most half a unit
 * per tap.
 */
export function bilinearTaps(inSize: number, outSize: number): AxisTaps {
  if (!Number.isInteger(inSize) || inSize < 1 || !Number.isInteger(outSize) || outSize < 1) {
    throw new RangeError(`resize sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the bilinear (triangle) filter's support is 1
  const inverse = 1 / filterScale;
  const unit = 2 ** PRECISION_BITS;
  // Pillow's bound on the taps of one output: the filter's width, plus two for the rounding of its ends.
  const taps = Math.min(Math.ceil(support) * 2 + 1, inSize);
  const bounds = new Int32Array(2 * outSize);
  const weights = new Int32Array(outSize * taps);
  const row = new Float64Array(taps);
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    // Pillow rounds with a C (int) cast, which truncates toward zero: Math.trunc, not Math.floor.
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let total = 0;
    for (let i = 0; i < count; i++) {
      row[i] = triangle((i + first - center + 0.5) * inverse);
      total += row[i];
    }
    for (let i = 0; i < count; i++) {
      const normalised = total !== 0 ? row[i] / total : row[i];
      // (int)(0.5 + w * 2^22): w >= 0 here, so truncation is rounding half up.
      weights[out * taps + i] = Math.trunc(0.5 + normalised * unit);
    }
    bounds[2 * out] = first;
    bounds[2 * out + 1] = count;
  }
  return { inSize, outSize, taps, bounds, weights };
}

function triangle(x: number): number {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

/** Both axes' taps for one (source size, target size) pair. */
export interface ResizeWeights {
  srcHeight: number;
  srcWidth: number;
  height: number;
  width: number;
  rows: AxisTaps;
  columns: AxisTaps;
  /** Bytes held by the arrays (the cache's cost). */
  bytes: number;
}

export function resizeWeights(srcHeight: number, srcWidth: number, height: number, width: number): ResizeWeights {
  const rows = bilinearTaps(srcHeight, height);
  const columns = bilinearTaps(srcWidth, width);
  const bytes = [rows, columns].reduce((n, a) => n + a.bounds.byteLength + a.weights.byteLength, 0);
  return { srcHeight, srcWidth, height, width, rows, columns, bytes };
}

/**
 * Pillow's bilinear resize of RGB pixels `[srcHeight, srcWidth, 3]` (values 0..255; tfjs int32, stored as int32 or as
 * the decoders' uint8) to `[height, width, 3]`, bit-identical to `Image.resize((width, height), Image.BILINEAR)`.
 * Returns a new tensor stored as uint8, which tfjs labels int32 (cast it, or read it with toInt()).
 */
export function resizeBilinearPil(tf: Tf, pixels: Tensor3D, weights: ResizeWeights): Tensor3D {
  const [srcHeight, srcWidth, channels] = pixels.shape;
  if (srcHeight !== weights.srcHeight || srcWidth !== weights.srcWidth || channels !== 3 || pixels.dtype !== 'int32') {
    throw new RangeError(
      `resize expects int32 [${weights.srcHeight}, ${weights.srcWidth}, 3] pixels, got ${pixels.dtype} [${pixels.shape.join(', ')}]`);
  }
  const op = registerOp('PilResample');
  const { rows, columns } = weights;
  const raw = nativeBackend(tf);
  return tf.tidy(() => {
    const taps = (a: AxisTaps) => [tf.tensor2d(a.bounds, [a.outSize, 2], 'int32'), tf.tensor2d(a.weights, [a.outSize, a.taps], 'int32')];
    // The op reads uint8. tfjs labels both kinds of pixels int32, so TensorFlow's Cast, which infers the source type
    // from its input, converts int32 and hands uint8 through untouched.
    const bytes = raw.executeSingleOutput('Cast', [{ name: 'DstT', type: raw.binding.TF_ATTR_TYPE, value: raw.binding.TF_UINT8 }], [pixels]);
    return raw.executeSingleOutput(op, [], [bytes, ...taps(columns), ...taps(rows)]) as Tensor3D;
  });
}
