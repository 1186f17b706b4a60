// Elementwise math: broadcasting binary ops (constants folded, permuted to the other operand's layout) and unary ops.
import { attr } from '../graph-builder';
import { NodeContext } from '../context';
import { binaryConst, broadcastDims, identityPerm, makeConst, unaryConst } from '../const-math';
import { ConstTensor, DType, TensorValue, Value } from '../types';
import type { OpConverter, OpRegistry } from './index';

/** Brings a value to rank `r` (leading 1s) in layout `perm`. */
export function align(ctx: NodeContext, v: Value, r: number, perm: number[]): TensorValue {
  if (v.kind === 'const') {
    const t = v.tensor;
    const c: ConstTensor = { ...t, shape: [...new Array(r - t.shape.length).fill(1), ...t.shape] };
    return ctx.withPerm({ kind: 'const', tensor: c }, perm);
  }
  let t = ctx.tensor(v);
  if (t.shape.length < r) {
    const p = ctx.plain(t);
    const shape = [...new Array(r - t.shape.length).fill(1), ...p.shape];
    t = ctx.result(ctx.reshape(p.ref, shape, p.dtype, 'expand'), p.dtype, shape);
  }
  return ctx.withPerm(t, perm);
}

/** Chooses the layout of a broadcast result: that of a full-rank permuted operand, else ONNX's own. */
export function resultPerm(values: Value[], r: number): number[] {
  for (const v of values) if (v.kind === 'tensor' && v.shape.length === r && !v.perm.every((p, i) => p === i)) return v.perm;
  return identityPerm(r);
}

export const rankOf = (v: Value): number => (v.kind === 'const' ? v.tensor.shape.length : v.kind === 'dims' ? (v.scalar ? 0 : 1) : v.shape.length);

function asConst(v: Value): ConstTensor | null {
  if (v.kind === 'const') return v.tensor;
  if (v.kind === 'dims' && v.dims.every((d) => typeof d === 'number')) {
    return makeConst(v.dtype, v.scalar ? [] : [v.dims.length], v.dims as number[]);
  }
  return null;
}

interface BinarySpec {
  tf: string;
  fold: (x: number, y: number) => number;
  /** Output dtype when it differs from the inputs' (comparisons). */
  out?: DType;
  floatOnly?: boolean;
}

const truncDiv = (x: number, y: number) => Math.trunc(x / y);

function binary(spec: BinarySpec): OpConverter {
  return {
    attrs: [],
    convert(ctx) {
      const operands = ctx.node.inputs.map((_, i) => ctx.need(i));
      if (operands.length < 2) ctx.fail('needs at least two inputs');
      const consts = operands.map(asConst);
      if (consts.every((c) => c)) {
        const dtype = consts[0]!.dtype;
        const fn = spec.tf === 'RealDiv' && dtype !== 'float32' ? truncDiv : spec.fold;
        const folded = (consts as ConstTensor[]).reduce((a, b) => binaryConst(a, b, fn, spec.out ?? dtype));
        return [{ kind: 'const', tensor: folded }];
      }
      const r = Math.max(...operands.map(rankOf));
      const perm = resultPerm(operands, r);
      const aligned = operands.map((v) => align(ctx, v, r, perm));
      const dtype = aligned[0].dtype;
      if (spec.floatOnly && dtype !== 'float32') ctx.fail(`run-time ${dtype} inputs are not supported (float only)`);
      let ref = aligned[0].ref;
      let shape = aligned[0].shape;
      for (const b of aligned.slice(1)) {
        ref = ctx.op(spec.tf, [ref, b.ref], { T: attr.type(dtype) }, spec.tf.toLowerCase());
        shape = broadcastDims(shape, b.shape, `${ctx.node.opType} node "${ctx.name}"`);
      }
      return [ctx.result(ref, spec.out ?? dtype, shape, perm)];
    },
  };
}

/** Unary op: layout-preserving; constants folded with `fold`. */
export function unary(tf: string, fold: (x: number) => number, attrs: Record<string, ReturnType<typeof attr.float>> = {}): OpConverter {
  return {
    attrs: [],
    convert(ctx) {
      const v = ctx.need(0);
      const c = asConst(v);
      if (c) return [{ kind: 'const', tensor: unaryConst(c, fold) }];
      const t = ctx.tensor(v);
      if (t.dtype !== 'float32') ctx.fail(`run-time ${t.dtype} input is not supported (float only)`);
      return [{ ...t, ref: ctx.op(tf, [t.ref], { T: attr.type('float32'), ...attrs }, tf.toLowerCase()) }];
    },
  };
}

/** Abramowitz-Stegun 7.1.26 is too coarse for folding; erf is folded with a series/continued fraction instead. */
function erf(x: number): number {
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
}

export const elementwise: OpRegistry = {
  Add: binary({ tf: 'AddV2', fold: (x, y) => x + y }),
  Sub: binary({ tf: 'Sub', fold: (x, y) => x - y }),
  Mul: binary({ tf: 'Mul', fold: (x, y) => x * y }),
  Div: binary({ tf: 'RealDiv', fold: (x, y) => x / y, floatOnly: true }),
  Pow: binary({ tf: 'Pow', fold: (x, y) => Math.pow(x, y), floatOnly: true }),
  Max: binary({ tf: 'Maximum', fold: Math.max }),
  Min: binary({ tf: 'Minimum', fold: Math.min }),
  Sqrt: unary('Sqrt', Math.sqrt),
  Exp: unary('Exp', Math.exp),
  Log: unary('Log', Math.log),
  Neg: unary('Neg', (x) => -x),
  Abs: unary('Abs', Math.abs),
  Reciprocal: unary('Reciprocal', (x) => 1 / x),
  Floor: unary('Floor', Math.floor),
  Ceil: unary('Ceil', Math.ceil),
  Erf: unary('Erf', erf),
  Tanh: unary('Tanh', Math.tanh),
  Sin: unary('Sin', Math.sin),
  Cos: unary('Cos', Math.cos),
};
