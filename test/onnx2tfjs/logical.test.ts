// ops/logical.ts against onnxruntime: comparisons, Not and Where at run time (with NHWC layouts) and folded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAgainstOrt, ModelSpec, randConst, tfOps } from './harness';

test('Where(Greater(x, c), x, Less-masked y) with a per-channel constant on NHWC tensors; Equal and Not', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }, { name: 'y', shape: ['N', 3, 4, 5] }],
    initializers: { c: randConst([3, 1, 1], 2), zero: { dtype: 'float32', shape: [], data: [0] } },
    nodes: [
      { op: 'Relu', inputs: ['x'], outputs: ['rx'] },
      { op: 'Greater', inputs: ['rx', 'c'], outputs: ['g'] },
      { op: 'Less', inputs: ['y', 'zero'], outputs: ['l'] },
      { op: 'Not', inputs: ['l'], outputs: ['nl'] },
      { op: 'Where', inputs: ['nl', 'y', 'zero'], outputs: ['ym'] },
      { op: 'Where', inputs: ['g', 'rx', 'ym'], outputs: ['w'] },
      { op: 'Equal', inputs: ['rx', 'zero'], outputs: ['e'] },
      { op: 'Where', inputs: ['e', 'c', 'w'], outputs: ['out'] },
    ],
    outputs: ['out'],
  };
  const m = await checkAgainstOrt(spec, { nhwc: ['x', 'y'] });
  assert.is(tfOps(m).SelectV2, 3);
});

test('comparisons and Where of constants are folded', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: [4] }],
    initializers: { a: { dtype: 'float32', shape: [4], data: [1, 5, -2, 0] }, b: { dtype: 'float32', shape: [4], data: [1, 2, 3, 0] } },
    nodes: [
      { op: 'Equal', inputs: ['a', 'b'], outputs: ['e'] },
      { op: 'Where', inputs: ['e', 'a', 'b'], outputs: ['w'] },
      { op: 'Add', inputs: ['x', 'w'], outputs: ['y'] },
    ],
    outputs: ['y'],
  };
  const m = await checkAgainstOrt(spec);
  assert.not.ok('SelectV2' in tfOps(m) || 'Equal' in tfOps(m));
});

test.run();
