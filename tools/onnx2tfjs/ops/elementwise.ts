// Elementwise math: broadcasting binary ops (constants folded, permuted to the other operand's layout) and unary ops.
import { attr } from '../graph-builder';
import { dimsOf, dimsValue, NodeContext } from '../context';
import { binaryConst, broadcastDims, identityPerm, makeConst, unaryConst } from '../const-math';
import { ConstTensor, Dim, DType, TensorValue, Value } from '../types';
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

export function asConst(v: Value): ConstTensor | null {
  if (v.kind === 'const') return v.tensor;
  if (v.kind === 'dims' && v.dims.every((d) => typeof d === 'number')) {
    return makeConst(v.dtype, v.scalar ? [] : [v.dims.length], v.dims as number[]);
  }
  return null;
}

/**
 * Arithmetic on symbolic dims (shape vectors with a run-time batch): the forms exporters emit, where the result
 * is still a dim (s*1, s+0, s*k, (s*k)/k) or a decided comparison (a size is never negative). Else undefined.
 */
function symbolic(op: string, x: Dim, y: Dim): Dim | undefined {
  if (typeof x === 'number' && typeof y === 'number') return undefined;
  const [s, n] = typeof x === 'string' ? [x, y] : [y as string, x];
  switch (op) {
    case 'Mul':
      if (n === 1) return s;
      return typeof n === 'number' && n > 0 ? `${s}*${n}` : undefined;
    case 'Div':
      if (typeof x !== 'string' || typeof y !== 'number') return undefined;
      if (y === 1) return x;
      return x.endsWith(`*${y}`) ? x.slice(0, -`*${y}`.length) : undefined;
    case 'Add':
    case 'Sub':
      return n === 0 && (op === 'Add' || typeof x === 'string') ? s : undefined;
    case 'Equal':
      if (x === y) return 1;
      return typeof n === 'number' && n < 0 ? 0 : undefined;
    default:
      return undefined;
  }
}

/** Folds a binary op over shape vectors with symbolic entries (scalars broadcast). */
function foldDims(ctx: NodeContext, spec: BinarySpec, operands: Value[]): Value | null {
  if (!operands.some((v) => v.kind === 'dims')) return null;
  const ds = operands.map(dimsOf);
  if (ds.some((d) => !d) || operands.length !== 2) return null;
  const [a, b] = ds as NonNullable<ReturnType<typeof dimsOf>>[];
  const n = Math.max(a.dims.length, b.dims.length);
  if ((a.dims.length !== n && a.dims.length !== 1) || (b.dims.length !== n && b.dims.length !== 1)) ctx.fail('shape vectors of different lengths');
  const out = Array.from({ length: n }, (_, i) => {
    const x = a.dims[a.dims.length === 1 ? 0 : i];
    const y = b.dims[b.dims.length === 1 ? 0 : i];
    if (typeof x === 'number' && typeof y === 'number') return spec.tf === 'RealDiv' ? Math.trunc(x / y) : spec.fold(x, y);
    const r = symbolic(ctx.node.opType, x, y);
    if (r === undefined) ctx.fail(`${ctx.node.opType} of run-time dimension ${x} and ${y} cannot be computed at conversion time`);
    return r;
  });
  return dimsValue(out, a.scalar && b.scalar, spec.out ?? a.dtype);
}

interface BinarySpec {
  tf: string;
  fold: (x: number, y: number) => number;
  /** Output dtype when it differs from the inputs' (comparisons). */
  out?: DType;
  floatOnly?: boolean;
  /** Takes one or more inputs (Max, Min). */
  variadic?: boolean;
  attrs?: string[];
}

const truncDiv = (x: number, y: number) => Math.trunc(x / y);

/** C fmod (sign of the dividend) from TF's FloorMod: subtract y where the floor remainder has the wrong sign. */
function cFmod(ctx: NodeContext, x: TensorValue, y: TensorValue, perm: number[]): TensorValue {
  const T = { T: attr.type(x.dtype) };
  const zero = ctx.scalar(x.dtype, 0, 'zero');
  const r = ctx.op('FloorMod', [x.ref, y.ref], T, 'floormod');
  const signsDiffer = ctx.op('NotEqual', [ctx.op('Less', [x.ref, zero], T, 'xneg'), ctx.op('Less', [y.ref, zero], T, 'yneg')], { T: attr.type('bool') }, 'signs');
  const fix = ctx.op('LogicalAnd', [signsDiffer, ctx.op('NotEqual', [r, zero], T, 'nonzero')], {}, 'fix');
  const shape = broadcastDims(x.shape, y.shape, `Mod node "${ctx.name}"`);
  const ref = ctx.op('Sub', [r, ctx.op('SelectV2', [fix, y.ref, zero], T, 'adjust')], T, 'fmod');
  return ctx.result(ref, x.dtype, shape, perm);
}

export function binary(base: BinarySpec): OpConverter {
  return {
    attrs: base.attrs ?? [],
    convert(ctx) {
      const fmod = ctx.node.opType === 'Mod' && ctx.int('fmod', 0) === 1;
      // fmod 1 is C's fmod (the dividend's sign), JavaScript's %.
      const spec = fmod ? { ...base, fold: (x: number, y: number) => x % y } : base;
      const operands = ctx.node.inputs.map((_, i) => ctx.need(i));
      // Variadic Max/Min of one input is that input.
      if (operands.length === 1 && spec.variadic) return [operands[0]];
      if (operands.length < 2) ctx.fail('needs at least two inputs');
      const symbolicResult = foldDims(ctx, spec, operands);
      if (symbolicResult) return [symbolicResult];
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
      if (fmod) return [cFmod(ctx, aligned[0], aligned[1], perm)];
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
  Max: binary({ tf: 'Maximum', fold: Math.max, variadic: true }),
  // fmod 0 (the default) is Python's %, with the divisor's sign: TF's FloorMod.
  Mod: binary({ tf: 'FloorMod', fold: (x, y) => x - Math.floor(x / y) * y, attrs: ['fmod'] }),
  Min: binary({ tf: 'Minimum', fold: Math.min, variadic: true }),
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
