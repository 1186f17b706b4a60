// Builds a TF GraphDef in the JSON encoding tfjs-converter reads, and collects the Const weights it refers to.
import { ConstTensor, DType } from './types';

/** One attribute in TF's JSON proto encoding (int64 as decimal strings, bytes as base64). */
export type TfAttr =
  | { type: string }
  | { i: string }
  | { f: number }
  | { b: boolean }
  | { s: string }
  | { list: { i?: string[]; s?: string[]; f?: number[] } }
  | { shape: { dim?: { size: string }[]; unknownRank?: boolean } }
  | { tensor: { dtype: string; tensorShape: { dim?: { size: string }[] } } };

export interface TfNode {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, TfAttr>;
}

export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
  data: Uint8Array;
}

const TF_DTYPE: Record<DType, string> = { float32: 'DT_FLOAT', int32: 'DT_INT32', int64: 'DT_INT32', bool: 'DT_BOOL' };

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const dims = (shape: number[]) => shape.map((d) => ({ size: String(d) }));

/** Attribute constructors; each returns the JSON form tfjs-converter's operation mapper parses. */
export const attr = {
  type: (d: DType): TfAttr => ({ type: TF_DTYPE[d] }),
  int: (i: number): TfAttr => ({ i: String(i) }),
  ints: (v: number[]): TfAttr => ({ list: { i: v.map(String) } }),
  float: (f: number): TfAttr => ({ f }),
  bool: (b: boolean): TfAttr => ({ b }),
  str: (s: string): TfAttr => ({ s: b64(s) }),
  strs: (v: string[]): TfAttr => ({ list: { s: v.map(b64) } }),
  shape: (shape: number[]): TfAttr => ({ shape: { dim: dims(shape) } }),
};

const INT32_MAX = 2147483647;

function weightBytes(t: ConstTensor): Uint8Array {
  if (t.data instanceof Float32Array) return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.dtype === 'float32') return new Uint8Array(Float32Array.from(t.data).buffer);
  if (t.dtype === 'bool') return Uint8Array.from(t.data, (v) => (v ? 1 : 0));
  // int64 narrows to int32 (tfjs has no int64); clamping keeps "to the end" sentinels such as INT64_MAX meaningful.
  return new Uint8Array(Int32Array.from(t.data, (v) => Math.max(-INT32_MAX - 1, Math.min(INT32_MAX, v))).buffer);
}

export class GraphBuilder {
  readonly nodes: TfNode[] = [];
  readonly weights: WeightEntry[] = [];
  private readonly used = new Set<string>();

  /** A TF-valid node name derived from `base` (ONNX names may hold ':' which TF reserves for output indices). */
  uniqueName(base: string): string {
    let name = base.replace(/[^A-Za-z0-9_.\-/]/g, '_').replace(/^[^A-Za-z0-9.]+/, '') || 'node';
    if (this.used.has(name)) {
      let k = 1;
      while (this.used.has(`${name}_${k}`)) k++;
      name = `${name}_${k}`;
    }
    this.used.add(name);
    return name;
  }

  /** Adds a node and returns its name (its first output's reference). */
  op(op: string, inputs: string[], attrs: Record<string, TfAttr> = {}, base: string = op): string {
    const name = this.uniqueName(base);
    this.nodes.push({ name, op, input: inputs, attr: attrs });
    return name;
  }

  /** Adds a Const node whose value is stored in the weights. */
  constant(t: ConstTensor, base = 'const'): string {
    const name = this.uniqueName(base);
    const dtype = t.dtype === 'int64' ? 'int32' : t.dtype;
    this.nodes.push({
      name,
      op: 'Const',
      input: [],
      attr: {
        value: { tensor: { dtype: TF_DTYPE[t.dtype], tensorShape: t.shape.length ? { dim: dims(t.shape) } : {} } },
        dtype: attr.type(t.dtype),
      },
    });
    this.weights.push({ name, shape: [...t.shape], dtype, data: weightBytes(t) });
    return name;
  }
}
