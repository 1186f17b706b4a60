// The converted TF.js graph model as one TensorFlow graph: model.json and its weights become a frozen GraphDef in a
// SavedModel (saved-model.ts), which TensorFlow runs as one session call per batch. TensorFlow then sees the whole
// graph: Grappler fuses and prunes it and picks its own kernels, instead of tfjs's one op at a time.
//
// tfjs graph models use a few op forms TensorFlow's own op registry lacks or spells differently: _FusedConv2D and
// _FusedMatMul without TArgs, and tfjs's FusedDepthwiseConv2dNative. They are written out as the plain ops they
// stand for (convolution or product, BiasAdd, activation); Grappler fuses them again for the device it runs on.
import { savedModelBytes, type GraphNode, type JsonAttr, type JsonNode } from './saved-model';

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

const decodeString = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

/** The plain ops a tfjs fused node stands for, in order, the last one keeping the node's name. */
function unfuse(node: JsonNode): GraphNode[] | undefined {
  const base: Record<string, string> = { _FusedConv2D: 'Conv2D', FusedDepthwiseConv2dNative: 'DepthwiseConv2dNative', _FusedMatMul: 'MatMul' };
  const plain = base[node.op];
  if (!plain) return undefined;
  const attrs = { ...(node.attr ?? {}) };
  const fused = (attrs.fused_ops?.list?.s ?? []).map(decodeString);
  const numArgs = Number(attrs.num_args?.i ?? 0);
  for (const key of ['fused_ops', 'num_args', 'epsilon', 'leakyrelu_alpha', 'TArgs']) delete attrs[key];
  if (plain !== 'Conv2D') delete attrs.use_cudnn_on_gpu;
  if (plain === 'MatMul') {
    delete attrs.data_format;
    delete attrs.strides;
    delete attrs.dilations;
    delete attrs.padding;
  }
  const inputs = node.input ?? [];
  const [main, extra] = [inputs.slice(0, 2), inputs.slice(2)];
  if (extra.length !== numArgs) throw new Error(`${node.name}: ${node.op} has ${extra.length} extra inputs, num_args says ${numArgs}`);
  const T = attrs.T ?? { type: 'DT_FLOAT' };
  const steps: [string, string[], Record<string, JsonAttr>][] = [[plain, main, attrs]];
  for (const fusedOp of fused) {
    if (fusedOp === 'BiasAdd') {
      const bias = extra.shift();
      if (!bias) throw new Error(`${node.name}: BiasAdd without a bias input`);
      steps.push(['BiasAdd', [bias], { T, data_format: { s: Buffer.from('NHWC').toString('base64') } }]);
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

/**
 * saved_model.pb bytes of a SavedModel that holds the whole graph model as constants, with the signature
 * `serving_default`: `input` -> `output` (tensor names `<node>:0`).
 */
export function modelSavedModelBytes(model: GraphModelArtifacts, signature: SessionSignature): Uint8Array {
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
  const nodes: GraphNode[] = [];
  for (const node of model.modelTopology.node) {
    if (node.op === 'Const') {
      const weight = weights.get(node.name);
      if (!weight) throw new Error(`Const ${node.name} has no weight in the manifest`);
      const { value: _value, ...attrs } = node.attr ?? {};
      nodes.push({ name: node.name, op: 'Const', inputs: [], attrs, tensors: { value: weight } });
    } else {
      nodes.push(...(unfuse(node) ?? [plain(node)]));
    }
  }
  const spec = ({ name, shape }: { name: string; shape: number[] }) => ({ name, dtype: 'DT_FLOAT', shape });
  return savedModelBytes(nodes, { inputs: [spec(signature.input)], outputs: [spec(signature.output)] });
}
