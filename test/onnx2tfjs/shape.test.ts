// ops/shape.ts against onnxruntime: flattening NHWC maps in NCHW order, shape subgraphs with a dynamic batch,
// channel shuffle, Squeeze/Unsqueeze, Cast, Constant, Identity/Dropout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, checkAgainstOrt, ModelSpec, randConst, tfOps } from './harness';

const i64 = (data: number[]) => ({ dtype: 'int64' as const, shape: [data.length], data });

test('Flatten of a conv output keeps NCHW element order (VGG/AlexNet heads), axis 1 and axis 2', async () => {
  for (const axis of [1, 2]) {
    await checkAgainstOrt({
      inputs: [{ name: 'x', shape: ['N', 3, 5, 4] }],
      initializers: { w: randConst([6, 3, 3, 3], 1) },
      nodes: [{ op: 'Conv', inputs: ['x', 'w'], outputs: ['c'] }, { op: 'Flatten', inputs: ['c'], outputs: ['y'], attrs: { axis: A.i(axis) } }],
      outputs: ['y'],
    }, { nhwc: ['x'] });
  }
});

test('x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape with a dynamic batch is folded', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }],
    initializers: { zero: { dtype: 'int64', shape: [], data: [0] }, minus1: i64([-1]), ax0: i64([0]) },
    nodes: [
      { op: 'Relu', inputs: ['x'], outputs: ['r'] },
      { op: 'Shape', inputs: ['r'], outputs: ['s'] },
      { op: 'Gather', inputs: ['s', 'zero'], outputs: ['n'], attrs: { axis: A.i(0) } },
      { op: 'Unsqueeze', inputs: ['n', 'ax0'], outputs: ['n1'] },
      { op: 'Concat', inputs: ['n1', 'minus1'], outputs: ['shape'], attrs: { axis: A.i(0) } },
      { op: 'Reshape', inputs: ['r', 'shape'], outputs: ['y'] },
    ],
    outputs: ['y'],
  };
  const m = await checkAgainstOrt(spec, { nhwc: ['x'] });
  assert.not.ok('Shape' in tfOps(m) || 'GatherV2' in tfOps(m), 'the shape subgraph leaves no run-time ops');
});

test('ShuffleNet channel shuffle: Reshape [N,2,C/2,H,W] -> Transpose -> Reshape [N,C,H,W] on an NHWC tensor', async () => {
  const m = await checkAgainstOrt({
    inputs: [{ name: 'x', shape: ['N', 6, 3, 4] }],
    initializers: { s1: i64([-1, 2, 3, 3, 4]), s2: i64([-1, 6, 3, 4]), w: randConst([6, 6, 1, 1], 2) },
    nodes: [
      { op: 'Relu', inputs: ['x'], outputs: ['r'] },
      { op: 'Reshape', inputs: ['r', 's1'], outputs: ['a'] },
      { op: 'Transpose', inputs: ['a'], outputs: ['b'], attrs: { perm: A.ints([0, 2, 1, 3, 4]) } },
      { op: 'Reshape', inputs: ['b', 's2'], outputs: ['c'] },
      { op: 'Conv', inputs: ['c', 'w'], outputs: ['y'] },
    ],
    outputs: ['y'],
  }, { nhwc: ['x'] });
  // The split of C is a reshape in NHWC storage; only the shuffle itself and the NCHW output move data.
  assert.is(tfOps(m).Transpose, 2);
});

test('Reshape with 0 (copy) and -1 (infer), and allowzero', async () => {
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }],
    initializers: { s: i64([0, 3, -1]) },
    nodes: [{ op: 'Reshape', inputs: ['x', 's'], outputs: ['y'] }],
    outputs: ['y'],
  }, { nhwc: ['x'] });
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    initializers: { s: i64([4, 6]) },
    nodes: [{ op: 'Reshape', inputs: ['x', 's'], outputs: ['y'], attrs: { allowzero: A.i(1) } }],
    outputs: ['y'],
    opset: 14,
  });
});

test('Transpose of a plain tensor, Squeeze and Unsqueeze (attribute and input forms)', async () => {
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: [2, 1, 3, 4] }],
    initializers: { ax: i64([1]), ax2: i64([0, 3]) },
    nodes: [
      { op: 'Transpose', inputs: ['x'], outputs: ['t'], attrs: { perm: A.ints([3, 1, 0, 2]) } },
      { op: 'Squeeze', inputs: ['t', 'ax'], outputs: ['s'] },
      { op: 'Unsqueeze', inputs: ['s', 'ax2'], outputs: ['y'] },
    ],
    outputs: ['y'],
  });
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: [2, 1, 3] }],
    nodes: [
      { op: 'Squeeze', inputs: ['x'], outputs: ['s'], attrs: { axes: A.ints([1]) } },
      { op: 'Unsqueeze', inputs: ['s'], outputs: ['y'], attrs: { axes: A.ints([-1]) } },
    ],
    outputs: ['y'],
    opset: 11,
  });
});

test('Cast float -> int64 -> float truncates toward zero; Constant, Identity and Dropout pass values through', async () => {
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: [3, 4] }],
    nodes: [
      { op: 'Constant', inputs: [], outputs: ['k'], attrs: { value: A.t({ dtype: 'float32', shape: [4], data: [1, 2, 3, 4] }) } },
      { op: 'Mul', inputs: ['x', 'k'], outputs: ['xk'] },
      { op: 'Cast', inputs: ['xk'], outputs: ['i'], attrs: { to: A.i(7) } },
      { op: 'Cast', inputs: ['i'], outputs: ['f'], attrs: { to: A.i(1) } },
      { op: 'Identity', inputs: ['f'], outputs: ['g'] },
      { op: 'Dropout', inputs: ['g'], outputs: ['y'] },
    ],
    outputs: ['y'],
  });
});

test('a reshape keeping two run-time dims reads them from the input at run time', async () => {
  const m = await checkAgainstOrt({
    inputs: [{ name: 'x', shape: ['N', 'M', 4] }],
    initializers: { s: i64([0, 0, 2, 2]) },
    nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['r'] }, { op: 'Reshape', name: 'rs', inputs: ['r', 's'], outputs: ['y'] }],
    outputs: ['y'],
  }, { feeds: { x: { shape: [3, 2, 4], data: Float32Array.from({ length: 24 }, (_, i) => i - 12) } } });
  assert.ok(tfOps(m).Shape >= 1, 'the shape is assembled at run time');
});

test('Expand of a constant by a shape holding the batch (ViT class token), and of a run-time tensor', async () => {
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: ['N', 3, 4] }],
    initializers: {
      tok: randConst([1, 1, 4], 1), zero: { dtype: 'int64', shape: [], data: [0] }, ax0: i64([0]), minus: i64([-1]),
    },
    nodes: [
      { op: 'Shape', inputs: ['x'], outputs: ['s'] },
      { op: 'Gather', inputs: ['s', 'zero'], outputs: ['n'] },
      { op: 'Unsqueeze', inputs: ['n', 'ax0'], outputs: ['n1'] },
      { op: 'Concat', inputs: ['n1', 'minus', 'minus'], outputs: ['want'], attrs: { axis: A.i(0) } },
      // torch.onnx's expand(n, -1, -1): -1 entries replaced by 1 through ConstantOfShape/Mul/Equal/Where.
      { op: 'Shape', inputs: ['want'], outputs: ['ws'] },
      { op: 'ConstantOfShape', inputs: ['ws'], outputs: ['c1'], attrs: { value: A.t({ dtype: 'int64', shape: [1], data: [1] }) } },
      { op: 'Mul', inputs: ['c1', 'minus'], outputs: ['cm'] },
      { op: 'Equal', inputs: ['want', 'cm'], outputs: ['eq'] },
      { op: 'Where', inputs: ['eq', 'c1', 'want'], outputs: ['shape'] },
      { op: 'Expand', inputs: ['tok', 'shape'], outputs: ['t'] },
      { op: 'Concat', inputs: ['t', 'x'], outputs: ['y'], attrs: { axis: A.i(1) } },
    ],
    outputs: ['y'],
  }, { feeds: { x: { shape: [3, 3, 4], data: Float32Array.from({ length: 36 }, (_, i) => Math.cos(i)) } } });
  await checkAgainstOrt({
    inputs: [{ name: 'x', shape: [3, 1] }],
    initializers: { s: i64([2, 3, 4]) },
    nodes: [{ op: 'Expand', inputs: ['x', 's'], outputs: ['y'] }],
    outputs: ['y'],
  });
});

test('Expand by a shape fed at run time broadcasts both ways (BroadcastArgs)', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: [3, 1] }, { name: 's', shape: [2] }],
    nodes: [{ op: 'Cast', inputs: ['s'], outputs: ['si'], attrs: { to: A.i(7) } }, { op: 'Expand', inputs: ['x', 'si'], outputs: ['y'] }],
    outputs: ['y'],
  };
  await checkAgainstOrt(spec, { feeds: { x: { shape: [3, 1], data: Float32Array.from([1, -2, 3]) }, s: { shape: [2], data: Float32Array.from([1, 4]) } } });
});

test.run();
