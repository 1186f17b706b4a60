// The converted TF.js graph model as one TensorFlow graph: model.json and its weights become a GraphDef in a
// SavedModel (saved-model.ts), its large weights as variables, which TensorFlow runs as one session call per
// batch. TensorFlow then sees the whole graph: Grappler fuses and prunes it and picks its own kernels, instead of
// tfjs's one op at a time.
//
// tfjs graph models use a few op forms TensorFlow's own op registry lacks or spells differently: _FusedConv2D
// without TArgs (added here), tfjs's FusedDepthwiseConv2dNative (written out as depthwise convolution,
// bias and activation, which Grappler fuses again), a ConcatV2 of one tensor.
import { packedNode, packFilter, planPacking, type PackedNode } from './packed-conv';
import { bytesOf, fromBase64, savedModelBytes, toBase64, type GraphNode, type JsonAttr, type JsonNode } from './saved-model';

/** The parts of a TF.js graph model this module reads (model.json's JSON encoding of TF protos). */
export interface GraphModelArtifacts {
  modelTopology: { node: JsonNode[] };
  weightSpecs: { name: string; shape: number[]; dtype: string }[];
  weightData: ArrayBuffer;
}

/** The one float32 input and one float32 output the signature exposes (node names; -1 for a free dimension). */
export interface SessionSignature {
  input: { name: string; shape: number[] };
  output: { name: string; shape: number[] };
}

const WEIGHT_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };
const TF_DTYPE: Record<string, string> = { float32: 'DT_FLOAT', int32: 'DT_INT32', bool: 'DT_BOOL' };

/**
 * A tfjs fused node as TensorFlow's registry wants it. _FusedConv2D and _FusedMatMul are TensorFlow ops too
 * (_FusedConv2D lacking only TArgs, the types of its extra inputs); kept fused, they also stay out of Grappler's own fusions, one of
 * which (MatMul + BiasAdd + a broadcast Add) fails at run time. tfjs's FusedDepthwiseConv2dNative has no TensorFlow
 * kernel and is written out as the plain ops it stands for (unfuse).
 */
function fused(node: JsonNode, weightShape: (name: string) => number[] | undefined): GraphNode[] | undefined {
  const rankOf = (name: string) => weightShape(name)?.length;
  if (node.op === '_FusedConv2D' || node.op === '_FusedMatMul') {
    const attrs = { ...(node.attr ?? {}) };
    const numArgs = Number(attrs.num_args?.i ?? 0);
    const T = attrs.T?.type ?? 'DT_FLOAT';
    // _FusedConv2D declares its extra inputs' types; _FusedMatMul's share T.
    if (node.op === '_FusedConv2D') attrs.TArgs = { list: { type: Array.from({ length: numArgs }, () => T) } };
    const own = { name: node.name, op: node.op, inputs: node.input ?? [], attrs };
    return node.op === '_FusedMatMul' ? atLeastTwoRows(own, weightShape) : [own];
  }
  if (node.op === 'MatMul') return atLeastTwoRows({ name: node.name, op: 'MatMul', inputs: node.input ?? [], attrs: node.attr ?? {} }, weightShape);
  return unfuse(node, rankOf);
}

/**
 * A matrix product whose left side gets one zero row more, dropped again after it. TensorFlow multiplies a single
 * row by another path (matrix-vector) whose float rounding differs from the one for two or more rows; this way a
 * batch of one image rounds exactly as any larger batch, so an answer never depends on its batch.
 */
function atLeastTwoRows(product: GraphNode, weightShape: (name: string) => number[] | undefined): GraphNode[] {
  const [a, b] = product.inputs;
  const shape = weightShape(b);
  const transposeA = product.attrs?.transpose_a?.b === true;
  if (!shape || shape.length !== 2 || transposeA) return [product];
  const depth = product.attrs?.transpose_b?.b === true ? shape[1] : shape[0];
  const base = product.name;
  const I32 = { type: 'DT_INT32' };
  const ints = (name: string, values: number[]): GraphNode => ({
    name, op: 'Const', inputs: [], attrs: { dtype: I32 }, tensors: { value: { dtype: 'DT_INT32', shape: [values.length], bytes: bytesOf(Int32Array.from(values)) } },
  });
  const T = product.attrs?.T ?? { type: 'DT_FLOAT' };
  return [
    { name: `${base}/pad_row`, op: 'Const', inputs: [], attrs: { dtype: T }, tensors: { value: { dtype: T.type ?? 'DT_FLOAT', shape: [1, depth], bytes: new Uint8Array(4 * depth) } } },
    { name: `${base}/pad_axis`, op: 'Const', inputs: [], attrs: { dtype: I32 }, tensors: { value: { dtype: 'DT_INT32', shape: [], bytes: bytesOf(Int32Array.of(0)) } } },
    { name: `${base}/padded`, op: 'ConcatV2', inputs: [a, `${base}/pad_row`, `${base}/pad_axis`], attrs: { T, N: { i: 2 }, Tidx: I32 } },
    { ...product, name: `${base}/rows`, inputs: [`${base}/padded`, ...product.inputs.slice(1)] },
    ints(`${base}/begin`, [0, 0]),
    ints(`${base}/end`, [-1, 0]),
    ints(`${base}/strides`, [1, 1]),
    {
      name: base, op: 'StridedSlice', inputs: [`${base}/rows`, `${base}/begin`, `${base}/end`, `${base}/strides`],
      attrs: { T, Index: I32, begin_mask: { i: 0 }, end_mask: { i: 2 }, ellipsis_mask: { i: 0 }, new_axis_mask: { i: 0 }, shrink_axis_mask: { i: 0 } },
    },
  ];
}

/** The plain ops a tfjs fused node stands for, in order, the last one keeping the node's name. */
function unfuse(node: JsonNode, rankOf: (name: string) => number | undefined): GraphNode[] | undefined {
  const base: Record<string, string> = { FusedDepthwiseConv2dNative: 'DepthwiseConv2dNative' };
  const plain = base[node.op];
  if (!plain) return undefined;
  const attrs = { ...(node.attr ?? {}) };
  const fused = (attrs.fused_ops?.list?.s ?? []).map(fromBase64);
  const numArgs = Number(attrs.num_args?.i ?? 0);
  for (const key of ['fused_ops', 'num_args', 'epsilon', 'leakyrelu_alpha', 'TArgs']) delete attrs[key];
  delete attrs.use_cudnn_on_gpu;
  const inputs = node.input ?? [];
  const [main, extra] = [inputs.slice(0, 2), inputs.slice(2)];
  if (extra.length !== numArgs) throw new Error(`${node.name}: ${node.op} has ${extra.length} extra inputs, num_args says ${numArgs}`);
  const T = attrs.T ?? { type: 'DT_FLOAT' };
  const steps: [string, string[], Record<string, JsonAttr>][] = [[plain, main, attrs]];
  for (const fusedOp of fused) {
    if (fusedOp === 'BiasAdd') {
      const bias = extra.shift();
      if (!bias) throw new Error(`${node.name}: BiasAdd without a bias input`);
      // tfjs broadcasts the fused bias; TensorFlow's BiasAdd takes only a vector (a Gemm's C can be [1, 1]).
      steps.push(rankOf(bias) === 1
        ? ['BiasAdd', [bias], { T, data_format: { s: toBase64('NHWC') } }]
        : ['AddV2', [bias], { T }]);
    } else if (['Relu', 'Relu6', 'Elu', 'Sigmoid', 'Tanh'].includes(fusedOp)) {
      steps.push([fusedOp, [], { T }]);
    } else if (fusedOp === 'LeakyRelu') {
      steps.push(['LeakyRelu', [], { T, alpha: { f: node.attr?.leakyrelu_alpha?.f ?? 0.2 } }]);
    } else {
      throw new Error(`${node.name}: fused op ${fusedOp} of ${node.op} has no plain TensorFlow form here`);
    }
  }
  // Chain the steps: each consumes the previous one's output; the last keeps the node's name for its consumers.
  const names = steps.map(([op], k) => (k === steps.length - 1 ? node.name : `${node.name}/unfused_${k}_${op}`));
  return steps.map(([op, own, attrs], k) => ({ name: names[k], op, inputs: k === 0 ? own : [names[k - 1], ...own], attrs }));
}

/** A node as TensorFlow's registry wants it; tfjs is laxer: it takes a ConcatV2 of one tensor (TF: at least 2). */
function plain(node: JsonNode): GraphNode {
  const inputs = node.input ?? [];
  const attrs = node.attr ?? {};
  if (node.op === 'ConcatV2' && inputs.length === 2) {
    return { name: node.name, op: 'Identity', inputs: [inputs[0]], attrs: { T: attrs.T ?? { type: 'DT_FLOAT' } } };
  }
  return { name: node.name, op: node.op, inputs, attrs };
}

/** A weight the session holds in a resource variable, and the value a session call assigns it once loaded. */
export interface VariableValue {
  /** The weight's node name; its initial value is fed as `${name}/initial_value:0`. */
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** How the session graph is written. */
export interface SessionOptions {
  /**
   * Convolutions as PackedConv2D, their filters packed (packed-conv.ts): for a session on the CPU. The op must be
   * registered (registerOp) in every process that loads the graph.
   */
  packedConvolutions: boolean;
}

/** A SavedModel of the graph model, and the values of its variables. */
export interface SessionModel {
  savedModel: Uint8Array;
  variables: VariableValue[];
}

/**
 * float32 weights of this many bytes or more become variables; smaller ones (biases, shapes) stay constants.
 * TensorFlow copies the graph several times while it optimises it and keeps copies after; with the weights as
 * constants every copy carried them (about 0.5 GiB per session for ResNet18, docs/runtime.md).
 */
const VARIABLE_MIN_BYTES = 4096;
/** The output whose session call assigns every variable its initial value (fed by name). */
export const ASSIGN_VARIABLES = 'weights/assigned:0';
export const initialValueName = (variable: string): string => `${variable}/initial_value:0`;

/** A weight as a resource variable: its handle, the op that assigns it, and a read under the weight's own name. */
function variableNodes(name: string, dtype: JsonAttr, shape: number[]): GraphNode[] {
  const shapeAttr = { shape: { dim: shape.map((size) => ({ size })) } };
  const handle = `${name}/variable`;
  const value = initialValueName(name).replace(/:0$/, '');
  return [
    { name: handle, op: 'VarHandleOp', inputs: [], attrs: { dtype, shape: shapeAttr, shared_name: { s: toBase64(name) }, container: { s: '' } } },
    { name: value, op: 'Placeholder', inputs: [], attrs: { dtype, shape: shapeAttr } },
    { name: `${name}/assign`, op: 'AssignVariableOp', inputs: [handle, value], attrs: { dtype } },
    { name, op: 'ReadVariableOp', inputs: [handle], attrs: { dtype } },
  ];
}

/**
 * A SavedModel of the whole graph model with the signature `serving_default`: `input` -> `output` (tensor names
 * `<node>:0`). Large float32 weights are resource variables (see VARIABLE_MIN_BYTES): the caller runs
 * ASSIGN_VARIABLES once, feeding each variable's value, before the first prediction.
 */
export function sessionModel(model: GraphModelArtifacts, signature: SessionSignature, options: SessionOptions): SessionModel {
  const weights = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  let offset = 0;
  for (const spec of model.weightSpecs) {
    const per = WEIGHT_BYTES[spec.dtype];
    if (per === undefined) throw new Error(`weight ${spec.name} has dtype ${spec.dtype}; the session graph takes float32, int32 and bool`);
    const length = spec.shape.reduce((a, b) => a * b, 1) * per;
    if (offset + length > model.weightData.byteLength) throw new Error(`weight ${spec.name} reaches past the end of the weight data`);
    weights.set(spec.name, { dtype: TF_DTYPE[spec.dtype], shape: spec.shape, bytes: new Uint8Array(model.weightData, offset, length) });
    offset += length;
  }
  const plan = options.packedConvolutions ? planPacking(model.modelTopology.node, (name) => weights.get(name)?.shape) : undefined;
  const nodes: GraphNode[] = [];
  const variables: VariableValue[] = [];
  for (const node of model.modelTopology.node) {
    if (node.op === 'Const') {
      const stored = weights.get(node.name);
      if (!stored) throw new Error(`Const ${node.name} has no weight in the manifest`);
      const packing = plan?.filters.get(node.name);
      const weight = packing ? { ...stored, ...packFilter(stored.bytes, packing) } : stored;
      const { value: _value, ...attrs } = node.attr ?? {};
      if (weight.dtype === 'DT_FLOAT' && weight.bytes.byteLength >= VARIABLE_MIN_BYTES) {
        nodes.push(...variableNodes(node.name, attrs.dtype ?? { type: 'DT_FLOAT' }, weight.shape));
        variables.push({ name: node.name, ...weight });
      } else {
        nodes.push({ name: node.name, op: 'Const', inputs: [], attrs, tensors: { value: weight } });
      }
    } else if (plan?.packed.has(node.name)) {
      nodes.push(...packedNode(plan.packed.get(node.name) as PackedNode));
    } else if (!plan?.fused.has(node.name)) {
      nodes.push(...(fused(node, (name) => weights.get(name)?.shape) ?? [plain(node)]));
    }
  }
  if (variables.length > 0) {
    // A constant that waits for every assignment: fetching it assigns them all.
    const [name] = ASSIGN_VARIABLES.split(':');
    nodes.push({
      name, op: 'Const', inputs: variables.map((v) => `^${v.name}/assign`), attrs: { dtype: { type: 'DT_INT32' } },
      tensors: { value: { dtype: 'DT_INT32', shape: [], bytes: bytesOf(Int32Array.of(variables.length)) } },
    });
  }
  const spec = ({ name, shape }: { name: string; shape: number[] }) => ({ name, dtype: 'DT_FLOAT', shape });
  return { savedModel: savedModelBytes(nodes, { inputs: [spec(signature.input)], outputs: [spec(signature.output)] }), variables };
}
