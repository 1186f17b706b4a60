// Shared types of the ONNX -> TF.js converter: constant tensors, symbolic dims, values in flight, errors.

/** Element types the converter handles; int64 is narrowed to int32 when written (tfjs has no int64). */
export type DType = 'float32' | 'int32' | 'int64' | 'bool';

/**
 * A tensor known at conversion time, row-major in ONNX's logical order.
 * `data` is a Float32Array for float32 and a Float64Array holding exact integers (or 0/1) otherwise.
 */
export interface ConstTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** A dimension: a number when static, a symbol name (e.g. the batch axis) when only known at run time. */
export type Dim = number | string;

/**
 * A value flowing through the conversion:
 * - `const`: fully known; folded ops never reach the TF graph.
 * - `dims`: a 0-D or 1-D integer vector with some symbolic entries (the output of `Shape` on a dynamic tensor).
 * - `tensor`: a TF graph tensor `ref`. `shape` is ONNX's logical shape; the TF tensor holds it transposed by
 *   `perm` (TF axis i is logical axis perm[i]), so [0,2,3,1] is an NCHW tensor stored NHWC.
 */
export type Value =
  | { kind: 'const'; tensor: ConstTensor }
  | { kind: 'dims'; dtype: DType; scalar: boolean; dims: Dim[] }
  | { kind: 'tensor'; ref: string; dtype: DType; shape: Dim[]; perm: number[] };

export type TensorValue = Extract<Value, { kind: 'tensor' }>;

/** The model uses an op, attribute or form the converter cannot translate exactly. */
export class UnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedError';
  }
}

/** The ONNX file is malformed (bad protobuf, dangling names, inconsistent shapes). */
export class InvalidModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidModelError';
  }
}
