// Activations: Relu family, sigmoids and swishes (SE blocks, mobilenet_v3, efficientnet), Clip, PRelu, Softmax.
import { attr } from '../graph-builder';
import { NodeContext } from '../context';
import { size, unaryConst } from '../const-math';
import { TensorValue, Value } from '../types';
import { align, rankOf, resultPerm, unary } from './elementwise';
import type { OpConverter, OpRegistry } from './index';

const F = { T: attr.type('float32') };

function floatTensor(ctx: NodeContext, v: Value): TensorValue {
  const t = ctx.tensor(v);
  if (t.dtype !== 'float32') ctx.fail(`run-time ${t.dtype} input is not supported (float only)`);
  return t;
}

function scalarOp(ctx: NodeContext, op: string, ref: string, value: number, suffix: string): string {
  return ctx.op(op, [ref, ctx.scalar('float32', value, `${suffix}/value`)], F, suffix);
}

function clipRef(ctx: NodeContext, ref: string, lo: number, hi: number): string {
  if (lo === 0 && hi === 6) return ctx.op('Relu6', [ref], F, 'relu6');
  if (lo === 0 && hi === Infinity) return ctx.op('Relu', [ref], F, 'relu');
  return ctx.op('ClipByValue', [ref, ctx.scalar('float32', lo, 'clip/min'), ctx.scalar('float32', hi, 'clip/max')], F, 'clip');
}

/** max(0, min(1, alpha*x + beta)) */
function hardSigmoidRef(ctx: NodeContext, ref: string, alpha: number, beta: number): string {
  const scaled = scalarOp(ctx, 'Mul', ref, alpha, 'hs/mul');
  return clipRef(ctx, scalarOp(ctx, 'AddV2', scaled, beta, 'hs/add'), 0, 1);
}

function clip(ctx: NodeContext): Value[] {
  let lo = -Infinity;
  let hi = Infinity;
  if (ctx.opset < 11) {
    lo = ctx.float('min', -Infinity);
    hi = ctx.float('max', Infinity);
  } else {
    if (ctx.has(1)) lo = ctx.constInput(1, 'min').data[0];
    if (ctx.has(2)) hi = ctx.constInput(2, 'max').data[0];
  }
  const v = ctx.need(0);
  if (v.kind === 'const') return [{ kind: 'const', tensor: unaryConst(v.tensor, (x) => Math.min(hi, Math.max(lo, x))) }];
  const x = floatTensor(ctx, v);
  return [{ ...x, ref: clipRef(ctx, x.ref, lo, hi) }];
}

function prelu(ctx: NodeContext): Value[] {
  const xv = ctx.need(0);
  let sv = ctx.need(1);
  const xRank = rankOf(xv);
  // Before opset 7 a [C] slope applies along the channel axis (axis 1), not numpy's last axis.
  if (ctx.opset < 7 && sv.kind === 'const' && sv.tensor.shape.length === 1 && sv.tensor.data.length > 1 && xRank > 2) {
    sv = { kind: 'const', tensor: { ...sv.tensor, shape: [sv.tensor.data.length, ...new Array(xRank - 2).fill(1)] } };
  }
  const r = Math.max(rankOf(xv), rankOf(sv));
  const perm = resultPerm([xv, sv], r);
  const x = align(ctx, xv, r, perm);
  const slope = align(ctx, sv, r, perm);
  // prelu(x) = max(x, 0) + slope * min(x, 0), exact for any broadcastable slope.
  const pos = ctx.op('Relu', [x.ref], F, 'pos');
  const neg = ctx.op('Mul', [slope.ref, scalarOp(ctx, 'Minimum', x.ref, 0, 'neg')], F, 'negscale');
  return [ctx.result(ctx.op('AddV2', [pos, neg], F, 'prelu'), 'float32', x.shape, perm)];
}

function softmaxLike(tf: 'Softmax' | 'LogSoftmax'): OpConverter {
  return {
    attrs: ['axis'],
    convert(ctx) {
      const x = floatTensor(ctx, ctx.need(0));
      const r = x.shape.length;
      const axis0 = ctx.int('axis', ctx.opset >= 13 ? -1 : 1);
      const axis = axis0 < 0 ? axis0 + r : axis0;
      if (axis < 0 || axis >= r) ctx.fail(`axis ${axis0} is out of range for rank ${r}`);
      if (ctx.opset < 13 && axis !== r - 1) {
        // Before opset 13 the input is coerced to 2-D [prod(d<axis), prod(d>=axis)] and normalised per row.
        const p = ctx.plain(x);
        const tail = p.shape.slice(axis);
        if (tail.some((d) => typeof d !== 'number')) ctx.fail('coerced softmax needs static trailing dims');
        const flat = ctx.reshape(p.ref, [-1, size(tail as number[])], 'float32', 'flatten');
        const out = ctx.op(tf, [flat], F, tf.toLowerCase());
        return [ctx.result(ctx.reshape(out, p.shape, 'float32', 'unflatten'), 'float32', p.shape)];
      }
      // TF normalises over the last axis: store the tensor with `axis` last (free when it already is).
      const perm = x.perm[r - 1] === axis ? x.perm : [...x.perm.filter((a) => a !== axis), axis];
      const t = ctx.withPerm(x, perm);
      return [{ ...t, ref: ctx.op(tf, [t.ref], F, tf.toLowerCase()) }];
    },
  };
}

export const activation: OpRegistry = {
  Relu: unary('Relu', (x) => Math.max(0, x)),
  Sigmoid: unary('Sigmoid', (x) => 1 / (1 + Math.exp(-x))),
  Softplus: unary('Softplus', (x) => Math.log1p(Math.exp(x))),
  LeakyRelu: {
    attrs: ['alpha'],
    convert(ctx) {
      const x = floatTensor(ctx, ctx.need(0));
      return [{ ...x, ref: ctx.op('LeakyRelu', [x.ref], { ...F, alpha: attr.float(ctx.float('alpha', 0.01)) }, 'leakyrelu') }];
    },
  },
  Elu: {
    attrs: ['alpha'],
    convert(ctx) {
      if (ctx.float('alpha', 1) !== 1) ctx.fail('only alpha = 1 is supported');
      const x = floatTensor(ctx, ctx.need(0));
      return [{ ...x, ref: ctx.op('Elu', [x.ref], F, 'elu') }];
    },
  },
  HardSigmoid: {
    attrs: ['alpha', 'beta'],
    convert(ctx) {
      const x = floatTensor(ctx, ctx.need(0));
      return [{ ...x, ref: hardSigmoidRef(ctx, x.ref, ctx.float('alpha', 0.2), ctx.float('beta', 0.5)) }];
    },
  },
  HardSwish: {
    attrs: [],
    convert(ctx) {
      const x = floatTensor(ctx, ctx.need(0));
      return [{ ...x, ref: ctx.op('Mul', [x.ref, hardSigmoidRef(ctx, x.ref, 1 / 6, 0.5)], F, 'hardswish') }];
    },
  },
  Clip: { attrs: ['min', 'max'], convert: clip },
  PRelu: { attrs: [], convert: prelu },
  Softmax: softmaxLike('Softmax'),
  LogSoftmax: softmaxLike('LogSoftmax'),
};
