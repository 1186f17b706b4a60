// Normalisations: BatchNormalization not folded into a conv (as scale/shift), LayerNormalization
// (decomposed, over NHWC-remapped axes), LRN (TF's depth_radius form).
import { attr } from '../graph-builder';
import { NodeContext } from '../context';
import { makeConst } from '../const-math';
import { Value } from '../types';
import { align } from './elementwise';
import type { OpRegistry } from './index';

const F = { T: attr.type('float32') };

function batchNorm(ctx: NodeContext): Value[] {
  if (ctx.int('training_mode', 0) !== 0) ctx.fail('training_mode 1 is not supported (export in eval mode)');
  if (ctx.int('spatial', 1) !== 1) ctx.fail('spatial 0 (per-element statistics) is not supported');
  if ([1, 2, 3, 4].some((i) => ctx.outputUsed(i))) ctx.fail('running mean/var outputs are not supported');
  const x = ctx.tensor(ctx.need(0));
  const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => ctx.constInput(i, ['scale', 'B', 'mean', 'var'][i - 1]).data);
  const eps = Math.fround(ctx.float('epsilon', 1e-5));
  const r = x.shape.length;
  if (r < 2) ctx.fail(`input rank ${r} has no channel axis`);
  const c = gamma.length;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    scale[i] = gamma[i] / Math.sqrt(variance[i] + eps);
    shift[i] = beta[i] - mean[i] * scale[i];
  }
  // Per-channel constants of logical shape [C, 1, ...] broadcast against [N, C, ...] in the input's layout.
  const chan = [c, ...new Array(r - 2).fill(1)];
  const s = align(ctx, { kind: 'const', tensor: makeConst('float32', chan, scale) }, r, x.perm);
  const b = align(ctx, { kind: 'const', tensor: makeConst('float32', chan, shift) }, r, x.perm);
  const y = ctx.op('AddV2', [ctx.op('Mul', [x.ref, s.ref], F, 'scale'), b.ref], F, 'shift');
  return [{ ...x, ref: y }];
}

function layerNorm(ctx: NodeContext): Value[] {
  if ([1, 2].some((i) => ctx.outputUsed(i))) ctx.fail('Mean/InvStdDev outputs are not supported');
  const x = ctx.tensor(ctx.need(0));
  const r = x.shape.length;
  const axis0 = ctx.int('axis', -1);
  const axis = axis0 < 0 ? axis0 + r : axis0;
  if (axis < 0 || axis >= r) ctx.fail(`axis ${axis0} is out of range for rank ${r}`);
  const eps = ctx.float('epsilon', 1e-5);
  const axes = Array.from({ length: r - axis }, (_, i) => x.perm.indexOf(axis + i)).sort((p, q) => p - q);
  const reduce = (ref: string, suffix: string) =>
    ctx.op('Mean', [ref, ctx.ints32(axes, `${suffix}/axes`)], { ...F, Tidx: attr.type('int32'), keep_dims: attr.bool(true) }, suffix);
  const d = ctx.op('Sub', [x.ref, reduce(x.ref, 'mean')], F, 'center');
  const variance = reduce(ctx.op('Mul', [d, d], F, 'square'), 'var');
  const std = ctx.op('Sqrt', [ctx.op('AddV2', [variance, ctx.scalar('float32', eps, 'eps')], F, 'addeps')], F, 'std');
  let y = ctx.op('RealDiv', [d, std], F, 'normalize');
  y = ctx.op('Mul', [y, align(ctx, ctx.need(1), r, x.perm).ref], F, 'gamma');
  if (ctx.has(2)) y = ctx.op('AddV2', [y, align(ctx, ctx.need(2), r, x.perm).ref], F, 'beta');
  return [{ ...x, ref: y }];
}

function lrn(ctx: NodeContext): Value[] {
  const size = ctx.int('size');
  if (size % 2 !== 1) ctx.fail(`even size ${size} has an asymmetric window TF's LRN cannot express`);
  const x = ctx.nhwc(ctx.need(0));
  const ref = ctx.op('LRN', [x.ref], {
    ...F,
    depth_radius: attr.int((size - 1) / 2),
    bias: attr.float(ctx.float('bias', 1)),
    // ONNX divides alpha by the window size, TF does not.
    alpha: attr.float(ctx.float('alpha', 1e-4) / size),
    beta: attr.float(ctx.float('beta', 0.75)),
  }, 'lrn');
  return [{ ...x, ref }];
}

export const normalization: OpRegistry = {
  BatchNormalization: { attrs: ['epsilon', 'momentum', 'spatial', 'training_mode'], convert: batchNorm },
  LayerNormalization: { attrs: ['axis', 'epsilon', 'stash_type'], convert: layerNorm },
  LRN: { attrs: ['alpha', 'beta', 'bias', 'size'], convert: lrn },
};
