// Shape plumbing: Shape/Reshape/Flatten/Transpose/Squeeze/Unsqueeze/Expand/Cast/Constant/Range/Identity/Dropout. Shape
// subgraphs are folded at conversion time (symbolic batch dims included); Transpose only relabels the layout.
import { attr } from '../graph-builder';
import { dimsValue, NodeContext, sameElementOrder } from '../context';
import { broadcastDims, broadcastTo, inversePerm, isIdentity, makeConst, normAxis, size, transposeConst } from '../const-math';
import { ConstTensor, Dim, DType, TensorValue, Value } from '../types';
import type { OpRegistry } from './index';

/**
 * Resolves a Reshape target against the input's logical shape: 0 copies the input dim (unless allowzero),
 * -1 is inferred, and symbols (e.g. the batch) cancel against equal symbols of the input.
 */
export function resolveReshape(ctx: NodeContext, input: Dim[], target: Dim[], allowZero: boolean): Dim[] {
  const out = target.map((d, i) => (d === 0 && !allowZero ? input[i] : d));
  const known = (ds: Dim[]) => size(ds.filter((d): d is number => typeof d === 'number' && d >= 0));
  const syms = (ds: Dim[]) => ds.filter((d): d is string => typeof d === 'string');
  const inferred = out.filter((d) => d === -1).length;
  if (inferred > 1) ctx.fail(`shape [${target.join(', ')}] has more than one -1`);
  if (inferred === 0) return out;
  const left = [...syms(input)];
  for (const s of syms(out)) {
    const k = left.indexOf(s);
    if (k < 0) ctx.fail(`cannot infer -1 in [${out.join(', ')}] from input [${input.join(', ')}]`);
    left.splice(k, 1);
  }
  const ratio = known(input) / known(out);
  let fill: Dim;
  if (left.length === 0) fill = ratio;
  else if (left.length === 1 && ratio === 1) fill = left[0];
  else fill = ctx.symbol();
  return out.map((d) => (d === -1 ? fill : d));
}

/** Reshapes any value to a resolved logical shape (constants at conversion time). */
/**
 * Pairs groups of consecutive input axes with groups of consecutive output axes of equal size (size-1 axes left
 * out), as a reshape maps them; a run-time dim must map to itself alone. Null when no such pairing exists.
 */
function reshapeGroups(input: Dim[], output: Dim[]): { in: number[]; out: number[] }[] | null {
  const a = input.map((_, i) => i).filter((i) => input[i] !== 1);
  const b = output.map((_, i) => i).filter((i) => output[i] !== 1);
  const groups: { in: number[]; out: number[] }[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = input[a[i]];
    const y = output[b[j]];
    if (typeof x === 'string' || typeof y === 'string') {
      if (x !== y) return null;
      groups.push({ in: [a[i++]], out: [b[j++]] });
      continue;
    }
    const g = { in: [a[i++]], out: [b[j++]] };
    let pa = x;
    let pb = y;
    while (pa !== pb) {
      const next = pa < pb ? input[a[i]] : output[b[j]];
      if (typeof next !== 'number') return null;
      if (pa < pb) {
        g.in.push(a[i++]);
        pa *= next;
      } else {
        g.out.push(b[j++]);
        pb *= next;
      }
    }
    groups.push(g);
  }
  return i === a.length && j === b.length ? groups : null;
}

/**
 * Reshapes a tensor without first restoring ONNX's element order when the reshape only splits or merges axes
 * that lie together in storage (ShuffleNet's channel split on an NHWC tensor is a plain reshape of C). Groups
 * stored apart or out of order are first made contiguous with one transpose. Null when it does not apply.
 */
function layoutReshape(ctx: NodeContext, v: TensorValue, shape: Dim[]): TensorValue | null {
  const groups = reshapeGroups(v.shape, shape);
  if (!groups) return null;
  const groupOf = new Map<number, number>();
  groups.forEach((g, k) => g.in.forEach((a) => groupOf.set(a, k)));
  // Storage order of the groups: where each first appears in the current layout.
  const order: number[] = [];
  for (const a of v.perm) {
    const k = groupOf.get(a);
    if (k !== undefined && !order.includes(k)) order.push(k);
  }
  const ones = v.perm.filter((a) => !groupOf.has(a));
  const want = [...order.flatMap((k) => groups[k].in), ...ones];
  // Size-1 axes may sit anywhere: only a different order of the others needs a transpose.
  const t = sameElementOrder(v, want) ? v : ctx.withPerm(v, want);
  const outPerm = [...order.flatMap((k) => groups[k].out), ...shape.map((_, i) => i).filter((i) => shape[i] === 1)];
  const ref = ctx.reshape(t.ref, outPerm.map((a) => shape[a]), t.dtype);
  return ctx.result(ref, t.dtype, shape, outPerm);
}

/** Reshapes any value to a resolved logical shape (constants at conversion time). */
function reshapeTo(ctx: NodeContext, v: Value, shape: Dim[]): Value {
  if (v.kind === 'const') return { kind: 'const', tensor: { ...v.tensor, shape: shape as number[] } };
  if (v.kind === 'dims') {
    if (shape.length > 1) ctx.fail('reshaping a run-time shape vector to rank > 1 is not supported');
    return dimsValue(v.dims, shape.length === 0, v.dtype);
  }
  if (!isIdentity(v.perm)) {
    const kept = layoutReshape(ctx, v, shape);
    if (kept) return kept;
  }
  const p = ctx.plain(v);
  return ctx.result(ctx.reshape(p.ref, shape, p.dtype), p.dtype, shape);
}

function shapeOf(v: Value): Dim[] {
  if (v.kind === 'const') return v.tensor.shape;
  if (v.kind === 'dims') return v.scalar ? [] : [v.dims.length];
  return v.shape;
}

function castConst(t: ConstTensor, to: DType): ConstTensor {
  if (to === 'float32') return makeConst('float32', t.shape, t.data);
  if (to === 'bool') return makeConst('bool', t.shape, Array.from(t.data, (x) => (x ? 1 : 0)));
  return makeConst(to, t.shape, Array.from(t.data, Math.trunc));
}

const ONNX_TO: Record<number, DType> = { 1: 'float32', 11: 'float32', 2: 'int32', 3: 'int32', 4: 'int32', 5: 'int32', 6: 'int32', 7: 'int64', 12: 'int64', 13: 'int64', 9: 'bool' };

const TF_SAME = (a: DType, b: DType) => a === b || (a !== 'float32' && a !== 'bool' && b !== 'float32' && b !== 'bool');

function constantNode(ctx: NodeContext): Value[] {
  const t = ctx.attrTensor('value');
  if (t) return [{ kind: 'const', tensor: t }];
  if (ctx.hasAttr('value_float')) return [{ kind: 'const', tensor: makeConst('float32', [], [ctx.float('value_float')]) }];
  if (ctx.hasAttr('value_floats')) { const v = ctx.node.attrs.get('value_floats') as number[]; return [{ kind: 'const', tensor: makeConst('float32', [v.length], v) }]; }
  if (ctx.hasAttr('value_int')) return [{ kind: 'const', tensor: makeConst('int64', [], [ctx.int('value_int')]) }];
  if (ctx.hasAttr('value_ints')) { const v = ctx.ints('value_ints'); return [{ kind: 'const', tensor: makeConst('int64', [v.length], v) }]; }
  ctx.fail('needs one of value, value_float(s), value_int(s)');
}

function unsqueezeAxes(ctx: NodeContext): number[] {
  if (ctx.opset >= 13) return Array.from(ctx.constInput(1, 'axes').data);
  return ctx.ints('axes');
}

export const shape: OpRegistry = {
  Constant: { attrs: ['value', 'value_float', 'value_floats', 'value_int', 'value_ints'], convert: constantNode },
  Identity: { attrs: [], convert: (ctx) => [ctx.need(0)] },
  Dropout: {
    attrs: ['ratio', 'seed'],
    convert(ctx) {
      if (ctx.outputUsed(1)) ctx.fail('the mask output is not supported (inference only)');
      // Training mode drops nothing when the ratio is 0 (Swin's attention dropout exports so).
      const ratio = ctx.has(1) ? ctx.constInput(1, 'ratio').data[0] : ctx.float('ratio', 0.5);
      if (ctx.has(2) && ctx.constInput(2, 'training_mode').data[0] && ratio !== 0) ctx.fail('training_mode true is not supported');
      return [ctx.need(0)];
    },
  },
  Shape: {
    attrs: ['start', 'end'],
    convert(ctx) {
      const dims = shapeOf(ctx.need(0));
      const r = dims.length;
      const clampAxis = (a: number) => Math.min(r, Math.max(0, a < 0 ? a + r : a));
      const picked = dims.slice(clampAxis(ctx.int('start', 0)), clampAxis(ctx.int('end', r)));
      return [dimsValue(picked, false, 'int64')];
    },
  },
  Cast: {
    attrs: ['to', 'saturate'],
    convert(ctx) {
      const code = ctx.int('to');
      const to = ONNX_TO[code];
      if (!to) ctx.fail(`cast to ONNX type ${code} is not supported`);
      const v = ctx.need(0);
      if (v.kind === 'const') return [{ kind: 'const', tensor: castConst(v.tensor, to) }];
      if (v.kind === 'dims') return [to === 'float32' || to === 'bool' ? ctx.fail('casting a run-time shape to float/bool is not supported') : { ...v, dtype: to }];
      if (TF_SAME(v.dtype, to)) return [{ ...v, dtype: to }];
      const ref = ctx.op('Cast', [v.ref], { SrcT: attr.type(v.dtype), DstT: attr.type(to), Truncate: attr.bool(false) }, 'cast');
      return [{ ...v, ref, dtype: to }];
    },
  },
  Reshape: {
    attrs: ['allowzero'],
    convert(ctx) {
      const v = ctx.need(0);
      const target = ctx.dimsInput(1, 'the target shape');
      return [reshapeTo(ctx, v, resolveReshape(ctx, shapeOf(v), target, ctx.int('allowzero', 0) === 1))];
    },
  },
  Flatten: {
    attrs: ['axis'],
    convert(ctx) {
      const v = ctx.need(0);
      const dims = shapeOf(v);
      const axis = ctx.int('axis', 1);
      const a = axis < 0 ? axis + dims.length : axis;
      if (a < 0 || a > dims.length) ctx.fail(`axis ${axis} is out of range for rank ${dims.length}`);
      const part = (ds: Dim[]): Dim => (ds.every((d) => typeof d === 'number') ? size(ds as number[]) : -1);
      const target = [part(dims.slice(0, a)), part(dims.slice(a))];
      if (target[0] === -1 && target[1] === -1) ctx.fail('both flattened parts have run-time sizes');
      // A single run-time dim on one side keeps its symbol (the batch axis stays the batch axis).
      const lead = dims.slice(0, a);
      if (target[0] === -1 && lead.length === 1) target[0] = lead[0];
      return [reshapeTo(ctx, v, resolveReshape(ctx, dims, target, false))];
    },
  },
  Transpose: {
    attrs: ['perm'],
    convert(ctx) {
      const v = ctx.need(0);
      const r = shapeOf(v).length;
      const perm = ctx.ints('perm', Array.from({ length: r }, (_, i) => r - 1 - i));
      if (perm.length !== r || new Set(perm).size !== r) ctx.fail(`perm [${perm}] is not a permutation of rank ${r}`);
      if (v.kind === 'const') return [{ kind: 'const', tensor: transposeConst(v.tensor, perm) }];
      if (v.kind === 'dims') return [v];
      // Free: the data stays where it is; only the logical labels move (TF axis i keeps its data).
      const inv = inversePerm(perm);
      return [{ ...v, shape: perm.map((p) => v.shape[p]), perm: v.perm.map((a) => inv[a]) }];
    },
  },
  Squeeze: {
    attrs: ['axes'],
    convert(ctx) {
      const v = ctx.need(0);
      const dims = shapeOf(v);
      const where = `Squeeze node "${ctx.name}"`;
      let axes: number[];
      if (ctx.opset >= 13) axes = ctx.has(1) ? Array.from(ctx.constInput(1, 'axes').data) : [];
      else axes = ctx.ints('axes', []);
      const drop = axes.length ? axes.map((a) => normAxis(a, dims.length, where)) : dims.flatMap((d, i) => (d === 1 ? [i] : []));
      if (drop.some((a) => dims[a] !== 1)) ctx.fail(`squeezed axes [${axes}] must have size 1 in [${dims.join(', ')}]`);
      return [reshapeTo(ctx, v, dims.filter((_, i) => !drop.includes(i)))];
    },
  },
  Unsqueeze: {
    attrs: ['axes'],
    convert(ctx) {
      const v = ctx.need(0);
      const dims = shapeOf(v);
      const r = dims.length + unsqueezeAxes(ctx).length;
      const axes = unsqueezeAxes(ctx).map((a) => normAxis(a, r, `Unsqueeze node "${ctx.name}"`));
      const out: Dim[] = [];
      let k = 0;
      for (let i = 0; i < r; i++) out.push(axes.includes(i) ? 1 : dims[k++]);
      return [reshapeTo(ctx, v, out)];
    },
  },
  Expand: {
    attrs: [],
    convert(ctx) {
      const v = ctx.need(0);
      const sv = ctx.need(1);
      if (sv.kind === 'tensor') {
        // A shape known only at run time: TF computes the bidirectional broadcast shape (BroadcastArgs).
        const n = sv.shape[0];
        if (sv.shape.length !== 1 || typeof n !== 'number') ctx.fail('a run-time shape must be 1-D with a static length');
        const t = ctx.plain(v);
        const xs = ctx.op('Shape', [t.ref], { T: attr.type(t.dtype), out_type: attr.type('int32') }, 'xshape');
        const want = sv.dtype === 'int32' ? sv.ref : ctx.op('Cast', [sv.ref], { SrcT: attr.type(sv.dtype), DstT: attr.type('int32'), Truncate: attr.bool(false) }, 'cast');
        const both = ctx.op('BroadcastArgs', [xs, want], { T: attr.type('int32') }, 'broadcastargs');
        const ref = ctx.op('BroadcastTo', [t.ref, both], { T: attr.type(t.dtype), Tidx: attr.type('int32') }, 'expand');
        const r = Math.max(n as number, t.shape.length);
        return [ctx.result(ref, t.dtype, Array.from({ length: r }, () => ctx.symbol()))];
      }
      const target = ctx.dimsInput(1, 'the shape');
      const shape = broadcastDims(shapeOf(v), target, `Expand node "${ctx.name}"`);
      if (v.kind === 'const' && shape.every((d) => typeof d === 'number')) return [{ kind: 'const', tensor: broadcastTo(v.tensor, shape as number[]) }];
      const t = ctx.plain(v);
      const r = shape.length;
      const x = t.shape.length < r ? ctx.reshape(t.ref, [...new Array(r - t.shape.length).fill(1), ...t.shape], t.dtype, 'rank') : t.ref;
      const ref = ctx.op('BroadcastTo', [x, ctx.shapeTensor(shape, 'shape')], { T: attr.type(t.dtype), Tidx: attr.type('int32') }, 'expand');
      return [ctx.result(ref, t.dtype, shape)];
    },
  },
  Range: {
    attrs: [],
    convert(ctx) {
      const vs = [0, 1, 2].map((i) => ctx.need(i));
      if (vs.some((v) => v.kind === 'tensor')) {
        // Bounds known only at run time: TF's Range, of a length known only then.
        const [a, b, d] = vs.map((v) => ctx.tensor(v));
        const ref = ctx.op('Range', [a.ref, b.ref, d.ref], { Tidx: attr.type(a.dtype) }, 'range');
        return [ctx.result(ref, a.dtype, [ctx.symbol()])];
      }
      const [start, limit, delta] = [0, 1, 2].map((i) => ctx.constInput(i, ['start', 'limit', 'delta'][i]));
      const [a, b, d] = [start, limit, delta].map((t) => t.data[0]);
      if (d === 0) ctx.fail('delta 0 is invalid');
      const n = Math.max(0, Math.ceil((b - a) / d));
      return [{ kind: 'const', tensor: makeConst(start.dtype, [n], Array.from({ length: n }, (_, i) => a + i * d)) }];
    },
  },
  ConstantOfShape: {
    attrs: ['value'],
    convert(ctx) {
      const dims = ctx.dimsInput(0, 'the shape');
      if (dims.some((d) => typeof d !== 'number')) ctx.fail('a run-time shape is not supported');
      const value = ctx.attrTensor('value') ?? makeConst('float32', [1], [0]);
      const n = size(dims as number[]);
      return [{ kind: 'const', tensor: makeConst(value.dtype, dims as number[], new Array(n).fill(value.data[0])) }];
    },
  },
};
