// ops/elementwise.ts against onnxruntime: broadcasting across layouts, permuted constants, folding, unary math.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildModel, checkAgainstOrt, Const, ModelSpec, randConst, tfOps } from './harness';
import { convertOnnx } from '../../tools/onnx2tfjs/converter';

const BINARY = ['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min'];

const binary = (op: string, b: { input?: (number | string)[]; init?: Const }): ModelSpec => ({
  inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }, ...(b.input ? [{ name: 'y', shape: b.input }] : [])],
  initializers: b.init ? { y: b.init } : {},
  nodes: [
    // A Relu first makes x a computed NHWC tensor rather than the input itself.
    { op: 'Relu', inputs: ['x'], outputs: ['rx'] },
    { op, inputs: ['rx', 'y'], outputs: ['z'] },
  ],
  outputs: ['z'],
});

for (const op of BINARY) {
  test(`${op}: NHWC tensor with a per-channel constant [C,1,1] (permuted at conversion time)`, async () => {
    const m = await checkAgainstOrt(binary(op, { init: randConst([3, 1, 1], 5) }), { nhwc: ['x'] });
    assert.is(tfOps(m).Transpose, 1, 'one Transpose (the NCHW output): the constant is permuted, not the tensor');
  });
  test(`${op}: NHWC tensor with a scalar, a full constant, an NCHW-fed tensor and a rank-2 tensor`, async () => {
    await checkAgainstOrt(binary(op, { init: randConst([], 6) }), { nhwc: ['x'] });
    await checkAgainstOrt(binary(op, { init: randConst([1, 3, 4, 5], 7) }), { nhwc: ['x'] });
    await checkAgainstOrt(binary(op, { input: ['N', 3, 4, 5] }), { nhwc: ['x'] });
    await checkAgainstOrt(binary(op, { input: [4, 5] }), { nhwc: ['x'] });
  });
}

test('Max and Min of a single input are that input; of three inputs, the elementwise extreme', async () => {
  for (const op of ['Max', 'Min']) {
    await checkAgainstOrt({ inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }], nodes: [{ op, inputs: ['x'], outputs: ['y'] }], outputs: ['y'] }, { nhwc: ['x'] });
    await checkAgainstOrt({
      inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }, { name: 'z', shape: [5] }],
      initializers: { c: randConst([3, 1, 1], 9) },
      nodes: [{ op, inputs: ['x', 'c', 'z'], outputs: ['y'] }],
      outputs: ['y'],
    }, { nhwc: ['x'] });
  }
});

test('Pow with per-channel integer exponents', async () => {
  await checkAgainstOrt(binary('Pow', { init: { dtype: 'float32', shape: [3, 1, 1], data: [2, 3, 1] } }), { nhwc: ['x'] });
});

test('constant subexpressions are folded: no graph op for Mul/Add of constants', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: [2, 3] }],
    initializers: { a: randConst([3], 1), b: randConst([1, 3], 2) },
    nodes: [
      { op: 'Mul', inputs: ['a', 'b'], outputs: ['ab'] },
      { op: 'Sqrt', inputs: ['ab'], outputs: ['sab'] },
      { op: 'Add', inputs: ['x', 'sab'], outputs: ['y'] },
    ],
    outputs: ['y'],
  };
  const m = await checkAgainstOrt(spec);
  assert.is(tfOps(m).AddV2, 1);
  assert.not.ok('Mul' in tfOps(m) || 'Sqrt' in tfOps(m));
});

const UNARY = ['Sqrt', 'Exp', 'Log', 'Neg', 'Abs', 'Reciprocal', 'Floor', 'Ceil', 'Erf', 'Tanh', 'Sin', 'Cos'];
for (const op of UNARY) {
  test(`${op} keeps the NHWC layout and matches onnxruntime (NaN where both give NaN)`, async () => {
    const spec: ModelSpec = { inputs: [{ name: 'x', shape: ['N', 3, 4, 5] }], nodes: [{ op, inputs: ['x'], outputs: ['y'] }], outputs: ['y'] };
    await checkAgainstOrt(spec, { nhwc: ['x'], atol: 1e-6, rtol: 2e-6 });
  });
}

test('Erf of a constant is folded to float32 accuracy', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: [7] }],
    initializers: { c: { dtype: 'float32', shape: [7], data: [-3, -1.5, -0.2, 0, 0.3, 2.4, 4] } },
    nodes: [{ op: 'Erf', inputs: ['c'], outputs: ['e'] }, { op: 'Add', inputs: ['x', 'e'], outputs: ['y'] }],
    outputs: ['y'],
  };
  await checkAgainstOrt(spec, { atol: 1e-7, rtol: 1e-7 });
});

test('a broadcast that does not fit is reported with both shapes', () => {
  const bytes = buildModel(binary('Add', { init: randConst([2, 1, 1], 1) }));
  assert.throws(() => convertOnnx(bytes, { nhwcInputs: ['x'] }), (e: Error) => e instanceof RangeError && /shapes \[N, 3, 4, 5\] and \[1, 2, 1, 1\] do not broadcast/.test(e.message));
});

test.run();
