// PackedConv2D run eagerly, for the tests: a convolution (or matrix product) with a bias, an optional residual and an
// activation, its filter packed as the session graph packs it.
import type { Tensor } from '@tensorflow/tfjs-node';
import { packFilter, runPackedConv, type PackedConvOptions } from '../../src/engine/packed-conv';
import type { Tf } from '../../src/runtime';
import { seeded as values } from '../helpers/tiny-graph-model';

export interface ConvCase extends PackedConvOptions {
  /** [N, H, W, C], or [N, C] for a matrix product. */
  input: number[];
  outChannels: number;
  residual?: boolean;
}

/** The case's tensors: images, HWIO filter, bias, and the residual (shaped as the output) when it has one. */
export function caseTensors(tf: Tf, c: ConvCase, seed: number, outShape: number[]) {
  const [kh, kw] = c.kernel;
  const cin = c.input[c.input.length - 1];
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const filterShape = [kh, kw, cin, c.outChannels];
  return {
    images: tf.tensor(values(size(c.input), seed), c.input, 'float32'),
    filter: tf.tensor(values(size(filterShape), seed + 1).map((v) => v / Math.sqrt(kh * kw * cin)), filterShape, 'float32'),
    bias: tf.tensor1d(values(c.outChannels, seed + 2)),
    residual: c.residual ? tf.tensor(values(size(outShape), seed + 3), outShape, 'float32') : undefined,
  };
}

/** PackedConv2D on these tensors (filter HWIO, packed here). */
export function packedConv(tf: Tf, c: ConvCase, t: { images: Tensor; filter: Tensor; bias: Tensor; residual?: Tensor }): Tensor {
  const bytes = new Uint8Array((t.filter.dataSync() as Float32Array).slice().buffer);
  const packed = packFilter(bytes, { filterShape: t.filter.shape, transposed: false, algorithm: c.algorithm ?? 'direct' });
  const filter = tf.tensor(new Float32Array(packed.bytes.buffer), packed.shape, 'float32');
  try {
    return runPackedConv(tf, c, t.images, filter, t.bias, t.residual);
  } finally {
    filter.dispose();
  }
}
