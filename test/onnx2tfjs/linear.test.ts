// ops/linear.ts against onnxruntime: Gemm transA/transB/alpha/beta and bias forms, MatMul, bias/Relu fusion.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, checkAgainstOrt, Const, ModelSpec, NodeSpec, randConst, tfOps } from './harness';

const gemm = (attrs: NodeSpec['attrs'], c: Const | 'input' | null, opts: { transA?: boolean; transB?: boolean; bInput?: boolean; after?: NodeSpec[]; out?: string } = {}): ModelSpec => ({
  inputs: [
    { name: 'a', shape: opts.transA ? [5, 'N'] : ['N', 5] },
    ...(opts.bInput ? [{ name: 'b', shape: opts.transB ? [4, 5] : [5, 4] }] : []),
    ...(c === 'input' ? [{ name: 'c', shape: ['N', 4] }] : []),
  ],
  initializers: { ...(opts.bInput ? {} : { b: randConst(opts.transB ? [4, 5] : [5, 4], 2) }), ...(c && c !== 'input' ? { c } : {}) },
  nodes: [{ op: 'Gemm', inputs: c ? ['a', 'b', 'c'] : ['a', 'b'], outputs: ['y'], attrs: { ...attrs, ...(opts.transA ? { transA: A.i(1) } : {}), ...(opts.transB ? { transB: A.i(1) } : {}) } }, ...(opts.after ?? [])],
  outputs: [opts.out ?? 'y'],
});


test('Gemm with transB (torch Linear) and a bias becomes one _FusedMatMul', async () => {
  const m = await checkAgainstOrt(gemm({}, randConst([4], 3), { transB: true }));
  assert.is(tfOps(m)._FusedMatMul, 1);
});

for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    test(`Gemm transA=${transA} transB=${transB} alpha 0.5 beta 2 with a [1, N] bias`, async () => {
      await checkAgainstOrt(gemm({ alpha: A.f(0.5), beta: A.f(2) }, randConst([1, 4], 3), { transA, transB }));
    });
    test(`Gemm transA=${transA} transB=${transB} with both operands at run time and a run-time C`, async () => {
      await checkAgainstOrt(gemm({ alpha: A.f(1.5), beta: A.f(0.5) }, 'input', { transA, transB, bInput: true }));
    });
  }
}

test('Gemm without C, with a full [N, 4]-shaped constant C, and followed by Relu (fused)', async () => {
  await checkAgainstOrt(gemm({}, null));
  const relu = await checkAgainstOrt(gemm({}, randConst([4], 5), { after: [{ op: 'Relu', inputs: ['y'], outputs: ['r'] }], out: 'r' }));
  assert.not.ok('Relu' in tfOps(relu), 'Relu joins the _FusedMatMul');
  const spec = gemm({}, randConst([3, 4], 6));
  const feeds = { a: { shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => Math.sin(i)) } };
  await checkAgainstOrt(spec, { feeds });
});

test('Gemm with a run-time C is not fused with a following Relu (the Add comes first)', async () => {
  await checkAgainstOrt(gemm({}, 'input', { after: [{ op: 'Relu', inputs: ['y'], outputs: ['r'] }], out: 'r' }));
});

test('MatMul of a rank-4 tensor by a constant, with bias Add fused (channels-last Linear as in ConvNeXt)', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: ['N', 3, 4, 6] }],
    initializers: { w: randConst([6, 5], 1), b: randConst([5], 2) },
    nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['m'] }, { op: 'Add', inputs: ['b', 'm'], outputs: ['y'] }],
    outputs: ['y'],
  };
  const m = await checkAgainstOrt(spec);
  assert.is(tfOps(m)._FusedMatMul, 1);
  assert.not.ok('AddV2' in tfOps(m));
  // The same after a Transpose of an NHWC-fed input: the layout bookkeeping makes the permute free.
  const permuted: ModelSpec = {
    ...spec,
    nodes: [{ op: 'Transpose', inputs: ['x'], outputs: ['t'], attrs: { perm: A.ints([0, 2, 3, 1]) } }, { op: 'MatMul', inputs: ['t', 'w'], outputs: ['y'] }],
    initializers: { w: randConst([3, 5], 1) },
  };
  const mp = await checkAgainstOrt(permuted, { nhwc: ['x'] });
  assert.not.ok('Transpose' in tfOps(mp), 'NCHW->NHWC permute of an NHWC-stored tensor emits nothing');
});

test('MatMul of two run-time tensors, 2-D and batched with broadcasting', async () => {
  await checkAgainstOrt({ inputs: [{ name: 'a', shape: [3, 4] }, { name: 'b', shape: [4, 2] }], nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], outputs: ['y'] });
  await checkAgainstOrt({ inputs: [{ name: 'a', shape: [2, 3, 4] }, { name: 'b', shape: [4, 2] }], nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], outputs: ['y'] });
});

test.run();
