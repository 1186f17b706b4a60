// Reads an ONNX ModelProto (via the onnx-proto package) into plain graph data: nodes, initializers, inputs, opset.
import { endianness } from 'node:os';
import { onnx } from 'onnx-proto';
import { ConstTensor, Dim, DType, InvalidModelError, UnsupportedError } from './types';

export type AttrValue = number | number[] | string | string[] | ConstTensor;

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, AttrValue>;
}

export interface OnnxValueInfo {
  name: string;
  dtype: DType;
  shape: Dim[];
}

export interface OnnxGraph {
  nodes: OnnxNode[];
  initializers: Map<string, ConstTensor>;
  /** Graph inputs that are not initializers: what the caller feeds. */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Opset of the default ('' or 'ai.onnx') domain. */
  opset: number;
  producer: string;
}

const T = onnx.TensorProto.DataType;

function dtypeOf(code: number, what: string): DType {
  switch (code) {
    case T.FLOAT:
    case T.DOUBLE:
    case T.FLOAT16:
      return 'float32';
    case T.INT8:
    case T.UINT8:
    case T.INT16:
    case T.UINT16:
    case T.INT32:
      return 'int32';
    case T.INT64:
    case T.UINT32:
    case T.UINT64:
      return 'int64';
    case T.BOOL:
      return 'bool';
    default:
      throw new UnsupportedError(`${what}: ONNX element type ${T[code] ?? code} is not supported (float, integer and bool are)`);
  }
}

type Long = { toNumber(): number };
const LITTLE_ENDIAN = endianness() === 'LE';
const toNumber = (v: number | Long): number => (typeof v === 'number' ? v : v.toNumber());

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function readRaw(code: number, raw: Uint8Array, count: number, name: string): number[] | Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = new Array(count);
  const sizes: Record<number, number> = {
    [T.FLOAT]: 4, [T.DOUBLE]: 8, [T.FLOAT16]: 2, [T.INT8]: 1, [T.UINT8]: 1, [T.INT16]: 2, [T.UINT16]: 2,
    [T.INT32]: 4, [T.INT64]: 8, [T.UINT32]: 4, [T.UINT64]: 8, [T.BOOL]: 1,
  };
  const size = sizes[code];
  if (raw.byteLength !== size * count) {
    throw new InvalidModelError(`initializer "${name}": raw_data holds ${raw.byteLength} bytes, expected ${size * count}`);
  }
  if (code === T.FLOAT) {
    // Bulk copy on little-endian hosts (raw_data is little-endian); element-wise reads otherwise.
    if (LITTLE_ENDIAN) return new Float32Array(new Uint8Array(raw).buffer);
    const f = new Float32Array(count);
    for (let i = 0; i < count; i++) f[i] = view.getFloat32(i * 4, true);
    return f;
  }
  for (let i = 0; i < count; i++) {
    const o = i * size;
    switch (code) {
      case T.DOUBLE: out[i] = view.getFloat64(o, true); break;
      case T.FLOAT16: out[i] = halfToFloat(view.getUint16(o, true)); break;
      case T.INT8: out[i] = view.getInt8(o); break;
      case T.UINT8: case T.BOOL: out[i] = view.getUint8(o); break;
      case T.INT16: out[i] = view.getInt16(o, true); break;
      case T.UINT16: out[i] = view.getUint16(o, true); break;
      case T.INT32: out[i] = view.getInt32(o, true); break;
      case T.UINT32: out[i] = view.getUint32(o, true); break;
      case T.INT64: out[i] = Number(view.getBigInt64(o, true)); break;
      case T.UINT64: out[i] = Number(view.getBigUint64(o, true)); break;
    }
  }
  return out;
}

/** Decodes a TensorProto (raw_data or the typed *_data fields) into a ConstTensor; external data is refused. */
export function tensorFromProto(t: onnx.ITensorProto): ConstTensor {
  const name = t.name ?? '';
  const code = t.dataType ?? 0;
  const dtype = dtypeOf(code, `tensor "${name}"`);
  const shape = (t.dims ?? []).map(toNumber);
  const count = shape.reduce((a, b) => a * b, 1);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData?.length ?? 0) > 0) {
    throw new UnsupportedError(`tensor "${name}" keeps its data in an external file; re-export with the weights inside the .onnx`);
  }
  let values: ArrayLike<number>;
  if (t.rawData && t.rawData.length > 0) values = readRaw(code, t.rawData, count, name);
  else if (code === T.FLOAT) values = t.floatData ?? [];
  else if (code === T.DOUBLE) values = t.doubleData ?? [];
  else if (code === T.INT64) values = (t.int64Data ?? []).map(toNumber);
  else if (code === T.UINT32 || code === T.UINT64) values = (t.uint64Data ?? []).map(toNumber);
  else if (code === T.FLOAT16) values = (t.int32Data ?? []).map(halfToFloat);
  else values = t.int32Data ?? [];
  if (values.length !== count) {
    throw new InvalidModelError(`tensor "${name}": ${values.length} values for shape [${shape.join(', ')}]`);
  }
  const data = dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
  return { dtype, shape, data };
}

function attrValue(a: onnx.IAttributeProto, where: string): AttrValue | undefined {
  const A = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case A.FLOAT: return a.f ?? 0;
    case A.INT: return toNumber(a.i ?? 0);
    case A.STRING: return Buffer.from(a.s ?? new Uint8Array()).toString('utf8');
    case A.TENSOR: return tensorFromProto(a.t ?? {});
    case A.FLOATS: return [...(a.floats ?? [])];
    case A.INTS: return (a.ints ?? []).map(toNumber);
    case A.STRINGS: return (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8'));
    default:
      throw new UnsupportedError(`${where}: attribute "${a.name}" of type ${A[a.type ?? 0] ?? a.type} is not supported`);
  }
}

function valueInfo(v: onnx.IValueInfoProto, index: number): OnnxValueInfo {
  const name = v.name ?? '';
  const tt = v.type?.tensorType;
  if (!tt) throw new UnsupportedError(`graph value "${name}" is not a tensor (sequences and maps are not supported)`);
  const dims = tt.shape?.dim ?? [];
  // An unset dim decodes as dim_value 0: treat it, like a dim_param, as known only at run time.
  const shape: Dim[] = dims.map((d, i) => {
    const n = d.dimValue == null ? 0 : toNumber(d.dimValue);
    return !d.dimParam && n > 0 ? n : d.dimParam || `${name}:${index}:${i}`;
  });
  return { name, dtype: dtypeOf(tt.elemType ?? 0, `graph value "${name}"`), shape };
}

/** Parses ONNX protobuf bytes. Throws InvalidModelError when they are not an ONNX model. */
export function readOnnx(bytes: Uint8Array): OnnxGraph {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new InvalidModelError(`not an ONNX model: ${(e as Error).message}`);
  }
  const g = model.graph;
  if (!g || !g.node) throw new InvalidModelError('not an ONNX model: it has no graph');
  const opsetEntry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = opsetEntry ? toNumber(opsetEntry.version ?? 0) : 1;
  const initializers = new Map<string, ConstTensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', tensorFromProto(t));
  const nodes = g.node.map((n, i): OnnxNode => {
    const name = n.name || `${n.opType}_${i}`;
    const attrs = new Map<string, AttrValue>();
    for (const a of n.attribute ?? []) {
      const v = attrValue(a, `${n.opType} node "${name}"`);
      if (v !== undefined) attrs.set(a.name ?? '', v);
    }
    return { name, opType: n.opType ?? '', domain: n.domain ?? '', inputs: n.input ?? [], outputs: n.output ?? [], attrs };
  });
  return {
    nodes,
    initializers,
    inputs: (g.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map(valueInfo),
    outputs: (g.output ?? []).map(valueInfo),
    opset,
    producer: `${model.producerName ?? ''} ${model.producerVersion ?? ''}`.trim(),
  };
}
