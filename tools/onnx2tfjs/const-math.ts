// Conversion-time arithmetic on ConstTensors: broadcasting, transposes and permutation algebra (row-major, logical order).
import { ConstTensor, Dim, DType } from './types';

export const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

export function makeConst(dtype: DType, shape: number[], values: ArrayLike<number>): ConstTensor {
  return { dtype, shape: [...shape], data: dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values) };
}

export const identityPerm = (rank: number): number[] => Array.from({ length: rank }, (_, i) => i);
export const isIdentity = (perm: number[]): boolean => perm.every((p, i) => p === i);
export function inversePerm(perm: number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}
export const samePerm = (a: number[], b: number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** out axis i = in axis perm[i] (numpy.transpose). */
export function transposeConst(t: ConstTensor, perm: number[]): ConstTensor {
  if (isIdentity(perm)) return t;
  const inStrides = strides(t.shape);
  return walkStrided(t, perm.map((p) => t.shape[p]), perm.map((p) => inStrides[p]));
}

/**
 * A new tensor of `shape` whose element at index i (row-major) is `t.data[sum(i_d * srcStride[d])]`: the one walk
 * behind transposes (permuted strides) and broadcasts (stride 0 on broadcast axes).
 */
function walkStrided(t: ConstTensor, shape: number[], srcStride: number[]): ConstTensor {
  const n = size(shape);
  const out = t.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  let src = 0;
  for (let k = 0; k < n; k++) {
    out[k] = t.data[src];
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      src += srcStride[d];
      if (idx[d] < shape[d]) break;
      src -= srcStride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return { dtype: t.dtype, shape: [...shape], data: out };
}

/** Numpy broadcasting of two shapes; symbolic dims broadcast against 1 and are assumed equal to each other. */
export function broadcastDims(a: Dim[], b: Dim[], where: string): Dim[] {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y || typeof y === 'string') out.push(x);
    else if (typeof x === 'string') out.push(y);
    else throw new RangeError(`${where}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
  }
  return out;
}

/** Broadcasts `t` to `shape` (which must be reachable by numpy broadcasting). */
export function broadcastTo(t: ConstTensor, shape: number[]): ConstTensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const padded = [...new Array(shape.length - t.shape.length).fill(1), ...t.shape];
  return walkStrided(t, shape, strides(padded).map((s, i) => (padded[i] === 1 ? 0 : s)));
}

/** Elementwise binary op with broadcasting; float results are rounded to float32 like the runtime would. */
export function binaryConst(a: ConstTensor, b: ConstTensor, fn: (x: number, y: number) => number, dtype: DType = a.dtype): ConstTensor {
  const shape = broadcastDims(a.shape, b.shape, 'constant folding') as number[];
  const x = broadcastTo(a, shape);
  const y = broadcastTo(b, shape);
  const n = size(shape);
  const out = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = fn(x.data[i], y.data[i]);
  return { dtype, shape, data: out };
}

export function unaryConst(t: ConstTensor, fn: (x: number) => number, dtype: DType = t.dtype): ConstTensor {
  return makeConst(dtype, t.shape, Array.from(t.data, fn));
}

/** Normalises a possibly negative axis against `rank`. */
export function normAxis(axis: number, rank: number, where: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`${where}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}
