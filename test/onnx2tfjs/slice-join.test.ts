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

test.run();
