// ops/normalization.ts against onnxruntime: standalone BatchNormalization, LayerNormalization, LRN.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, checkAgainstOrt, Const, ModelSpec, randConst, tfOps } from './harness';

const bnParams = (c: number): Record<string, Const> => ({
  gamma: randConst([c], 3), beta: randConst([c], 4), mean: randConst([c], 5),
  var: { dtype: 'float32', shape: [c], data: Array.from(randConst([c], 6).data, (v) => 0.5 + Math.abs(v)) },
});

test('BatchNormalization on an NHWC tensor (not after a conv) is a per-channel scale and shift', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: ['N', 4, 5, 3] }],
    initializers: bnParams(4),
    nodes: [
      { op: 'Relu', inputs: ['x'], outputs: ['r'] },
      { op: 'BatchNormalization', inputs: ['r', 'gamma', 'beta', 'mean', 'var'], outputs: ['y'], attrs: { epsilon: A.f(1e-5) } },
    ],
    outputs: ['y'],
  };
  const m = await checkAgainstOrt(spec, { nhwc: ['x'] });
  assert.equal([tfOps(m).Mul, tfOps(m).AddV2], [1, 1]);
});

test('BatchNormalization on [N, C] and [N, C, L] inputs', async () => {
  for (const shape of [['N', 4], ['N', 4, 7]]) {
    await checkAgainstOrt({
      inputs: [{ name: 'x', shape }],
      initializers: bnParams(4),
      nodes: [{ op: 'BatchNormalization', inputs: ['x', 'gamma', 'beta', 'mean', 'var'], outputs: ['y'] }],
      outputs: ['y'],
    });
  }
});

test('LayerNormalization (opset 17) over the last axis, over C,H,W, and over channels of a permuted NHWC tensor', async () => {
  const ln = (shape: (number | string)[], axis: number, scaleShape: number[], pre: ModelSpec['nodes'] = [], nhwc = false) => checkAgainstOrt({
    inputs: [{ name: 'x', shape }],
    initializers: { s: randConst(scaleShape, 1), b: randConst(scaleShape, 2) },
    nodes: [...pre, { op: 'LayerNormalization', inputs: [pre.length ? 't' : 'x', 's', 'b'], outputs: ['y'], attrs: { axis: A.i(axis), epsilon: A.f(1e-6) } }],
    outputs: ['y'],
    opset: 17,
  }, { nhwc: nhwc ? ['x'] : [], atol: 2e-5, rtol: 2e-5 });
  await ln(['N', 4, 6], -1, [6]);
  await ln(['N', 3, 4, 5], 1, [3, 4, 5], [], true);
  await ln(['N', 3, 4, 5], -1, [3], [{ op: 'Transpose', inputs: ['x'], outputs: ['t'], attrs: { perm: A.ints([0, 2, 3, 1]) } }], true);
});

test('LRN with odd sizes matches onnxruntime (alpha divided by size)', async () => {
  for (const size of [3, 5]) {
    await checkAgainstOrt({
      inputs: [{ name: 'x', shape: ['N', 7, 4, 4] }],
      nodes: [{ op: 'LRN', inputs: ['x'], outputs: ['y'], attrs: { size: A.i(size), alpha: A.f(0.01), beta: A.f(0.75), bias: A.f(1.5) } }],
      outputs: ['y'],
    }, { nhwc: ['x'] });
  }
});

test.run();
