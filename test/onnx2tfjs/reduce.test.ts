// ops/reduce.ts against onnxruntime: axes remapped to the NHWC layout, keepdims both ways, axes as input.
import { test } from 'uvu';
import { A, checkAgainstOrt, ModelSpec, NodeSpec } from './harness';

const reduce = (op: string, attrs: NodeSpec['attrs'], opset = 13, axesInput?: number[]): ModelSpec => ({
  inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }],
  initializers: axesInput ? { axes: { dtype: 'int64', shape: [axesInput.length], data: axesInput } } : {},
  nodes: [{ op, inputs: axesInput ? ['x', 'axes'] : ['x'], outputs: ['y'], attrs }],
  outputs: ['y'],
  opset,
});

for (const op of ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd']) {
  test(`${op} over channels (keepdims), over H,W (dropped), over all axes`, async () => {
    await checkAgainstOrt(reduce(op, { axes: A.ints([1]) }), { nhwc: ['x'] });
    await checkAgainstOrt(reduce(op, { axes: A.ints([2, -1]), keepdims: A.i(0) }), { nhwc: ['x'] });
    await checkAgainstOrt(reduce(op, { axes: A.ints([1, 3]), keepdims: A.i(0) }), { nhwc: ['x'] });
    await checkAgainstOrt(reduce(op, {}), { nhwc: ['x'] });
  });
}

test('ReduceSum takes axes as an input from opset 13', async () => {
  await checkAgainstOrt(reduce('ReduceSum', { keepdims: A.i(0) }, 13, [1]), { nhwc: ['x'] });
  await checkAgainstOrt(reduce('ReduceSum', { axes: A.ints([2, 3]) }, 11), { nhwc: ['x'] });
});

test('LayerNorm decomposed over channels (ConvNeXt at opset < 17): ReduceMean/Sub/Pow/Sqrt/Div', async () => {
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: ['N', 6, 4, 5] }],
    initializers: { two: { dtype: 'float32', shape: [], data: [2] }, eps: { dtype: 'float32', shape: [], data: [1e-6] } },
    nodes: [
      { op: 'ReduceMean', inputs: ['x'], outputs: ['m'], attrs: { axes: A.ints([1]) } },
      { op: 'Sub', inputs: ['x', 'm'], outputs: ['d'] },
      { op: 'Pow', inputs: ['d', 'two'], outputs: ['d2'] },
      { op: 'ReduceMean', inputs: ['d2'], outputs: ['v'], attrs: { axes: A.ints([1]) } },
      { op: 'Add', inputs: ['v', 'eps'], outputs: ['ve'] },
      { op: 'Sqrt', inputs: ['ve'], outputs: ['s'] },
      { op: 'Div', inputs: ['d', 's'], outputs: ['y'] },
    ],
    outputs: ['y'],
  }, { nhwc: ['x'], atol: 2e-5, rtol: 2e-5 });
});

test.run();
