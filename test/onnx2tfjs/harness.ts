// Test harness: builds ONNX models with onnx-proto, runs them on onnxruntime-node and, converted, on tfjs-node.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs-node';
import { onnx } from 'onnx-proto';
import * as assert from 'uvu/assert';
import { tf } from '../helpers/runtime';
import { assertClose } from '../helpers/assert-close';
import { seeded } from '../helpers/tiny-graph-model';
import { openSession, writeSession } from '../../src/engine/session';
import { sessionModel } from '../../src/engine/session-graph';
import { convertOnnx, ConvertedModel, ConvertOptions } from '../../tools/onnx2tfjs';
import type { ParityModel } from '../../tools/onnx2tfjs/parity';

const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');

type ElemType = 'float32' | 'int64' | 'int32' | 'bool';
const CODE: Record<ElemType, number> = { float32: 1, int32: 6, int64: 7, bool: 9 };

/** Attribute constructors in ONNX's typed form. */
export const A = {
  i: (v: number): onnx.IAttributeProto => ({ type: onnx.AttributeProto.AttributeType.INT, i: v }),
  f: (v: number): onnx.IAttributeProto => ({ type: onnx.AttributeProto.AttributeType.FLOAT, f: v }),
  s: (v: string): onnx.IAttributeProto => ({ type: onnx.AttributeProto.AttributeType.STRING, s: Buffer.from(v) }),
  ints: (v: number[]): onnx.IAttributeProto => ({ type: onnx.AttributeProto.AttributeType.INTS, ints: v }),
  floats: (v: number[]): onnx.IAttributeProto => ({ type: onnx.AttributeProto.AttributeType.FLOATS, floats: v }),
  t: (t: Const): onnx.IAttributeProto => ({ type: onnx.AttributeProto.AttributeType.TENSOR, t: tensorProto('value', t) }),
};

/** A constant: initializer data (row-major). */
export interface Const {
  dtype: ElemType;
  shape: number[];
  /** int64 entries may be bigints (INT64_MAX does not fit a double). */
  data: (number | bigint)[] | Float32Array;
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, onnx.IAttributeProto>;
  name?: string;
}

export interface ModelSpec {
  nodes: NodeSpec[];
  /** Fed graph inputs; a string dim is symbolic. */
  inputs: { name: string; shape: (number | string)[]; dtype?: ElemType }[];
  initializers?: Record<string, Const>;
  outputs: string[];
  opset?: number;
}

export function tensorProto(name: string, c: Const): onnx.ITensorProto {
  const t: onnx.ITensorProto = { name, dims: c.shape, dataType: CODE[c.dtype] };
  if (c.dtype === 'float32') t.floatData = Array.from(c.data, Number);
  // int64 goes through raw_data: exact for any value, and it exercises the reader's raw path.
  else if (c.dtype === 'int64') t.rawData = new Uint8Array(BigInt64Array.from(Array.from(c.data, (v) => BigInt(v))).buffer);
  else t.int32Data = Array.from(c.data, Number);
  return t;
}

function valueInfo(name: string, dtype: ElemType, shape?: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: CODE[dtype], shape: shape ? { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } },
  };
}

/** Serialises a model (IR version 8); outputs get no declared shape so onnxruntime infers them. */
export function buildModel(spec: ModelSpec): Uint8Array {
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'onnx2tfjs-tests',
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }],
    graph: {
      name: 'test',
      node: spec.nodes.map((n, i) => ({
        opType: n.op,
        name: n.name ?? `${n.op}_${i}`,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([name, a]) => ({ ...a, name })),
      })),
      initializer: Object.entries(spec.initializers ?? {}).map(([name, c]) => tensorProto(name, c)),
      input: spec.inputs.map((i) => valueInfo(i.name, i.dtype ?? 'float32', i.shape)),
      output: spec.outputs.map((o) => valueInfo(o, 'float32')),
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

export interface Feed {
  shape: number[];
  data: Float32Array;
}

/** Seeded feeds for every graph input of `spec`, symbolic dims set to `dynamic`. */
export function feedsFor(spec: ModelSpec, dynamic = 2, scale = 2): Record<string, Feed> {
  const out: Record<string, Feed> = {};
  spec.inputs.forEach((i, k) => {
    const shape = i.shape.map((d) => (typeof d === 'number' ? d : dynamic));
    out[i.name] = { shape, data: seeded(shape.reduce((a, b) => a * b, 1), 17 + k, scale) };
  });
  return out;
}

export async function runOrt(bytes: Uint8Array, feeds: Record<string, Feed>): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>> {
  const session = await ort.InferenceSession.create(bytes);
  const input: Record<string, InstanceType<typeof ort.Tensor>> = {};
  for (const [k, f] of Object.entries(feeds)) input[k] = new ort.Tensor('float32', f.data, f.shape);
  const res = await session.run(input);
  const out: Record<string, { dims: readonly number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(res)) out[k] = { dims: t.dims, data: Float32Array.from(t.data as Float32Array) };
  await session.release();
  return out;
}

export async function loadConverted(m: ConvertedModel) {
  return tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: m.modelTopology,
    weightSpecs: m.weightSpecs,
    weightData: m.weightData.slice().buffer,
    signature: m.signature,
  } as Parameters<typeof tf.io.fromMemory>[0]));
}

/**
 * The converted model as the server runs it: one TensorFlow session (a SavedModel written by src/engine), for the
 * parity gate. Single input and output; `dispose` ends the session.
 */
export async function loadSession(m: ConvertedModel): Promise<ParityModel & { dispose(): void }> {
  const spec = (entry: { name: string; tensorShape: { dim: { size: string }[] } }) => ({
    name: entry.name.replace(/:0$/, ''),
    shape: entry.tensorShape.dim.map((d) => (/^-?\d+$/.test(d.size) ? Number(d.size) : -1)),
  });
  const [input] = Object.values(m.signature.inputs);
  const [output] = Object.values(m.signature.outputs);
  const model = sessionModel(
    { modelTopology: m.modelTopology, weightSpecs: m.weightSpecs, weightData: m.weightData.slice().buffer },
    { input: spec(input), output: spec(output) },
    { packedConvolutions: true },
  );
  const dir = mkdtempSync(path.join(os.tmpdir(), 'harness-session-'));
  try {
    writeSession(dir, model);
    const session = await openSession(tf, dir);
    return { execute: (inputs) => session.predict(Object.values(inputs)[0]) as Tensor, dispose: () => session.dispose() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the converted model; 4-D feeds of `nhwcInputs` are transposed NCHW -> NHWC first. */
export async function runConverted(m: ConvertedModel, feeds: Record<string, Feed>, nhwc: string[] = []) {
  const g = await loadConverted(m);
  try {
    const before = tf.memory().numTensors;
    const outputs = m.outputs.map((o) => o.key);
    const res = tf.tidy(() => {
      const named: Record<string, import('@tensorflow/tfjs-node').Tensor> = {};
      for (const [k, f] of Object.entries(feeds)) {
        const t = tf.tensor(f.data, f.shape, 'float32');
        named[k] = nhwc.includes(k) ? tf.transpose(t, [0, 2, 3, 1]) : t;
      }
      const r = g.execute(named, outputs);
      return (Array.isArray(r) ? r : [r]).map((t) => ({ dims: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) }));
    });
    assert.is(tf.memory().numTensors, before, 'converted model leaked tensors');
    return Object.fromEntries(outputs.map((k, i) => [k, res[i]]));
  } finally {
    g.dispose();
  }
}

/**
 * Converts `spec`, runs it on tfjs-node and onnxruntime with the same seeded feeds and compares every output
 * (shape and values). With `nhwc` the named 4-D inputs are fed NHWC, exercising the layout path.
 */
export async function checkAgainstOrt(spec: ModelSpec, opts: { nhwc?: string[]; atol?: number; rtol?: number; feeds?: Record<string, Feed>; convert?: ConvertOptions } = {}): Promise<ConvertedModel> {
  const bytes = buildModel(spec);
  const feeds = opts.feeds ?? feedsFor(spec);
  const expected = await runOrt(bytes, feeds);
  const m = convertOnnx(bytes, { nhwcInputs: opts.nhwc, ...opts.convert });
  const got = await runConverted(m, feeds, opts.nhwc);
  for (const o of spec.outputs) {
    assert.equal([...got[o].dims], [...expected[o].dims], `${o}: shape`);
    assertClose(got[o].data, expected[o].data, { atol: opts.atol ?? 1e-5, rtol: opts.rtol ?? 1e-5, what: o });
  }
  return m;
}

/** Random float32 constant with a seed. */
export function randConst(shape: number[], seed: number, scale = 1): Const & { data: Float32Array } {
  return { dtype: 'float32', shape, data: seeded(shape.reduce((a, b) => a * b, 1), seed, scale) };
}

/** TF op types of a converted model, with counts. */
export function tfOps(m: ConvertedModel): Record<string, number> {
  const ops: Record<string, number> = {};
  for (const n of m.modelTopology.node) ops[n.op] = (ops[n.op] ?? 0) + 1;
  return ops;
}
