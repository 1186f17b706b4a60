// ops/activation.ts against onnxruntime: Relu family, sigmoids, swish forms, Clip in both opset forms, PRelu, Softmax.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, buildModel, checkAgainstOrt, feedsFor, ModelSpec, NodeSpec, randConst, runConverted, tfOps } from './harness';
import { assertClose } from '../helpers/assert-close';
import { convertOnnx } from '../../tools/onnx2tfjs';

const one = (op: string, attrs: NodeSpec['attrs'] = {}, opset = 14, shape: (number | string)[] = ['N', 3, 4, 5], extra: Partial<ModelSpec> = {}, inputs: string[] = ['x']): ModelSpec => ({
  inputs: [{ name: 'x', shape }],
  nodes: [{ op, inputs, outputs: ['y'], attrs }],
  outputs: ['y'],
  opset,
  ...extra,
});

const cases: [string, ModelSpec][] = [
  ['Relu', one('Relu')],
  ['Sigmoid', one('Sigmoid')],
  ['Softplus', one('Softplus')],
  ['LeakyRelu alpha 0.1', one('LeakyRelu', { alpha: A.f(0.1) })],
  ['Elu', one('Elu')],
  ['HardSigmoid alpha 0.3 beta 0.4', one('HardSigmoid', { alpha: A.f(0.3), beta: A.f(0.4) })],
  ['HardSwish', one('HardSwish')],
  ['Clip opset 10 attributes', one('Clip', { min: A.f(-0.5), max: A.f(0.7) }, 10)],
  ['Clip opset 13 inputs, min only', one('Clip', {}, 13, undefined, { initializers: { lo: { dtype: 'float32', shape: [], data: [-0.25] } } }, ['x', 'lo'])],
  ['Clip opset 13 inputs, max only', one('Clip', {}, 13, undefined, { initializers: { hi: { dtype: 'float32', shape: [], data: [0.3] } } }, ['x', '', 'hi'])],
  ['PRelu with per-channel slope [C,1,1]', one('PRelu', {}, 14, undefined, { initializers: { s: randConst([3, 1, 1], 3) } }, ['x', 's'])],
];

for (const [name, spec] of cases) {
  test(`${name} matches onnxruntime, NHWC-fed and NCHW-fed`, async () => {
    await checkAgainstOrt(spec, { nhwc: ['x'], atol: 1e-6 });
    await checkAgainstOrt(spec, { atol: 1e-6 });
  });
}

test('Softmax and LogSoftmax over the channel axis of an NHWC tensor, and over the last axis', async () => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    await checkAgainstOrt(one(op, { axis: A.i(1) }, 13), { nhwc: ['x'] });
    await checkAgainstOrt(one(op, { axis: A.i(-1) }, 13), { nhwc: ['x'] });
    await checkAgainstOrt(one(op, { axis: A.i(2) }, 13, [2, 3, 4]));
  }
});

test('Softmax before opset 13 normalises over all axes from `axis` on (coerced to 2-D)', async () => {
  await checkAgainstOrt(one('Softmax', { axis: A.i(1) }, 11, [2, 3, 4]));
  await checkAgainstOrt(one('LogSoftmax', {}, 11, [2, 3, 4]));
});

test('PRelu at opset 6 with a [C] slope applies it along the channel axis (computed here: onnxruntime lacks opset 6)', async () => {
  const slope = randConst([3], 4);
  const spec = one('PRelu', {}, 6, [2, 3, 4, 5], { initializers: { s: slope } }, ['x', 's']);
  const feeds = feedsFor(spec);
  const got = await runConverted(convertOnnx(buildModel(spec), { nhwcInputs: ['x'] }), feeds, ['x']);
  const x = feeds.x.data;
  const expected = Float32Array.from(x, (v, i) => (v >= 0 ? v : Math.fround(v * slope.data[Math.floor(i / 20) % 3])));
  assertClose(got.y.data, expected, { atol: 1e-6, what: 'prelu' });
});

test('HardSwish is x * clip(x/6 + 1/2, 0, 1) in four elementwise ops', async () => {
  const m = await checkAgainstOrt(one('HardSwish'), { nhwc: ['x'] });
  assert.equal(['Mul', 'AddV2', 'ClipByValue'].map((op) => tfOps(m)[op]), [2, 1, 1]);
});

test.run();
