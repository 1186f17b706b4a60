// ops/pool.ts against onnxruntime: pads, ceil_mode, count_include_pad, auto_pad, global pools.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, buildModel, checkAgainstOrt, ModelSpec, NodeSpec } from './harness';
import { convertOnnx } from '../../tools/onnx2tfjs/converter';

const pool = (op: string, attrs: NodeSpec['attrs'], hw = [9, 8]): ModelSpec => ({
  inputs: [{ name: 'x', shape: ['N', 3, hw[0], hw[1]] }],
  nodes: [{ op, inputs: ['x'], outputs: ['y'], attrs }],
  outputs: ['y'],
});

const cases: [string, NodeSpec['attrs'], number[]?][] = [
  ['3x3 stride 2 pads 1 (ResNet stem)', { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) }, [16, 16]],
  ['3x3 stride 1 pads 1 (TF SAME)', { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]) }],
  ['2x2 stride 2 no pads', { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) }],
  ['3x3 stride 2 ceil_mode (GoogLeNet/SqueezeNet)', { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), ceil_mode: A.i(1) }],
  ['3x3 stride 2 ceil_mode with pads', { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]), ceil_mode: A.i(1) }, [10, 7]],
  ['asymmetric pads', { kernel_shape: A.ints([3, 2]), pads: A.ints([0, 1, 2, 0]) }],
  ['auto_pad SAME_UPPER stride 2', { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), auto_pad: A.s('SAME_UPPER') }],
  ['auto_pad SAME_LOWER stride 2', { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]), auto_pad: A.s('SAME_LOWER') }, [7, 7]],
];

for (const [name, attrs, hw] of cases) {
  test(`MaxPool ${name}`, async () => {
    await checkAgainstOrt(pool('MaxPool', attrs, hw), { nhwc: ['x'] });
  });
  for (const include of [0, 1]) {
    test(`AveragePool ${name}, count_include_pad ${include}`, async () => {
      await checkAgainstOrt(pool('AveragePool', { ...attrs, count_include_pad: A.i(include) }, hw), { nhwc: ['x'] });
    });
  }
}

test('GlobalAveragePool and GlobalMaxPool reduce the NHWC spatial axes', async () => {
  await checkAgainstOrt(pool('GlobalAveragePool', {}), { nhwc: ['x'] });
  await checkAgainstOrt(pool('GlobalMaxPool', {}));
});

test('MaxPool storage_order 1 without an Indices output converts (it only orders the indices)', async () => {
  await checkAgainstOrt(pool('MaxPool', { kernel_shape: A.ints([2, 2]), storage_order: A.i(1) }), { nhwc: ['x'] });
});

test('MaxPool whose Indices output is used is refused', () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', shape: [1, 3, 8, 8] }],
    nodes: [{ op: 'MaxPool', name: 'mp', inputs: ['x'], outputs: ['y', 'idx'], attrs: { kernel_shape: A.ints([2, 2]) } }],
    outputs: ['y', 'idx'],
  });
  assert.throws(() => convertOnnx(bytes), /MaxPool node "mp" \(opset 13\): the Indices output is not supported/);
});

test.run();
