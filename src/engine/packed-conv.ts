// Convolutions and matrix products of the session graph as PackedConv2D (src/native/conv.c), for a session on the
// CPU: each filter is packed here once, as the session graph is written, into the panels the op's kernels read
// (TensorFlow's own kernels pack it again on every call), and a residual addition and ReLU that follow a
// convolution run inside it (docs/runtime.md, "The convolution op").
import type { Tensor } from '@tensorflow/tfjs-node';
import { nativeBackend, type Tf } from '../runtime';
import { registerOp } from '../tf-ops';
import { fromBase64, toBase64, type GraphNode, type JsonAttr, type JsonNode } from './saved-model';

/** Output channels per panel of a packed filter (PANEL in src/native/conv.c, which checks the filter's shape). */
export const PANEL = 32;

/**
 * Largest Cin x Cout of a 3 x 3 filter run by Winograd's algorithm. Its packed filter is 16/9 the size of the direct
 * one, and at batch 1 a large filter costs more to read than its arithmetic (docs/runtime.md, "Winograd's F(2x2,
 * 3x3)"): ResNet18's 512-channel layer stays direct.
 */
export const WINOGRAD_MAX_WEIGHTS = 256 * 256;

const text = (attr: JsonAttr | undefined): string | undefined => (attr?.s === undefined ? undefined : fromBase64(attr.s));
const ACTIVATIONS = ['Relu', 'Relu6'];

/** How a node becomes PackedConv2D. */
export interface PackedNode {
  /** The convolution or matrix product it stands for. */
  node: JsonNode;
  /** Its filter as a convolution's: [KH, KW, Cin, Cout] (a product's [Cin, Cout] as [1, 1, Cin, Cout]). */
  filterShape: number[];
  /** The weight is stored [Cout, Cin] (a product with transpose_b). */
  transposed: boolean;
  /** How the op computes it: 'winograd' for 3 x 3 stride-1 convolutions of moderate size, else 'direct'. */
  algorithm: 'direct' | 'winograd';
  activation: 'None' | 'Relu' | 'Relu6';
  /** The tensor added after the bias (a residual connection), when an addition was fused in. */
  residual?: string;
  /** The name its output takes: the node's, or that of the last node fused in. */
  name: string;
}

/** How a filter is packed. */
export type FilterPacking = Pick<PackedNode, 'filterShape' | 'transposed' | 'algorithm'>;

/** What packing changes in a graph: the nodes that become PackedConv2D (by name), the filters packed, the nodes fused away. */
export interface PackingPlan {
  packed: Map<string, PackedNode>;
  filters: Map<string, FilterPacking>;
  fused: Set<string>;
}

/** The activation a tfjs node's fused ops ask for, or undefined for fusions PackedConv2D lacks. */
function fusedActivation(node: JsonNode): PackedNode['activation'] | undefined {
  if (node.op === 'Conv2D' || node.op === 'MatMul') return 'None';
  if (Number(node.attr?.num_args?.i ?? 0) !== 1) return undefined;
  const fused = (node.attr?.fused_ops?.list?.s ?? []).map(fromBase64);
  if (fused[0] !== 'BiasAdd' || fused.length > 2) return undefined;
  if (fused.length === 1) return 'None';
  return ACTIVATIONS.includes(fused[1]) ? (fused[1] as PackedNode['activation']) : undefined;
}

/** The filter PackedConv2D takes for this node with weight `weightShape`, or undefined when it cannot stand for it. */
function packableFilter(node: JsonNode, weightShape: number[] | undefined): FilterPacking | undefined {
  const attrs = node.attr ?? {};
  if ((attrs.T?.type ?? 'DT_FLOAT') !== 'DT_FLOAT' || fusedActivation(node) === undefined || !weightShape) return undefined;
  if (node.op === 'Conv2D' || node.op === '_FusedConv2D') {
    const undilated = (attrs.dilations?.list?.i ?? []).every((d) => Number(d) === 1);
    const nhwc = (text(attrs.data_format) ?? 'NHWC') === 'NHWC';
    const padding = ['SAME', 'VALID', 'EXPLICIT'].includes(text(attrs.padding) ?? '');
    if (weightShape.length !== 4 || !undilated || !nhwc || !padding) return undefined;
    const [kh, kw, cin, cout] = weightShape;
    const unstrided = (attrs.strides?.list?.i ?? [1, 1, 1, 1]).every((s) => Number(s) === 1);
    const winograd = kh === 3 && kw === 3 && unstrided && cin * cout <= WINOGRAD_MAX_WEIGHTS;
    return { filterShape: weightShape, transposed: false, algorithm: winograd ? 'winograd' : 'direct' };
  }
  if (node.op === 'MatMul' || node.op === '_FusedMatMul') {
    const transposed = attrs.transpose_b?.b === true;
    const [cin, cout] = transposed ? [...weightShape].reverse() : weightShape;
    return weightShape.length === 2 && attrs.transpose_a?.b !== true ? { filterShape: [1, 1, cin, cout], transposed, algorithm: 'direct' } : undefined;
  }
  return undefined;
}

/**
 * Which nodes of a tfjs graph become PackedConv2D: convolutions and matrix products whose filter is a weight no
 * other node reads, with an addition (AddV2 or Add, the other input a residual) and then a ReLU or ReLU6 fused in
 * where the convolution has no activation of its own and nothing else reads the intermediate results.
 */
export function planPacking(nodes: JsonNode[], weightShape: (name: string) => number[] | undefined): PackingPlan {
  const strip = (input: string) => input.replace(/^\^/, '').replace(/:0$/, '');
  const readers = new Map<string, JsonNode[]>();
  for (const node of nodes) {
    for (const input of node.input ?? []) readers.set(strip(input), [...(readers.get(strip(input)) ?? []), node]);
  }
  const onlyReader = (name: string): JsonNode | undefined => {
    const list = readers.get(name) ?? [];
    return list.length === 1 && !(list[0].input ?? []).some((i) => i === `^${name}`) ? list[0] : undefined;
  };
  const plan: PackingPlan = { packed: new Map(), filters: new Map(), fused: new Set() };
  for (const node of nodes) {
    const [input, filter] = node.input ?? [];
    if (input === undefined || filter === undefined || onlyReader(filter) !== node) continue;
    const packing = packableFilter(node, weightShape(filter));
    if (!packing) continue;
    const entry: PackedNode = { node, ...packing, activation: fusedActivation(node) as PackedNode['activation'], name: node.name };
    const add = onlyReader(node.name);
    if (entry.activation === 'None' && add && ['AddV2', 'Add'].includes(add.op) && (add.input ?? []).length === 2 && !plan.fused.has(add.name)) {
      const others = (add.input ?? []).filter((i) => strip(i) !== node.name);
      // A weight added is a constant that broadcasts (a second bias), not a residual connection: TensorFlow's AddV2
      // adds it faster than the op's broadcasting path.
      if (others.length === 1 && !others[0].startsWith('^') && weightShape(strip(others[0])) === undefined) {
        entry.residual = others[0];
        entry.name = add.name;
        plan.fused.add(add.name);
        const act = onlyReader(add.name);
        if (act && ACTIVATIONS.includes(act.op)) {
          entry.activation = act.op as PackedNode['activation'];
          entry.name = act.name;
          plan.fused.add(act.name);
        }
      }
    }
    plan.packed.set(node.name, entry);
    plan.filters.set(filter, packing);
  }
  return plan;
}

/**
 * A float32 filter [KH, KW, Cin, Cout] (little-endian bytes; stored [Cout, Cin] when `transposed`) as PackedConv2D's
 * panels [ceil(Cout / PANEL), KH * KW * Cin, PANEL]: panel p holds output channels p * PANEL onwards, zeros past Cout.
 * For the 'winograd' algorithm, see winogradFilter.
 */
export function packFilter(bytes: Uint8Array, { filterShape, transposed, algorithm }: FilterPacking): { shape: number[]; bytes: Uint8Array } {
  if (algorithm === 'winograd') return winogradFilter(bytes, filterShape);
  const cout = filterShape[3];
  const k = filterShape[0] * filterShape[1] * filterShape[2];
  const panels = Math.ceil(cout / PANEL);
  const src = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (src.length !== k * cout) throw new RangeError(`filter of shape [${filterShape.join(', ')}] has ${src.length} values`);
  const packed = new Float32Array(panels * k * PANEL);
  for (let o = 0; o < cout; o++) {
    const at = Math.floor(o / PANEL) * k * PANEL + (o % PANEL);
    for (let i = 0; i < k; i++) packed[at + i * PANEL] = transposed ? src[o * k + i] : src[i * cout + o];
  }
  return { shape: [panels, k, PANEL], bytes: new Uint8Array(packed.buffer) };
}

/**
 * A 3 x 3 filter [3, 3, Cin, Cout] as Winograd's F(2x2, 3x3) wants it: G g G^T for each input and output channel
 * (G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]), computed in double precision and rounded once, in panels
 * [16, ceil(Cout / PANEL), Cin, PANEL]: entry xi = 4 * row + column of the 4 x 4 result.
 */
export function winogradFilter(bytes: Uint8Array, filterShape: number[]): { shape: number[]; bytes: Uint8Array } {
  const [kh, kw, cin, cout] = filterShape;
  if (kh !== 3 || kw !== 3) throw new RangeError(`Winograd's F(2x2, 3x3) takes a 3 x 3 filter, got ${kh} x ${kw}`);
  const src = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (src.length !== 9 * cin * cout) throw new RangeError(`filter of shape [${filterShape.join(', ')}] has ${src.length} values`);
  const G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]];
  const panels = Math.ceil(cout / PANEL);
  const packed = new Float32Array(16 * panels * cin * PANEL);
  const g = (y: number, x: number, i: number, o: number) => src[((y * 3 + x) * cin + i) * cout + o];
  for (let i = 0; i < cin; i++) {
    for (let o = 0; o < cout; o++) {
      const column = Math.floor(o / PANEL) * cin * PANEL + i * PANEL + (o % PANEL);
      for (let r = 0; r < 4; r++) {
        for (let c = 0; c < 4; c++) {
          let sum = 0;
          for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) sum += G[r][y] * g(y, x, i, o) * G[c][x];
          packed[(4 * r + c) * panels * cin * PANEL + column] = sum;
        }
      }
    }
  }
  return { shape: [16, panels, cin, PANEL], bytes: new Uint8Array(packed.buffer) };
}

/** The PackedConv2D node of a plan entry, and a zero bias for a node without one. */
export function packedNode(entry: PackedNode): GraphNode[] {
  const { node, filterShape } = entry;
  const attrs = node.attr ?? {};
  const [input, filter, bias] = node.input ?? [];
  const control = (node.input ?? []).filter((name) => name.startsWith('^'));
  const [kh, kw, , cout] = filterShape;
  const nodes: GraphNode[] = [];
  let biasInput = bias;
  if (node.op === 'Conv2D' || node.op === 'MatMul') {
    biasInput = `${node.name}/zero_bias`;
    nodes.push({
      name: biasInput, op: 'Const', inputs: [], attrs: { dtype: { type: 'DT_FLOAT' } },
      tensors: { value: { dtype: 'DT_FLOAT', shape: [cout], bytes: new Uint8Array(4 * cout) } },
    });
  }
  const conv = node.op === 'Conv2D' || node.op === '_FusedConv2D';
  const own: Record<string, JsonAttr> = {
    kernel_size: { list: { i: [kh, kw] } },
    strides: conv ? (attrs.strides ?? { list: { i: [1, 1, 1, 1] } }) : { list: { i: [1, 1, 1, 1] } },
    padding: conv ? (attrs.padding as JsonAttr) : { s: toBase64('VALID') },
    activation: { s: toBase64(entry.activation) },
    algorithm: { s: toBase64(entry.algorithm) },
    num_residual: { i: entry.residual === undefined ? 0 : 1 },
  };
  if (conv && attrs.explicit_paddings) own.explicit_paddings = attrs.explicit_paddings;
  const residual = entry.residual === undefined ? [] : [entry.residual];
  nodes.push({ name: entry.name, op: 'PackedConv2D', inputs: [input, filter, biasInput, ...residual, ...control], attrs: own });
  return nodes;
}

/** PackedConv2D's geometry and activation, as for TensorFlow's Conv2D. */
export interface PackedConvOptions {
  kernel: [number, number];
  strides?: [number, number];
  /** SAME, VALID, or explicit [[top, bottom], [left, right]]. */
  padding: 'SAME' | 'VALID' | [[number, number], [number, number]];
  activation?: PackedNode['activation'];
  /** 'winograd' takes a filter packed by winogradFilter; default 'direct'. */
  algorithm?: PackedNode['algorithm'];
}

/**
 * PackedConv2D run eagerly (the tests; the benchmark's FP32 rate): images [N, H, W, C] or [N, C], a filter as
 * packFilter packs it ([panels, K, PANEL]), bias [Cout] and an optional residual shaped as the output.
 */
export function runPackedConv(tf: Tf, options: PackedConvOptions, images: Tensor, filter: Tensor, bias: Tensor, residual?: Tensor): Tensor {
  const raw = nativeBackend(tf);
  const { TF_ATTR_INT, TF_ATTR_STRING } = raw.binding;
  const [sh, sw] = options.strides ?? [1, 1];
  const attrs = [
    { name: 'kernel_size', type: TF_ATTR_INT, value: options.kernel },
    { name: 'strides', type: TF_ATTR_INT, value: [1, sh, sw, 1] },
    { name: 'padding', type: TF_ATTR_STRING, value: typeof options.padding === 'string' ? options.padding : 'EXPLICIT' },
    { name: 'activation', type: TF_ATTR_STRING, value: options.activation ?? 'None' },
    { name: 'algorithm', type: TF_ATTR_STRING, value: options.algorithm ?? 'direct' },
    { name: 'num_residual', type: TF_ATTR_INT, value: residual ? 1 : 0 },
  ];
  if (typeof options.padding !== 'string') {
    const [[top, bottom], [left, right]] = options.padding;
    attrs.push({ name: 'explicit_paddings', type: TF_ATTR_INT, value: [0, 0, top, bottom, left, right, 0, 0] });
  }
  return raw.executeSingleOutput(registerOp('PackedConv2D'), attrs, [images, filter, bias, ...(residual ? [residual] : [])]);
}
