// ops/conv.ts against onnxruntime: padding forms, strides, dilation, depthwise/grouped, BatchNorm folding, fusion.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, buildModel, checkAgainstOrt, Const, ModelSpec, NodeSpec, randConst, tfOps } from './harness';
import { convertOnnx } from '../../tools/onnx2tfjs/converter';

function convModel(opts: { c?: number; m?: number; k?: number[]; group?: number; attrs?: NodeSpec['attrs']; bias?: boolean; hw?: number[]; after?: NodeSpec[]; out?: string; extra?: Record<string, Const> }): ModelSpec {
  const { c = 4, m = 6, k = [3, 3], group = 1, hw = [9, 8], bias = true } = opts;
  return {
    inputs: [{ name: 'x', shape: ['N', c, hw[0], hw[1]] }],
    initializers: { w: randConst([m, c / group, k[0], k[1]], 1, 0.5), ...(bias ? { b: randConst([m], 2) } : {}), ...opts.extra },
    nodes: [{ op: 'Conv', inputs: bias ? ['x', 'w', 'b'] : ['x', 'w'], outputs: ['y'], attrs: { group: A.i(group), ...opts.attrs } }, ...(opts.after ?? [])],
    outputs: [opts.out ?? 'y'],
  };
}

const padCases: [string, NodeSpec['attrs']][] = [
  ['same-size symmetric pads (TF SAME)', { pads: A.ints([1, 1, 1, 1]) }],
  ['stride 2 with symmetric pads (explicit)', { pads: A.ints([1, 1, 1, 1]), strides: A.ints([2, 2]) }],
  ['asymmetric pads', { pads: A.ints([0, 1, 2, 0]) }],
  ['no padding, stride 3', { strides: A.ints([3, 2]) }],
  ['auto_pad SAME_UPPER stride 2', { auto_pad: A.s('SAME_UPPER'), strides: A.ints([2, 2]) }],
  ['auto_pad SAME_LOWER stride 2', { auto_pad: A.s('SAME_LOWER'), strides: A.ints([2, 2]) }],
  ['auto_pad VALID', { auto_pad: A.s('VALID') }],
  ['dilation 2 with pads', { dilations: A.ints([2, 2]), pads: A.ints([2, 1, 2, 1]) }],
  ['dilation 2 and stride 2 (dense conv, then subsampled)', { dilations: A.ints([2, 2]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) }],
];

for (const [name, attrs] of padCases) {
  test(`Conv ${name}: NHWC-fed and NCHW-fed inputs match onnxruntime`, async () => {
    await checkAgainstOrt(convModel({ attrs }), { nhwc: ['x'] });
    await checkAgainstOrt(convModel({ attrs }));
  });
}

test('Conv 1x5 kernel without bias', async () => {
  await checkAgainstOrt(convModel({ k: [1, 5], bias: false, attrs: { pads: A.ints([0, 2, 0, 2]) } }), { nhwc: ['x'] });
});

test('depthwise Conv (group = channels) becomes DepthwiseConv2dNative, multiplier 1 and 2, dilated', async () => {
  const m1 = await checkAgainstOrt(convModel({ c: 4, m: 4, group: 4, attrs: { pads: A.ints([1, 1, 1, 1]), strides: A.ints([2, 2]) } }), { nhwc: ['x'] });
  assert.ok(tfOps(m1).FusedDepthwiseConv2dNative === 1, JSON.stringify(tfOps(m1)));
  await checkAgainstOrt(convModel({ c: 3, m: 6, group: 3, bias: false, attrs: { pads: A.ints([1, 1, 1, 1]) } }), { nhwc: ['x'] });
  // TF's depthwise kernel has no dilation: the taps are spread with zeros.
  await checkAgainstOrt(convModel({ c: 4, m: 4, group: 4, attrs: { dilations: A.ints([2, 3]), pads: A.ints([2, 3, 2, 3]) } }), { nhwc: ['x'] });
});

test('grouped Conv as a depthwise conv with multiplier and a per-group Sum: bias once, Relu after the sum, strides', async () => {
  const m = await checkAgainstOrt(convModel({ c: 6, m: 4, group: 2, attrs: { pads: A.ints([1, 1, 1, 1]) } }), { nhwc: ['x'] });
  assert.equal([tfOps(m).FusedDepthwiseConv2dNative, tfOps(m).Sum], [1, 1]);
  await checkAgainstOrt(convModel({
    c: 8, m: 12, group: 4, attrs: { pads: A.ints([0, 1, 1, 0]), strides: A.ints([2, 2]) },
    after: [{ op: 'Relu', inputs: ['y'], outputs: ['r'] }], out: 'r',
  }), { nhwc: ['x'] });
  await checkAgainstOrt(convModel({ c: 6, m: 6, group: 3, bias: false, attrs: { dilations: A.ints([2, 2]), strides: A.ints([2, 2]) } }), { nhwc: ['x'] });
});

test('Conv -> BatchNormalization -> Relu folds into one _FusedConv2D', async () => {
  const bn: Record<string, Const> = {
    gamma: randConst([6], 3), beta: randConst([6], 4), mean: randConst([6], 5),
    var: { dtype: 'float32', shape: [6], data: Array.from(randConst([6], 6).data, (v) => 0.5 + Math.abs(v)) },
  };
  const spec = convModel({
    extra: bn,
    attrs: { pads: A.ints([1, 1, 1, 1]) },
    after: [
      { op: 'BatchNormalization', inputs: ['y', 'gamma', 'beta', 'mean', 'var'], outputs: ['z'], attrs: { epsilon: A.f(1e-3) } },
      { op: 'Relu', inputs: ['z'], outputs: ['r'] },
    ],
    out: 'r',
  });
  const m = await checkAgainstOrt(spec, { nhwc: ['x'] });
  const extra = Object.keys(tfOps(m)).filter((op) => !['Const', 'Identity', 'Placeholder', '_FusedConv2D', 'Transpose'].includes(op));
  assert.equal(extra, [], 'BatchNormalization and Relu leave no ops of their own');
  const conv = m.modelTopology.node.find((n) => n.op === '_FusedConv2D')!;
  assert.equal(conv.attr.fused_ops, { list: { s: ['BiasAdd', 'Relu'].map((s) => Buffer.from(s).toString('base64')) } });
});

test('Conv -> Clip(0, 6) fuses as Relu6; a Clip to other bounds stays a ClipByValue', async () => {
  const clip = (lo: number, hi: number) => convModel({
    extra: { lo: { dtype: 'float32', shape: [], data: [lo] }, hi: { dtype: 'float32', shape: [], data: [hi] } },
    after: [{ op: 'Clip', inputs: ['y', 'lo', 'hi'], outputs: ['z'] }],
    out: 'z',
  });
  const relu6 = await checkAgainstOrt(clip(0, 6), { nhwc: ['x'] });
  assert.not.ok('ClipByValue' in tfOps(relu6));
  const other = await checkAgainstOrt(clip(-1, 0.5), { nhwc: ['x'] });
  assert.is(tfOps(other).ClipByValue, 1);
});

test('a Conv output read twice is not fused (both readers see the raw conv)', async () => {
  const spec = convModel({ after: [{ op: 'Relu', inputs: ['y'], outputs: ['r'] }, { op: 'Add', inputs: ['y', 'r'], outputs: ['s'] }], out: 's' });
  await checkAgainstOrt(spec, { nhwc: ['x'] });
});

test('a 1-D Conv is refused with op type, node name and opset', () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', shape: [1, 2, 8] }],
    initializers: { w: randConst([3, 2, 3], 1) },
    nodes: [{ op: 'Conv', name: 'conv1d', inputs: ['x', 'w'], outputs: ['y'] }],
    outputs: ['y'],
  });
  assert.throws(() => convertOnnx(bytes), (e: Error) => e.name === 'UnsupportedError' && /Conv node "conv1d" \(opset 13\): only 2-D convolutions/.test(e.message));
});

test.run();
