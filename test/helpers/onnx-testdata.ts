// Reads ONNX's official backend test cases (Debian's libonnx-testdata): model.onnx plus test_data_set_*/ protobufs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { onnx } from 'onnx-proto';

/** Where Debian's libonnx-testdata installs the cases. */
export const TESTDATA_DIR = '/usr/share/libonnx-testdata/data';
/** Suites run by the conformance test: one-op cases, PyTorch module and operator exports, small models. */
export const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'] as const;

const DT = onnx.TensorProto.DataType;

/** ONNX element type name ('FLOAT', 'INT64', ...) for a TensorProto data type code. */
export function elemTypeName(code: number): string {
  return DT[code] ?? `TYPE_${code}`;
}

/** A node as the conformance rules need it: op type (domain-qualified outside the default domain) and attributes. */
export interface CaseNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Attribute name -> INT/INTS/FLOAT/STRING value, or the element type name of a TENSOR attribute. */
  attrs: Map<string, number | number[] | string>;
}

export interface CaseValue {
  name: string;
  /** ONNX element type name, or 'SEQUENCE'/'MAP'/'OPTIONAL' for non-tensor values. */
  elemType: string;
  /** Static dims; null for a symbolic or unknown dim, or for a value without shape. */
  shape: (number | null)[] | null;
}

/** One official case, parsed enough to decide whether it is in scope; data sets are read on demand. */
export interface OnnxCase {
  /** `<suite>/<dir>`, e.g. `node/test_conv_with_strides_padding`. */
  name: string;
  dir: string;
  bytes: Uint8Array;
  /** Nodes of the main graph; ops with subgraphs (If, Loop, Scan) are listed, their bodies are not. */
  nodes: CaseNode[];
  /** Graph inputs without an initializer, in order: what input_<i>.pb feed. */
  inputs: CaseValue[];
  outputs: CaseValue[];
  /** Element type names of initializers and Constant/ConstantOfShape tensor attributes. */
  constantTypes: string[];
}

/** A tensor read from a TensorProto file, values in row-major order. */
export interface TestTensor {
  /** The TensorProto file it was read from. */
  file: string;
  elemType: string;
  dims: number[];
  /** Float32Array for FLOAT, Float64Array (exact integers, 0/1 for BOOL) for the rest. */
  values: Float32Array | Float64Array;
}

export interface DataSet {
  /** `test_data_set_<k>`. */
  name: string;
  inputs: TestTensor[];
  outputs: TestTensor[];
}

type Long = number | { toNumber(): number };
const num = (v: Long | null | undefined): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());

function valueOf(v: onnx.IValueInfoProto): CaseValue {
  const t = v.type;
  const name = v.name ?? '';
  if (!t?.tensorType) {
    const kind = t?.sequenceType ? 'SEQUENCE' : t?.mapType ? 'MAP' : 'OPTIONAL';
    return { name, elemType: kind, shape: null };
  }
  const dims = t.tensorType.shape?.dim;
  return {
    name,
    elemType: elemTypeName(t.tensorType.elemType ?? 0),
    shape: dims ? dims.map((d) => (d.dimParam || d.dimValue == null ? null : num(d.dimValue))) : null,
  };
}

function attrOf(a: onnx.IAttributeProto): number | number[] | string {
  const A = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case A.INT: return num(a.i);
    case A.FLOAT: return a.f ?? 0;
    case A.STRING: return Buffer.from(a.s ?? new Uint8Array()).toString('utf8');
    case A.INTS: return (a.ints ?? []).map(num);
    case A.FLOATS: return [...(a.floats ?? [])];
    case A.TENSOR: return elemTypeName(a.t?.dataType ?? 0);
    default: return A[a.type ?? 0] ?? `ATTR_${a.type}`;
  }
}

/** Parses one case folder's model.onnx. */
export function readCase(suite: string, dir: string): OnnxCase {
  const bytes = readFileSync(path.join(dir, 'model.onnx'));
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph ?? {};
  const initNames = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const nodes = (g.node ?? []).map((n): CaseNode => {
    const domain = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::` : '';
    return {
      opType: `${domain}${n.opType ?? ''}`,
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attrs: new Map((n.attribute ?? []).map((a) => [a.name ?? '', attrOf(a)])),
    };
  });
  const constantTypes = [
    ...(g.initializer ?? []).map((t) => elemTypeName(t.dataType ?? 0)),
    ...nodes
      .filter((n) => n.opType === 'Constant' || n.opType === 'ConstantOfShape')
      .flatMap((n) => [n.attrs.get('value'), n.attrs.has('value_string') || n.attrs.has('value_strings') ? 'STRING' : undefined])
      .filter((t): t is string => typeof t === 'string'),
  ];
  return {
    name: `${suite}/${path.basename(dir)}`,
    dir,
    bytes,
    nodes,
    inputs: (g.input ?? []).filter((v) => !initNames.has(v.name ?? '')).map(valueOf),
    outputs: (g.output ?? []).map(valueOf),
    constantTypes: [...new Set(constantTypes)],
  };
}

/** Every case of the given suites that has a model.onnx, sorted by name. */
export function listCases(suites: readonly string[] = SUITES, root = TESTDATA_DIR): OnnxCase[] {
  return suites.flatMap((suite) => {
    const base = path.join(root, suite);
    if (!existsSync(base)) throw new Error(`${base} does not exist: install Debian's libonnx-testdata (apt-get install libonnx-testdata)`);
    return readdirSync(base)
      .filter((d) => existsSync(path.join(base, d, 'model.onnx')))
      .sort()
      .map((d) => readCase(suite, path.join(base, d)));
  });
}

const BYTES: Record<number, number> = {
  [DT.FLOAT]: 4, [DT.DOUBLE]: 8, [DT.FLOAT16]: 2, [DT.INT8]: 1, [DT.UINT8]: 1, [DT.INT16]: 2, [DT.UINT16]: 2,
  [DT.INT32]: 4, [DT.UINT32]: 4, [DT.INT64]: 8, [DT.UINT64]: 8, [DT.BOOL]: 1,
};

function fromRaw(code: number, raw: Uint8Array, count: number, file: string): ArrayLike<number> {
  const size = BYTES[code];
  if (raw.byteLength !== size * count) throw new RangeError(`${file}: raw_data has ${raw.byteLength} bytes, expected ${size * count}`);
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read: Record<number, (o: number) => number> = {
    [DT.FLOAT]: (o) => v.getFloat32(o, true),
    [DT.DOUBLE]: (o) => v.getFloat64(o, true),
    [DT.FLOAT16]: (o) => halfToFloat(v.getUint16(o, true)),
    [DT.INT8]: (o) => v.getInt8(o),
    [DT.UINT8]: (o) => v.getUint8(o),
    [DT.BOOL]: (o) => v.getUint8(o),
    [DT.INT16]: (o) => v.getInt16(o, true),
    [DT.UINT16]: (o) => v.getUint16(o, true),
    [DT.INT32]: (o) => v.getInt32(o, true),
    [DT.UINT32]: (o) => v.getUint32(o, true),
    [DT.INT64]: (o) => Number(v.getBigInt64(o, true)),
    [DT.UINT64]: (o) => Number(v.getBigUint64(o, true)),
  };
  return Array.from({ length: count }, (_, i) => read[code](i * size));
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * 2 ** (e - 15) * (1 + f / 1024);
}

/** Reads a serialized TensorProto (input_<i>.pb / output_<i>.pb). Strings, complex and external data are refused. */
export function readTensorFile(file: string): TestTensor {
  const t = onnx.TensorProto.decode(readFileSync(file));
  const code = t.dataType ?? 0;
  const elemType = elemTypeName(code);
  if (BYTES[code] === undefined) throw new RangeError(`${file}: element type ${elemType} is not numeric`);
  if ((t.externalData?.length ?? 0) > 0) throw new RangeError(`${file}: external data is not supported`);
  const dims = (t.dims ?? []).map(num);
  const count = dims.reduce((a, b) => a * b, 1);
  let values: ArrayLike<number>;
  if (t.rawData && t.rawData.length > 0) values = fromRaw(code, t.rawData, count, file);
  else if (code === DT.FLOAT) values = t.floatData ?? [];
  else if (code === DT.DOUBLE) values = t.doubleData ?? [];
  else if (code === DT.INT64) values = (t.int64Data ?? []).map(num);
  else if (code === DT.UINT32 || code === DT.UINT64) values = (t.uint64Data ?? []).map(num);
  else if (code === DT.FLOAT16) values = (t.int32Data ?? []).map(halfToFloat);
  else values = t.int32Data ?? [];
  if (values.length !== count) throw new RangeError(`${file}: ${values.length} values for dims [${dims.join(', ')}]`);
  return { file, elemType, dims, values: code === DT.FLOAT ? Float32Array.from(values) : Float64Array.from(values) };
}

/** The case's data sets, each with input_<i>.pb and output_<i>.pb in index order. */
export function readDataSets(c: OnnxCase): DataSet[] {
  return readdirSync(c.dir)
    .filter((d) => d.startsWith('test_data_set_'))
    .sort()
    .map((name) => {
      const dir = path.join(c.dir, name);
      const files = readdirSync(dir);
      const numbered = (prefix: string) =>
        files
          .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
          .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
          .map((f) => readTensorFile(path.join(dir, f)));
      return { name, inputs: numbered('input_'), outputs: numbered('output_') };
    });
}

/** How a case's model is adapted before conversion; names are graph input/output names. */
export interface Adaptation {
  /** Graph inputs baked into the model as initializers, with the values of this data set's input files. */
  fold: Map<string, TestTensor>;
  /** Graph outputs removed (and unset on their node), for auxiliary outputs whose value is not compared. */
  drop: Set<string>;
}

/** Re-encodes the case's model with `a` applied. */
export function adaptModel(c: OnnxCase, a: Adaptation): Uint8Array {
  const model = onnx.ModelProto.decode(c.bytes);
  const g = model.graph as onnx.GraphProto;
  for (const [name, t] of a.fold) {
    const proto = onnx.TensorProto.decode(readFileSync(t.file));
    proto.name = name;
    g.initializer.push(proto);
    g.input = g.input.filter((v) => v.name !== name);
  }
  g.output = g.output.filter((v) => !a.drop.has(v.name ?? ''));
  for (const n of g.node) n.output = (n.output ?? []).map((o) => (a.drop.has(o) ? '' : o));
  return onnx.ModelProto.encode(model).finish();
}
