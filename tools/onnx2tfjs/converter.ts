// The conversion walk: ONNX nodes in topological order through the op registry into a TF GraphDef plus weights.
import { attr, GraphBuilder, TfNode } from './graph-builder';
import { NHWC, NodeContext, Env, recordSymbols } from './context';
import { identityPerm } from './const-math';
import { OnnxGraph, OnnxNode, readOnnx } from './reader';
import { OpRegistry, registry as defaultRegistry } from './ops';
import { DType, InvalidModelError, UnsupportedError, Value } from './types';

export interface ConvertOptions {
  /** 4-D ONNX inputs (NCHW) that the converted model takes as NHWC `[N, H, W, C]`; others keep ONNX's layout. */
  nhwcInputs?: string[];
  /** Signature key for an ONNX input or output name (default: the ONNX name). */
  rename?: Record<string, string>;
  /** Op converters to use (default: the full registry). */
  registry?: OpRegistry;
}

export interface TensorSpec {
  /** Signature key. */
  key: string;
  /** ONNX name. */
  onnxName: string;
  dtype: DType;
  /** Shape as the TF model sees it (-1 for run-time dims), so NHWC for `nhwcInputs`. */
  shape: number[];
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
}

interface SignatureEntry {
  name: string;
  dtype: string;
  tensorShape: { dim: { size: string }[] };
}

/** A converted model in memory: what model.json holds (minus shard paths) and the concatenated weights. */
export interface ConvertedModel {
  modelTopology: { node: TfNode[]; library: Record<string, never>; versions: { producer: number } };
  signature: { inputs: Record<string, SignatureEntry>; outputs: Record<string, SignatureEntry> };
  weightSpecs: WeightSpec[];
  weightData: Uint8Array;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  opset: number;
}

const TF_DT: Record<DType, string> = { float32: 'DT_FLOAT', int32: 'DT_INT32', int64: 'DT_INT32', bool: 'DT_BOOL' };

function signatureEntry(ref: string, s: TensorSpec): SignatureEntry {
  return { name: `${ref}:0`, dtype: TF_DT[s.dtype], tensorShape: { dim: s.shape.map((d) => ({ size: String(d) })) } };
}

/** Converts a parsed ONNX graph. Throws UnsupportedError naming op type, node and opset for anything untranslatable. */
export function convertGraph(graph: OnnxGraph, opts: ConvertOptions = {}): ConvertedModel {
  const reg = opts.registry ?? defaultRegistry;
  const g = new GraphBuilder();
  const env: Env = {
    values: new Map(),
    consumers: new Map(),
    graphOutputs: new Set(graph.outputs.map((o) => o.name)),
    absorbed: new Map<OnnxNode, string>(),
    symbols: { next: 0 },
    symbolSources: new Map(),
  };
  const keyOf = (name: string) => opts.rename?.[name] ?? name;
  for (const [name, t] of graph.initializers) env.values.set(name, { kind: 'const', tensor: t });
  for (const n of graph.nodes) {
    for (const i of n.inputs) if (i) env.consumers.set(i, [...(env.consumers.get(i) ?? []), n]);
  }

  const nhwc = new Set(opts.nhwcInputs ?? []);
  for (const n of nhwc) {
    const inp = graph.inputs.find((i) => i.name === n);
    if (!inp) throw new RangeError(`nhwcInputs: the model has no input "${n}" (inputs: ${graph.inputs.map((i) => i.name).join(', ')})`);
    if (inp.shape.length !== 4) throw new RangeError(`nhwcInputs: input "${n}" has rank ${inp.shape.length}; only 4-D NCHW inputs can be fed NHWC`);
  }
  const inputs: TensorSpec[] = [];
  const signature: ConvertedModel['signature'] = { inputs: {}, outputs: {} };
  for (const inp of graph.inputs) {
    const perm = nhwc.has(inp.name) ? NHWC : identityPerm(inp.shape.length);
    const spec: TensorSpec = {
      key: keyOf(inp.name),
      onnxName: inp.name,
      dtype: inp.dtype,
      shape: perm.map((a) => (typeof inp.shape[a] === 'number' ? (inp.shape[a] as number) : -1)),
    };
    const ref = g.op('Placeholder', [], { dtype: attr.type(inp.dtype), shape: attr.shape(spec.shape) }, spec.key);
    const value: Value = { kind: 'tensor', ref, dtype: inp.dtype, shape: [...inp.shape], perm: [...perm] };
    env.values.set(inp.name, value);
    recordSymbols(env, value);
    inputs.push(spec);
    signature.inputs[spec.key] = signatureEntry(ref, spec);
  }

  for (const node of graph.nodes) {
    const source = env.absorbed.get(node);
    if (source !== undefined) {
      const v = env.values.get(source);
      if (v) env.values.set(node.outputs[0], v);
      continue;
    }
    const ctx = new NodeContext(g, node, graph.opset, env);
    if (node.domain !== '' && node.domain !== 'ai.onnx') {
      ctx.fail(`operators of domain "${node.domain}" are not supported (only the default ONNX domain is)`);
    }
    const conv = reg[node.opType];
    if (!conv) {
      throw new UnsupportedError(`unsupported ONNX op "${node.opType}" (node "${node.name}", opset ${graph.opset}); see docs/op-coverage.md for the supported ops`);
    }
    for (const a of node.attrs.keys()) {
      if (!conv.attrs.includes(a)) ctx.fail(`attribute "${a}" is not supported`);
    }
    const outs = conv.convert(ctx);
    outs.forEach((v, i) => {
      if (node.outputs[i]) env.values.set(node.outputs[i], v);
      recordSymbols(env, v);
    });
  }

  const outputs: TensorSpec[] = [];
  for (const out of graph.outputs) {
    const v: Value | undefined = env.values.get(out.name);
    if (!v) throw new InvalidModelError(`graph output "${out.name}" is produced by no node`);
    const key = keyOf(out.name);
    const node: OnnxNode = { name: key, opType: 'Output', domain: '', inputs: [], outputs: [], attrs: new Map() };
    const ctx = new NodeContext(g, node, graph.opset, env);
    const t = ctx.plain(v);
    const ref = g.op('Identity', [t.ref], { T: attr.type(t.dtype) }, key);
    const spec: TensorSpec = { key, onnxName: out.name, dtype: t.dtype, shape: t.shape.map((d) => (typeof d === 'number' ? d : -1)) };
    outputs.push(spec);
    signature.outputs[key] = signatureEntry(ref, spec);
  }

  const total = g.weights.reduce((a, w) => a + w.data.byteLength, 0);
  const weightData = new Uint8Array(total);
  let off = 0;
  for (const w of g.weights) {
    weightData.set(w.data, off);
    off += w.data.byteLength;
  }
  return {
    modelTopology: { node: g.nodes, library: {}, versions: { producer: 1 } },
    signature,
    weightSpecs: g.weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })),
    weightData,
    inputs,
    outputs,
    opset: graph.opset,
  };
}

/** Converts ONNX protobuf bytes; see convertGraph. */
export function convertOnnx(bytes: Uint8Array, opts: ConvertOptions = {}): ConvertedModel {
  return convertGraph(readOnnx(bytes), opts);
}
