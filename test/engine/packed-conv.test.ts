// PackedConv2D (src/native/conv.c) and the session graph's packing (src/engine/packed-conv.ts): the op computes what
// TensorFlow's Conv2D + BiasAdd + AddV2 + ReLU compute, every kernel gives the same bits, a batch does not change an
// image's answer, nor does a helper thread sharing the work; bad inputs are refused by name; the graph packs and fuses
// only what the op can stand for.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sessionOptions } from '../../src/engine/model';
import { packFilter, PANEL, planPacking } from '../../src/engine/packed-conv';
import type { JsonNode } from '../../src/engine/saved-model';
import { convolutionKernels } from '../../src/tf-ops';
import { tf } from '../helpers/runtime';
import { CASES, outputShape } from './conv-cases';
import { seeded as values } from '../helpers/tiny-graph-model';
import { caseTensors, packedConv, type ConvCase } from './conv-op';

/** TensorFlow's own ops for the case: convolution (or matrix product), bias, residual, activation. */
function reference(c: ConvCase, t: ReturnType<typeof caseTensors>): Tensor {
  return tf.tidy(() => {
    let out: Tensor;
    if (c.input.length === 2) {
      out = tf.matMul(t.images as Tensor as never, t.filter.reshape([c.input[1], c.outChannels]) as never);
    } else {
      const pad = typeof c.padding === 'string' ? (c.padding.toLowerCase() as 'same' | 'valid') : ([[0, 0], ...c.padding, [0, 0]] as [[number, number], [number, number], [number, number], [number, number]]);
      out = tf.conv2d(t.images as Tensor4D, t.filter as Tensor4D, c.strides ?? [1, 1], pad);
    }
    out = tf.add(out, t.bias);
    if (t.residual) out = tf.add(out, t.residual);
    if (c.activation === 'Relu') out = tf.relu(out);
    if (c.activation === 'Relu6') out = tf.relu6(out);
    return out;
  });
}

const describeCase = (c: ConvCase) =>
  `[${c.input}] ${c.kernel.join('x')} -> ${c.outChannels}, strides ${c.strides ?? [1, 1]}, padding ${JSON.stringify(c.padding)}, ${c.activation ?? 'None'}${c.residual ? ' + residual' : ''}`;

test('computes what TensorFlow computes, on every geometry (within float rounding), leaving no tensor behind', () => {
  const before = tf.memory().numTensors;
  for (const [i, c] of CASES.entries()) {
    const t = caseTensors(tf, c, 100 + i, outputShape(c));
    const got = packedConv(tf, c, t);
    const want = reference(c, t);
    assert.equal(got.shape, want.shape, describeCase(c));
    const a = got.dataSync() as Float32Array;
    const b = want.dataSync() as Float32Array;
    let worst = 0;
    for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k] - b[k]));
    assert.ok(worst < 2e-5, `${describeCase(c)}: max |packed - TensorFlow| = ${worst}`);
    // The activation is applied: a ReLU leaves no negative value, a ReLU6 none above 6.
    if (c.activation && c.activation !== 'None') assert.ok(a.every((v) => v >= 0), describeCase(c));
    tf.dispose([got, want, ...Object.values(t).filter((x): x is Tensor => x !== undefined)]);
  }
  assert.is(tf.memory().numTensors, before);
});

test("an image's answer does not depend on its batch: batch of one = its row of a batch of five, bit for bit, by either algorithm", () => {
  for (const algorithm of ['direct', 'winograd'] as const) {
    // 5 x 25 Winograd tiles of 64 channels span two blocks of tiles (128 each).
    const c: ConvCase = { input: [5, 10, 10, 64], kernel: [3, 3], outChannels: 40, padding: 'SAME', activation: 'Relu', residual: true, algorithm };
    const t = caseTensors(tf, c, 7, outputShape(c));
    const all = packedConv(tf, c, t);
    for (const n of [0, 4]) {
      const alone = { ...t, images: t.images.slice(n, 1), residual: t.residual?.slice(n, 1) };
      const one = packedConv(tf, { ...c, input: [1, 10, 10, 64] }, alone);
      const row = all.slice(n, 1);
      assert.equal(Array.from(one.dataSync()), Array.from(row.dataSync()), `${algorithm}, image ${n}`);
      tf.dispose([one, row, alone.images, alone.residual as Tensor]);
    }
    tf.dispose([all, ...Object.values(t).filter((x): x is Tensor => x !== undefined)]);
  }
});

test('the AVX-512, AVX2 and portable kernels give the same bits on every geometry', () => {
  const child = path.join(__dirname, 'conv-child.ts');
  const run = (kernels?: string) => {
    const env = { ...process.env };
    delete env.CONV_KERNELS;
    if (kernels) env.CONV_KERNELS = kernels;
    const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', child], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop() as string) as { kernels: string; hashes: string[] };
  };
  const { vector } = convolutionKernels();
  const best = run();
  const portable = run('portable');
  assert.is(best.kernels, vector ?? 'portable');
  assert.is(portable.kernels, 'portable');
  assert.equal(best.hashes, portable.hashes, `${best.kernels} and portable kernels differ`);
  if (vector === 'avx512') {
    const avx2 = run('avx2');
    assert.is(avx2.kernels, 'avx2');
    assert.equal(avx2.hashes, portable.hashes, 'avx2 and portable kernels differ');
  }
  console.log(`  compared: ${[...new Set([best.kernels, vector === 'avx512' ? 'avx2' : '', 'portable'])].filter(Boolean).join(', ')}`);
});

test('with the helper thread (lendIdleCore) every geometry gives the same bits, and the helper stays out while no engine slot is idle or the batch is over the limit', () => {
  const child = path.join(__dirname, 'conv-child.ts');
  const run = (kernels?: string) => {
    const env: NodeJS.ProcessEnv = { ...process.env, CONV_LEND: '1' };
    delete env.CONV_KERNELS;
    if (kernels) env.CONV_KERNELS = kernels;
    const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', child], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop() as string) as {
      kernels: string;
      hashes: string[];
      lent: { rounds: number; units: number; same: boolean; busyUnits: number; overLimitUnits: number };
    };
  };
  const portable = run('portable');
  const best = run();
  for (const r of [best, portable]) {
    assert.ok(r.lent.units > 0, `${r.kernels}: the helper took no unit of work in ${r.lent.rounds} rounds`);
    assert.ok(r.lent.same, `${r.kernels}: a round with the helper gave other bits`);
    assert.is(r.lent.busyUnits, 0, `${r.kernels}: the helper worked while every engine slot was busy`);
    assert.is(r.lent.overLimitUnits, 0, `${r.kernels}: the helper worked on batches over the limit`);
  }
  // Alone and lent, by either kernel set, the same bits.
  assert.equal(best.hashes, portable.hashes, `${best.kernels} and portable kernels differ`);
  console.log(`  helper units: ${best.lent.units} (${best.kernels}, ${best.lent.rounds} rounds), ${portable.lent.units} (portable, ${portable.lent.rounds} rounds)`);
});

test('a residual of another shape broadcasts as AddV2 does, the output growing where the residual is larger', () => {
  const cases: [ConvCase, number[]][] = [
    [{ input: [2, 4, 4, 8], kernel: [3, 3], outChannels: 16, padding: 'SAME', activation: 'Relu' }, [16]],
    [{ input: [2, 4, 4, 8], kernel: [3, 3], outChannels: 16, padding: 'SAME' }, [2, 1, 1, 16]],
    [{ input: [2, 4, 4, 8], kernel: [3, 3], outChannels: 40, padding: 'SAME', activation: 'Relu6' }, [4, 1, 1]],
    [{ input: [2, 1, 1, 8], kernel: [1, 1], outChannels: 16, padding: 'VALID', activation: 'Relu' }, [2, 3, 3, 16]],
    [{ input: [5, 12], kernel: [1, 1], outChannels: 7, padding: 'VALID' }, [7]],
    [{ input: [5, 12], kernel: [1, 1], outChannels: 7, padding: 'VALID' }, [5, 1]],
  ];
  const before = tf.memory().numTensors;
  for (const [i, [c, residualShape]] of cases.entries()) {
    const t = caseTensors(tf, c, 40 + i, outputShape(c));
    const residual = tf.tensor(values(residualShape.reduce((a, b) => a * b, 1), 90 + i), residualShape, 'float32');
    const got = packedConv(tf, c, { ...t, residual });
    const want = reference(c, { ...t, residual });
    assert.equal(got.shape, want.shape, `${describeCase(c)} + [${residualShape}]`);
    const a = got.dataSync() as Float32Array;
    const b = want.dataSync() as Float32Array;
    let worst = 0;
    for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k] - b[k]));
    assert.ok(worst < 2e-5, `${describeCase(c)} + [${residualShape}]: max |packed - TensorFlow| = ${worst}`);
    tf.dispose([got, want, residual, ...Object.values(t).filter((x): x is Tensor => x !== undefined)]);
  }
  assert.is(tf.memory().numTensors, before);
});

test('refuses a filter not packed for its images, a residual that does not broadcast, and bad attributes, naming them', () => {
  const c: ConvCase = { input: [1, 4, 4, 8], kernel: [3, 3], outChannels: 16, padding: 'SAME', residual: true };
  const t = caseTensors(tf, c, 3, outputShape(c));
  const wrongResidual = tf.zeros([1, 4, 4, 8]);
  assert.throws(() => packedConv(tf, c, { ...t, residual: wrongResidual }), /the residual \(float32 of rank 4\) does not broadcast with the output \[1, 4, 4, 16\]/);
  const wider = tf.zeros([1, 4, 4, 9]);
  assert.throws(() => packedConv(tf, c, { ...t, images: wider }), /filter must be float32 \[1, 81, 32\] \(panels of 3 x 3 x 9 inputs\)/);
  assert.throws(() => packedConv(tf, { ...c, kernel: [3, 3, 3] as unknown as [number, number] }, t), /kernel_size needs 2 values, has 3/);
  const matrix = tf.zeros([2, 8]);
  assert.throws(() => packedConv(tf, c, { ...t, images: matrix, residual: undefined }), /images must be float32 \[batch, height, width, channels\]/);
  const winograd: ConvCase = { ...c, algorithm: 'winograd' };
  assert.throws(() => packedConv(tf, winograd, { ...t, images: wider }), /filter must be float32 \[16, 1, 9, 32\] \(Winograd panels of 9 inputs\)/);
  assert.throws(() => packedConv(tf, { ...winograd, strides: [2, 2], residual: false }, { ...t, residual: undefined }), /the winograd algorithm takes a 3 x 3 kernel with strides 1/);
  tf.dispose([wrongResidual, wider, matrix, ...Object.values(t).filter((x): x is Tensor => x !== undefined)]);
});

test('packFilter: output channel o of input k lands at panel o / 32, row k, column o % 32, zeros past Cout; a transposed weight alike', () => {
  // [1, 1, 2, 3]: input k, output o holds 10k + o.
  const hwio = Float32Array.from([0, 1, 2, 10, 11, 12]);
  const packed = packFilter(new Uint8Array(hwio.buffer), { filterShape: [1, 1, 2, 3], transposed: false, algorithm: 'direct' });
  assert.equal(packed.shape, [1, 2, PANEL]);
  const p = new Float32Array(packed.bytes.buffer);
  assert.equal(Array.from(p.subarray(0, 4)), [0, 1, 2, 0]);
  assert.equal(Array.from(p.subarray(PANEL, PANEL + 4)), [10, 11, 12, 0]);
  assert.ok(p.subarray(3, PANEL).every((v) => v === 0));
  const transposed = Float32Array.from([0, 10, 1, 11, 2, 12]);
  const t = packFilter(new Uint8Array(transposed.buffer), { filterShape: [1, 1, 2, 3], transposed: true, algorithm: 'direct' });
  assert.equal(Array.from(new Float32Array(t.bytes.buffer)), Array.from(p));
  const wide = packFilter(new Uint8Array(new Float32Array(40).fill(1).buffer), { filterShape: [1, 1, 1, 40], transposed: false, algorithm: 'direct' });
  assert.equal(wide.shape, [2, 1, PANEL]);
  assert.is(new Float32Array(wide.bytes.buffer).filter((v) => v === 1).length, 40);
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const conv = (name: string, input: string, filter: string, fused: string[] = ['BiasAdd'], extra: Record<string, unknown> = {}): JsonNode => ({
  name, op: '_FusedConv2D', input: [input, filter, `${filter}_bias`],
  attr: { T: { type: 'DT_FLOAT' }, padding: { s: b64('SAME') }, strides: { list: { i: [1, 1, 1, 1] } }, num_args: { i: 1 }, fused_ops: { list: { s: fused.map(b64) } }, ...extra },
});
const node = (name: string, op: string, input: string[], attr: JsonNode['attr'] = {}): JsonNode => ({ name, op, input, attr });
const shapes: Record<string, number[]> = { w1: [3, 3, 8, 8], w2: [3, 3, 8, 8], w3: [1, 1, 8, 8], bias: [8], fc: [10, 8] };
const shapeOf = (name: string) => shapes[name] ?? (name.endsWith('_bias') ? [8] : undefined);

test('planPacking fuses a residual addition and its ReLU into the convolution, the output named as the ReLU', () => {
  const nodes = [
    node('x', 'Placeholder', []),
    conv('c1', 'x', 'w1', ['BiasAdd', 'Relu']),
    conv('c2', 'c1', 'w2'),
    node('add', 'AddV2', ['c2', 'x']),
    node('relu', 'Relu', ['add']),
    node('fc', 'MatMul', ['relu', 'fc'], { transpose_b: { b: true } }),
  ];
  const plan = planPacking(nodes, shapeOf);
  assert.equal([...plan.packed.keys()], ['c1', 'c2', 'fc']);
  assert.equal({ ...plan.packed.get('c2'), node: undefined }, { node: undefined, filterShape: [3, 3, 8, 8], transposed: false, algorithm: 'winograd', activation: 'Relu', residual: 'x', name: 'relu' });
  assert.is(plan.packed.get('c1')?.activation, 'Relu');
  assert.equal(plan.packed.get('fc')?.filterShape, [1, 1, 8, 10]);
  assert.is(plan.packed.get('fc')?.transposed, true);
  assert.is(plan.packed.get('fc')?.algorithm, 'direct');
  assert.equal([...plan.fused], ['add', 'relu']);
  assert.equal([...plan.filters.keys()], ['w1', 'w2', 'fc']);
});

test("planPacking runs 3 x 3 stride-1 convolutions up to 256 x 256 channels by Winograd's algorithm, others directly", () => {
  const sizes: Record<string, number[]> = { small: [3, 3, 8, 8], strided: [3, 3, 8, 8], edge: [3, 3, 256, 256], big: [3, 3, 256, 512], wide: [1, 1, 8, 8], tall: [5, 3, 8, 8] };
  const nodes = [
    node('x', 'Placeholder', []),
    conv('c1', 'x', 'small'),
    conv('c2', 'x', 'edge'),
    conv('c3', 'x', 'big'),
    conv('c4', 'x', 'wide'),
    conv('c5', 'x', 'tall'),
    conv('c6', 'x', 'strided', ['BiasAdd'], { strides: { list: { i: [1, 2, 2, 1] } } }),
  ];
  const plan = planPacking(nodes, (name) => sizes[name] ?? (name.endsWith('_bias') ? [8] : undefined));
  const algorithms = Object.fromEntries([...plan.packed].map(([name, entry]) => [name, entry.algorithm]));
  assert.equal(algorithms, { c1: 'winograd', c2: 'winograd', c3: 'direct', c4: 'direct', c5: 'direct', c6: 'direct' });
});

test('winogradFilter: G g G^T of each input and output channel, in panels [16, panels, Cin, 32]', () => {
  // [3, 3, 1, 2]: output 0 all ones; output 1 a single 2 at the centre.
  const hwio = new Float32Array(18);
  for (let k = 0; k < 9; k++) hwio[2 * k] = 1;
  hwio[2 * 4 + 1] = 2;
  const packed = packFilter(new Uint8Array(hwio.buffer), { filterShape: [3, 3, 1, 2], transposed: false, algorithm: 'winograd' });
  assert.equal(packed.shape, [16, 1, 1, PANEL]);
  const p = new Float32Array(packed.bytes.buffer);
  const entry = (xi: number, o: number) => p[xi * PANEL + o];
  // G 1 = [1, 1.5, 0.5, 1] for a column of ones; G [0 1 0] = [0, 0.5, -0.5, 0].
  const ones = [1, 1.5, 0.5, 1];
  const centre = [0, 0.5, -0.5, 0];
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      assert.is(entry(4 * r + c, 0), ones[r] * ones[c]);
      assert.is(entry(4 * r + c, 1), 2 * centre[r] * centre[c]);
      assert.is(entry(4 * r + c, 2), 0);
    }
  }
});

test('planPacking leaves alone what the op cannot stand for', () => {
  const nodes = [
    node('x', 'Placeholder', []),
    // The intermediate is read twice: no fusion (its addition stays).
    conv('c1', 'x', 'w1'),
    node('add1', 'AddV2', ['c1', 'x']),
    node('other', 'Identity', ['c1']),
    // A weight added broadcasts (a bias), not a residual.
    conv('c2', 'x', 'w2'),
    node('add2', 'AddV2', ['c2', 'bias']),
    // An activation the op lacks, a dilation, a filter two nodes share.
    conv('c3', 'x', 'w3', ['BiasAdd', 'Elu']),
    conv('c4', 'x', 'w3', ['BiasAdd'], { dilations: { list: { i: [1, 2, 2, 1] } } }),
    conv('c5', 'x', 'w1'),
  ];
  const plan = planPacking(nodes, shapeOf);
  assert.equal([...plan.packed.keys()], ['c2']);
  assert.is(plan.packed.get('c2')?.residual, undefined);
  assert.equal([...plan.fused], []);
});

test('sessions pack their convolutions on a CPU with vector kernels, never on a GPU', () => {
  assert.is(sessionOptions('gpu').packedConvolutions, false);
  assert.is(sessionOptions('cpu').packedConvolutions, convolutionKernels().vector !== null);
});

test.run();
