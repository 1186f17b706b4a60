// ops/slice-join.ts against onnxruntime: Concat/Split/Slice/Gather/Pad with axes remapped to NHWC.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, checkAgainstOrt, ModelSpec, NodeSpec, tfOps } from './harness';

const i64 = (data: (number | bigint)[]) => ({ dtype: 'int64' as const, shape: [data.length], data });
const on4d = (nodes: NodeSpec[], outputs: string[], inits: ModelSpec['initializers'] = {}, extraInput = false, opset = 13): ModelSpec => ({
  inputs: [{ name: 'x', shape: ['N', 4, 3, 5] }, ...(extraInput ? [{ name: 'z', shape: ['N', 2, 3, 5] }] : [])],
  initializers: inits,
  nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['r'] }, ...nodes],
  outputs,
  opset,
});

test('Concat on channels of NHWC tensors (DenseNet/Inception), with an NCHW-fed input and on axis -1', async () => {
  const m = await checkAgainstOrt(on4d([{ op: 'Concat', inputs: ['r', 'x', 'r'], outputs: ['y'], attrs: { axis: A.i(1) } }], ['y']), { nhwc: ['x'] });
  assert.is(tfOps(m).Transpose, 1, 'only the NCHW output is transposed');
  await checkAgainstOrt(on4d([{ op: 'Concat', inputs: ['r', 'z'], outputs: ['y'], attrs: { axis: A.i(1) } }], ['y'], {}, true), { nhwc: ['x'] });
  await checkAgainstOrt(on4d([{ op: 'Concat', inputs: ['r', 'x'], outputs: ['y'], attrs: { axis: A.i(-1) } }], ['y']), { nhwc: ['x'] });
});

test('Split on channels: sizes as input (opset 13), as attribute (opset 11), and even', async () => {
  await checkAgainstOrt(on4d([{ op: 'Split', inputs: ['r', 'sp'], outputs: ['a', 'b'], attrs: { axis: A.i(1) } }], ['a', 'b'], { sp: i64([1, 3]) }), { nhwc: ['x'] });
  await checkAgainstOrt(on4d([{ op: 'Split', inputs: ['r'], outputs: ['a', 'b'], attrs: { axis: A.i(1), split: A.ints([3, 1]) } }], ['a', 'b'], {}, false, 11), { nhwc: ['x'] });
  await checkAgainstOrt(on4d([{ op: 'Split', inputs: ['r'], outputs: ['a', 'b'], attrs: { axis: A.i(-3) } }], ['a', 'b']), { nhwc: ['x'] });
});

test('Slice: half the channels (ShuffleNet), negative steps, negative starts, and the dynamic batch to the end', async () => {
  const slice = (starts: number[], ends: (number | bigint)[], axes: number[], steps?: number[]) => on4d(
    [{ op: 'Slice', inputs: ['r', 'st', 'en', 'ax', ...(steps ? ['sp'] : [])], outputs: ['y'] }], ['y'],
    { st: i64(starts), en: i64(ends), ax: i64(axes), ...(steps ? { sp: i64(steps) } : {}) },
  );
  await checkAgainstOrt(slice([0], [2], [1]), { nhwc: ['x'] });
  await checkAgainstOrt(slice([2], [9223372036854775807n], [1]), { nhwc: ['x'] });
  await checkAgainstOrt(slice([-1, 4], [-100, 0], [1, 3], [-1, -2]), { nhwc: ['x'] });
  await checkAgainstOrt(slice([-2, 1], [100, -1], [2, 3], [1, 1]), { nhwc: ['x'] });
  await checkAgainstOrt(slice([1], [9223372036854775807n], [0]), { nhwc: ['x'] });
});

test('Gather: a scalar index drops the axis, a vector index keeps it, negative indices count from the end', async () => {
  const gather = (idx: number[], scalar: boolean, axis: number) => on4d(
    [{ op: 'Gather', inputs: ['r', 'i'], outputs: ['y'], attrs: { axis: A.i(axis) } }], ['y'],
    { i: { dtype: 'int64', shape: scalar ? [] : [idx.length], data: idx } },
  );
  await checkAgainstOrt(gather([2], true, 1), { nhwc: ['x'] });
  await checkAgainstOrt(gather([-1], true, 3), { nhwc: ['x'] });
  await checkAgainstOrt(gather([3, 0, -2], false, 1), { nhwc: ['x'] });
});

test('Pad: constant with a value and reflect, on NHWC and plain tensors', async () => {
  const pad = (mode: string, pads: number[], value?: number) => on4d(
    [{ op: 'Pad', inputs: ['r', 'p', ...(value === undefined ? [] : ['v'])], outputs: ['y'], attrs: { mode: A.s(mode) } }], ['y'],
    { p: i64(pads), ...(value === undefined ? {} : { v: { dtype: 'float32', shape: [], data: [value] } }) },
  );
  await checkAgainstOrt(pad('constant', [0, 1, 2, 0, 0, 0, 1, 3], -2), { nhwc: ['x'] });
  await checkAgainstOrt(pad('reflect', [0, 0, 1, 2, 0, 0, 1, 1]), { nhwc: ['x'] });
  await checkAgainstOrt(pad('constant', [0, 0, 1, 1, 0, 0, 1, 1]));
});

test('constant subgraphs are folded: Range, Mod (both signs conventions), Slice of a 2-D constant, ScatterND', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: [2, 3] }],
    initializers: {
      start: { dtype: 'int64', shape: [], data: [-3] }, limit: { dtype: 'int64', shape: [], data: [3] }, delta: { dtype: 'int64', shape: [], data: [1] },
      three: { dtype: 'int64', shape: [], data: [4] },
      grid: { dtype: 'float32', shape: [4, 5], data: Array.from({ length: 20 }, (_, i) => i) },
      st: i64([1, 4]), en: i64([3, 0]), ax: i64([0, 1]), sp: i64([1, -2]),
      zeros: { dtype: 'float32', shape: [2, 3], data: [0, 0, 0, 0, 0, 0] },
      idx: { dtype: 'int64', shape: [2, 2], data: [0, 1, 1, -1] }, upd: { dtype: 'float32', shape: [2], data: [5, -7] },
    },
    nodes: [
      { op: 'Range', inputs: ['start', 'limit', 'delta'], outputs: ['r'] },
      { op: 'Mod', inputs: ['r', 'three'], outputs: ['m0'] },
      { op: 'Mod', inputs: ['r', 'three'], outputs: ['m1'], attrs: { fmod: A.i(1) } },
      { op: 'Sub', inputs: ['m0', 'm1'], outputs: ['dm'] },
      { op: 'Cast', inputs: ['dm'], outputs: ['dmf'], attrs: { to: A.i(1) } },
      { op: 'Slice', inputs: ['grid', 'st', 'en', 'ax', 'sp'], outputs: ['g'] },
      { op: 'ScatterND', inputs: ['zeros', 'idx', 'upd'], outputs: ['sc'] },
      { op: 'ReduceSum', inputs: ['dmf'], outputs: ['s1'], attrs: { keepdims: A.i(0) } },
      { op: 'Add', inputs: ['x', 'sc'], outputs: ['a'] },
      { op: 'Add', inputs: ['a', 's1'], outputs: ['b'] },
      { op: 'Flatten', inputs: ['g'], outputs: ['gf'], attrs: { axis: A.i(0) } },
      { op: 'ReduceSum', inputs: ['gf'], outputs: ['gs'], attrs: { keepdims: A.i(0) } },
      { op: 'Add', inputs: ['b', 'gs'], outputs: ['y'] },
    ],
    outputs: ['y'],
  };
  const m = await checkAgainstOrt(spec, { convert: {} });
  assert.not.ok('StridedSlice' in tfOps(m) || 'FloorMod' in tfOps(m), 'folded');
});

test('run-time Range, ScatterND and C-style Mod (fmod 1) match onnxruntime', async () => {
  const feeds = {
    a: { shape: [6], data: Float32Array.from([7, -7, 7, -7, 0, 5.5]) },
    b: { shape: [6], data: Float32Array.from([3, 3, -3, -3, 2, -2]) },
    n: { shape: [], data: Float32Array.from([5]) },
    d: { shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
  };
  await checkAgainstOrt({
    inputs: [{ name: 'a', shape: [6] }, { name: 'b', shape: [6] }, { name: 'n', shape: [] }, { name: 'd', shape: [3, 2] }],
    initializers: { zero: { dtype: 'float32', shape: [], data: [0] }, one: { dtype: 'float32', shape: [], data: [1] }, idx: { dtype: 'int64', shape: [1, 1], data: [2] }, upd: { dtype: 'float32', shape: [1, 2], data: [-1, -2] },
      idx2: { dtype: 'int64', shape: [3, 2], data: [0, 1, -1, 0, 0, 1] }, upd2: { dtype: 'float32', shape: [3], data: [10, 20, 30] } },
    nodes: [
      { op: 'Mod', inputs: ['a', 'b'], outputs: ['fm'], attrs: { fmod: A.i(1) } },
      { op: 'Range', inputs: ['zero', 'n', 'one'], outputs: ['r'] },
      { op: 'ScatterND', inputs: ['d', 'idx', 'upd'], outputs: ['s'] },
      { op: 'ScatterND', inputs: ['d', 'idx2', 'upd2'], outputs: ['sa'], attrs: { reduction: A.s('add') } },
    ],
    outputs: ['fm', 'r', 's', 'sa'],
    opset: 16,
  }, { feeds });
});

test('Dropout in training mode with ratio 0 is the identity (Swin attention)', async () => {
  await checkAgainstOrt(on4d([{ op: 'Dropout', inputs: ['r', 'ratio', 'train'], outputs: ['y', 'mask'] }], ['y'], {
    ratio: { dtype: 'float32', shape: [], data: [0] }, train: { dtype: 'bool', shape: [], data: [1] },
  }), { nhwc: ['x'] });
});

test.run();
