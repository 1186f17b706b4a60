// A small TF.js graph model (GraphDef JSON + weights) built in memory, with the ops a converted ResNet uses.
import type { io } from '@tensorflow/tfjs';
import { mulberry32 } from './random';

/** Input `input`: float32 [N, 16, 16, 3] NHWC. Output `logits`: float32 [N, 10]. */
export const INPUT_SHAPE = [16, 16, 3] as const;
export const NUM_CLASSES = 10;

/** Deterministic uniform values in [-scale, scale) (mulberry32), so every process builds the same model. */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (next() / 4294967296 * 2 - 1) * scale);
}

type Attr = Record<string, unknown>;
interface Node {
  name: string;
  op: string;
  input?: string[];
  attr?: Attr;
}

// GraphDef JSON stores string attributes base64-encoded (proto3 JSON bytes).
const str = (s: string): Attr => ({ s: Buffer.from(s).toString('base64') });
const ints = (xs: number[]): Attr => ({ list: { i: xs.map(String) } });
const FLOAT = { type: 'DT_FLOAT' };

/** Model artifacts for `tf.io.fromMemory`: conv, depthwise conv, bias, relu, relu6, max pool, pad, mean, matmul. */
export function tinyGraphModel(): io.ModelArtifacts {
  const weights: { name: string; shape: number[]; dtype: 'float32' | 'int32'; values: Float32Array | Int32Array }[] = [
    { name: 'conv1/w', shape: [3, 3, 3, 8], dtype: 'float32', values: seeded(3 * 3 * 3 * 8, 1, 0.5) },
    { name: 'conv1/b', shape: [8], dtype: 'float32', values: seeded(8, 2, 0.1) },
    { name: 'dw/w', shape: [3, 3, 8, 1], dtype: 'float32', values: seeded(3 * 3 * 8, 3, 0.5) },
    { name: 'dw/b', shape: [8], dtype: 'float32', values: seeded(8, 4, 0.1) },
    { name: 'conv2/w', shape: [1, 1, 8, 16], dtype: 'float32', values: seeded(8 * 16, 5, 0.5) },
    { name: 'pad/paddings', shape: [4, 2], dtype: 'int32', values: Int32Array.from([0, 0, 1, 1, 1, 1, 0, 0]) },
    { name: 'mean/axes', shape: [2], dtype: 'int32', values: Int32Array.from([1, 2]) },
    { name: 'fc/w', shape: [16, NUM_CLASSES], dtype: 'float32', values: seeded(16 * NUM_CLASSES, 6, 0.5) },
    { name: 'fc/b', shape: [NUM_CLASSES], dtype: 'float32', values: seeded(NUM_CLASSES, 7, 0.1) },
  ];
  const consts: Node[] = weights.map((w) => {
    const dtype = w.dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32';
    const dim = w.shape.map((size) => ({ size: String(size) }));
    return { name: w.name, op: 'Const', attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: { dim } } } } };
  });
  const conv = { T: FLOAT, padding: str('SAME'), data_format: str('NHWC'), dilations: ints([1, 1, 1, 1]) };
  const nodes: Node[] = [
    {
      name: 'input',
      op: 'Placeholder',
      attr: { dtype: FLOAT, shape: { shape: { dim: [-1, ...INPUT_SHAPE].map((size) => ({ size: String(size) })) } } },
    },
    ...consts,
    { name: 'conv1', op: 'Conv2D', input: ['input', 'conv1/w'], attr: { ...conv, strides: ints([1, 1, 1, 1]) } },
    { name: 'conv1/bias', op: 'BiasAdd', input: ['conv1', 'conv1/b'], attr: { T: FLOAT, data_format: str('NHWC') } },
    { name: 'conv1/relu', op: 'Relu', input: ['conv1/bias'], attr: { T: FLOAT } },
    { name: 'pad', op: 'Pad', input: ['conv1/relu', 'pad/paddings'], attr: { T: FLOAT } },
    {
      name: 'pool',
      op: 'MaxPool',
      input: ['pad'],
      attr: { T: FLOAT, ksize: ints([1, 3, 3, 1]), strides: ints([1, 2, 2, 1]), padding: str('VALID'),
        data_format: str('NHWC') },
    },
    { name: 'dw', op: 'DepthwiseConv2dNative', input: ['pool', 'dw/w'], attr: { ...conv, strides: ints([1, 1, 1, 1]) } },
    { name: 'dw/bias', op: 'BiasAdd', input: ['dw', 'dw/b'], attr: { T: FLOAT, data_format: str('NHWC') } },
    { name: 'dw/relu6', op: 'Relu6', input: ['dw/bias'], attr: { T: FLOAT } },
    { name: 'conv2', op: 'Conv2D', input: ['dw/relu6', 'conv2/w'], attr: { ...conv, strides: ints([1, 2, 2, 1]) } },
    { name: 'mean', op: 'Mean', input: ['conv2', 'mean/axes'], attr: { T: FLOAT, Tidx: { type: 'DT_INT32' },
      keep_dims: { b: false } } },
    { name: 'fc', op: 'MatMul', input: ['mean', 'fc/w'], attr: { T: FLOAT, transpose_a: { b: false },
      transpose_b: { b: false } } },
    { name: 'logits', op: 'AddV2', input: ['fc', 'fc/b'], attr: { T: FLOAT } },
  ];
  const data = Buffer.concat(weights.map((w) => Buffer.from(w.values.buffer, w.values.byteOffset, w.values.byteLength)));
  return {
    format: 'graph-model',
    modelTopology: { node: nodes, versions: { producer: 1 } },
    weightSpecs: weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })),
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  };
}
