// Slicing and joining: Concat/Split/Slice/Gather/Pad/ScatterND with ONNX axes remapped to the stored layout; shape vectors
// (symbolic batch included) are folded at conversion time.
import { attr } from '../graph-builder';
import { dimsOf, dimsValue, NodeContext } from '../context';
import { makeConst, normAxis, size } from '../const-math';
import { ConstTensor, Dim, TensorValue, Value } from '../types';
import { resultPerm } from './elementwise';
import type { OpRegistry } from './index';

const shapeOf = (v: Value): Dim[] => (v.kind === 'const' ? v.tensor.shape : v.kind === 'dims' ? (v.scalar ? [] : [v.dims.length]) : v.shape);

/** Concatenates constants along `axis`. */
function concatConst(ts: ConstTensor[], axis: number): ConstTensor {
  const shape = [...ts[0].shape];
  shape[axis] = ts.reduce((a, t) => a + t.shape[axis], 0);
  const outer = size(shape.slice(0, axis));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const t of ts) {
      const chunk = size(t.shape.slice(axis));
      for (let i = 0; i < chunk; i++) out.push(t.data[o * chunk + i]);
    }
  }
  return makeConst(ts[0].dtype, shape, out);
}

function concat(ctx: NodeContext): Value[] {
  const vs = ctx.node.inputs.map((_, i) => ctx.need(i));
  const r = shapeOf(vs[0]).length;
  const axis = normAxis(ctx.int('axis'), r, `Concat node "${ctx.name}"`);
  const ds = vs.map(dimsOf);
  if (r === 1 && ds.every((d) => d)) return [dimsValue(ds.flatMap((d) => d!.dims), false, ds[0]!.dtype)];
  if (vs.every((v) => v.kind === 'const')) return [{ kind: 'const', tensor: concatConst(vs.map((v) => (v as Extract<Value, { kind: 'const' }>).tensor), axis) }];
  const perm = resultPerm(vs, r);
  const ts = vs.map((v) => ctx.withPerm(v, perm));
  const ref = ctx.op('ConcatV2', [...ts.map((t) => t.ref), ctx.scalar('int32', perm.indexOf(axis), 'axis')],
    { T: attr.type(ts[0].dtype), N: attr.int(ts.length), Tidx: attr.type('int32') }, 'concat');
  const shape = [...ts[0].shape];
  const parts = ts.map((t) => t.shape[axis]);
  shape[axis] = parts.every((p) => typeof p === 'number') ? (parts as number[]).reduce((a, b) => a + b, 0) : ctx.symbol();
  return [ctx.result(ref, ts[0].dtype, shape, perm)];
}

function split(ctx: NodeContext): Value[] {
  const x = ctx.tensor(ctx.need(0));
  const r = x.shape.length;
  const axis = normAxis(ctx.int('axis', 0), r, `Split node "${ctx.name}"`);
  const dim = x.shape[axis];
  const n = ctx.node.outputs.length;
  let sizes: number[];
  if (ctx.opset >= 13 && ctx.has(1)) sizes = Array.from(ctx.constInput(1, 'split').data);
  else if (ctx.opset < 13 && ctx.hasAttr('split')) sizes = ctx.ints('split');
  else {
    if (typeof dim !== 'number') ctx.fail('an even split of a run-time dimension is not supported');
    const parts = ctx.hasAttr('num_outputs') ? ctx.int('num_outputs') : n;
    const chunk = Math.ceil(dim / parts);
    sizes = Array.from({ length: parts }, (_, i) => Math.min(chunk, dim - i * chunk));
  }
  const ref = ctx.op('SplitV', [x.ref, ctx.ints32(sizes, 'sizes'), ctx.scalar('int32', x.perm.indexOf(axis), 'axis')],
    { T: attr.type(x.dtype), num_split: attr.int(sizes.length), Tlen: attr.type('int32') }, 'split');
  return sizes.map((s, i) => {
    const shape = [...x.shape];
    shape[axis] = s;
    return ctx.result(`${ref}:${i}`, x.dtype, shape, x.perm);
  });
}

interface AxisSlice { axis: number; start: number; end: number; step: number }

/** ONNX Slice bounds clamped like the spec (for a static dim). */
function clampSlice(s: AxisSlice, dim: number): { begin: number; end: number; len: number } {
  const norm = (v: number) => (v < 0 ? v + dim : v);
  let begin = norm(s.start);
  let end = norm(s.end);
  if (s.step > 0) {
    begin = Math.min(Math.max(begin, 0), dim);
    end = Math.min(Math.max(end, 0), dim);
  } else {
    begin = Math.min(Math.max(begin, -1), dim - 1);
    end = Math.min(Math.max(end, -1), dim - 1);
  }
  const len = Math.max(0, Math.ceil((end - begin) / s.step));
  return { begin, end, len };
}

/** Slices a constant (any rank) at conversion time. */
function sliceConst(t: ConstTensor, args: AxisSlice[]): ConstTensor {
  const picks = t.shape.map((dim, a) => {
    const s = args.find((x) => x.axis === a);
    if (!s) return Array.from({ length: dim }, (_, i) => i);
    const c = clampSlice(s, dim);
    return Array.from({ length: c.len }, (_, i) => c.begin + i * s.step);
  });
  return gatherAll(t, picks);
}

/** Elements of `t` at the cartesian product of per-axis index lists. */
function gatherAll(t: ConstTensor, picks: number[][]): ConstTensor {
  const shape = picks.map((p) => p.length);
  const strides = t.shape.map((_, a) => size(t.shape.slice(a + 1)));
  const out: number[] = [];
  const walk = (axis: number, offset: number) => {
    if (axis === picks.length) {
      out.push(t.data[offset]);
      return;
    }
    for (const i of picks[axis]) walk(axis + 1, offset + i * strides[axis]);
  };
  if (shape.every((d) => d > 0)) walk(0, 0);
  return makeConst(t.dtype, shape, out);
}

/** ScatterND with reduction none (write) or add (accumulate), folded on constants, native TF ops at run time. */
function scatterND(ctx: NodeContext): Value[] {
  const reduction = ctx.str('reduction', 'none');
  if (reduction !== 'none' && reduction !== 'add') ctx.fail(`reduction "${reduction}" is not supported (none and add are)`);
  const [dv, iv, uv] = [0, 1, 2].map((i) => ctx.need(i));
  if ([dv, iv, uv].some((v) => v.kind === 'tensor')) {
    // Indices address logical axes, so the data is used in ONNX order; TF takes no negative indices.
    const data = ctx.plain(dv);
    let indices: string;
    if (iv.kind === 'const') {
      const k = iv.tensor.shape[iv.tensor.shape.length - 1];
      const norm = Array.from(iv.tensor.data, (i, n) => {
        const dim = data.shape[n % k];
        if (i < 0 && typeof dim !== 'number') ctx.fail('a negative index on a run-time dimension is not supported');
        return i < 0 ? i + (dim as number) : i;
      });
      indices = ctx.constRef(makeConst('int32', iv.tensor.shape, norm), 'indices');
    } else {
      indices = ctx.plain(iv).ref;
    }
    const updates = ctx.plain(uv);
    const T = { T: attr.type(data.dtype), Tindices: attr.type('int32') };
    let ref: string;
    if (reduction === 'none') {
      ref = ctx.op('TensorScatterUpdate', [data.ref, indices, updates.ref], T, 'scatter');
    } else {
      // ScatterNd sums updates that hit the same cell, as reduction "add" does.
      const shape = ctx.shapeTensor(data.shape, 'scatter/shape');
      ref = ctx.op('AddV2', [data.ref, ctx.op('ScatterNd', [indices, updates.ref, shape], T, 'scatter')], { T: attr.type(data.dtype) }, 'accumulate');
    }
    return [ctx.result(ref, data.dtype, data.shape)];
  }
  const [data, indices, updates] = [dv, iv, uv].map((v) => (v as Extract<Value, { kind: 'const' }>).tensor);
  const k = indices.shape[indices.shape.length - 1];
  const strides = data.shape.map((_, a) => size(data.shape.slice(a + 1)));
  const slice = size(data.shape.slice(k));
  const out = Float64Array.from(data.data);
  const tuples = indices.data.length / k;
  for (let t = 0; t < tuples; t++) {
    let offset = 0;
    for (let a = 0; a < k; a++) {
      const i = indices.data[t * k + a];
      offset += (i < 0 ? i + data.shape[a] : i) * strides[a];
    }
    for (let e = 0; e < slice; e++) out[offset + e] = (reduction === 'add' ? out[offset + e] : 0) + updates.data[t * slice + e];
  }
  return [{ kind: 'const', tensor: makeConst(data.dtype, data.shape, out) }];
}

function sliceArgs(ctx: NodeContext, r: number): AxisSlice[] {
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = ctx.ints('starts');
    ends = ctx.ints('ends');
    axes = ctx.hasAttr('axes') ? ctx.ints('axes') : undefined;
  } else {
    const ints = (i: number, what: string) => Array.from(ctx.constInput(i, what).data);
    starts = ints(1, 'starts');
    ends = ints(2, 'ends');
    axes = ctx.has(3) ? ints(3, 'axes') : undefined;
    steps = ctx.has(4) ? ints(4, 'steps') : undefined;
  }
  const ax = axes ?? starts.map((_, i) => i);
  return ax.map((a, i) => {
    const step = steps?.[i] ?? 1;
    if (step === 0) ctx.fail('step 0 is invalid');
    return { axis: normAxis(a, r, `Slice node "${ctx.name}"`), start: starts[i], end: ends[i], step };
  });
}

function slice(ctx: NodeContext): Value[] {
  const v = ctx.need(0);
  const r = shapeOf(v).length;
  const args = sliceArgs(ctx, r);
  const d = r === 1 ? dimsOf(v) : null;
  if (d) {
    const s = args[0];
    const { begin, len } = clampSlice(s, d.dims.length);
    return [dimsValue(Array.from({ length: len }, (_, i) => d.dims[begin + i * s.step]), false, d.dtype)];
  }
  if (v.kind === 'const') return [{ kind: 'const', tensor: sliceConst(v.tensor, args) }];
  const x: TensorValue = ctx.tensor(v);
  const shape = [...x.shape];
  const begin = new Array<number>(r).fill(0);
  const end = new Array<number>(r).fill(0);
  const strides = new Array<number>(r).fill(1);
  let beginMask = 0;
  let endMask = 0;
  for (let p = 0; p < r; p++) {
    beginMask |= 1 << p;
    endMask |= 1 << p;
  }
  for (const s of args) {
    const p = x.perm.indexOf(s.axis);
    const dim = x.shape[s.axis];
    if (typeof dim !== 'number') {
      // Run-time dim: only "from a non-negative start to the end" is expressible without its size.
      if (s.step !== 1 || s.start < 0 || s.end < 2 ** 31 - 1) ctx.fail(`slicing run-time axis ${s.axis} needs start >= 0, step 1 and end = INT_MAX`);
      begin[p] = s.start;
      beginMask &= ~(1 << p);
      shape[s.axis] = s.start === 0 ? dim : ctx.symbol();
      continue;
    }
    const c = clampSlice(s, dim);
    begin[p] = c.begin;
    strides[p] = s.step;
    beginMask &= ~(1 << p);
    // For a negative step ending before index 0, TF would read -1 as "from the end": use the end mask instead.
    if (!(s.step < 0 && c.end < 0)) {
      end[p] = c.end;
      endMask &= ~(1 << p);
    }
    shape[s.axis] = c.len;
  }
  const ref = ctx.op('StridedSlice', [x.ref, ctx.ints32(begin, 'begin'), ctx.ints32(end, 'end'), ctx.ints32(strides, 'strides')], {
    T: attr.type(x.dtype), Index: attr.type('int32'), begin_mask: attr.int(beginMask), end_mask: attr.int(endMask),
    ellipsis_mask: attr.int(0), new_axis_mask: attr.int(0), shrink_axis_mask: attr.int(0),
  }, 'slice');
  return [ctx.result(ref, x.dtype, shape, x.perm)];
}

function gatherConst(t: ConstTensor, idx: number[], idxShape: number[], axis: number): ConstTensor {
  const outer = size(t.shape.slice(0, axis));
  const inner = size(t.shape.slice(axis + 1));
  const dim = t.shape[axis];
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const i0 of idx) {
      const i = i0 < 0 ? i0 + dim : i0;
      for (let k = 0; k < inner; k++) out.push(t.data[(o * dim + i) * inner + k]);
    }
  }
  return makeConst(t.dtype, [...t.shape.slice(0, axis), ...idxShape, ...t.shape.slice(axis + 1)], out);
}

function gather(ctx: NodeContext): Value[] {
  const v = ctx.need(0);
  const r = shapeOf(v).length;
  const axis = normAxis(ctx.int('axis', 0), r, `Gather node "${ctx.name}"`);
  const it = ctx.constInput(1, 'indices');
  const idx = Array.from(it.data);
  const d = dimsOf(v);
  if (d && !d.scalar) {
    const n = d.dims.length;
    if (idx.some((i) => i < -n || i >= n)) ctx.fail(`index out of range for a shape vector of length ${n}`);
    const picked = idx.map((i) => d.dims[i < 0 ? i + n : i]);
    return [dimsValue(picked, it.shape.length === 0, d.dtype)];
  }
  if (v.kind === 'const') return [{ kind: 'const', tensor: gatherConst(v.tensor, idx, it.shape, axis) }];
  let x = ctx.tensor(v);
  const dim = x.shape[axis];
  if (idx.some((i) => i < 0) && typeof dim !== 'number') ctx.fail('negative indices on a run-time dimension are not supported');
  const norm = idx.map((i) => (i < 0 ? i + (dim as number) : i));
  if (it.shape.length > 1) x = ctx.plain(x);
  const ref = ctx.op('GatherV2', [x.ref, ctx.constRef(makeConst('int32', it.shape, norm), 'indices'), ctx.scalar('int32', x.perm.indexOf(axis), 'axis')],
    { Tparams: attr.type(x.dtype), Tindices: attr.type('int32'), Taxis: attr.type('int32'), batch_dims: attr.int(0) }, 'gather');
  const shape = [...x.shape.slice(0, axis), ...it.shape, ...x.shape.slice(axis + 1)];
  if (it.shape.length === 1) return [ctx.result(ref, x.dtype, shape, x.perm)];
  if (it.shape.length > 1) return [ctx.result(ref, x.dtype, shape)];
  // A scalar index drops the axis: renumber the remaining logical axes in the stored order.
  const perm = x.perm.filter((a) => a !== axis).map((a) => (a > axis ? a - 1 : a));
  return [ctx.result(ref, x.dtype, shape, perm)];
}

function pad(ctx: NodeContext): Value[] {
  const x = ctx.tensor(ctx.need(0));
  const r = x.shape.length;
  const mode = ctx.str('mode', 'constant');
  let pads: number[];
  let value = 0;
  let axes = Array.from({ length: r }, (_, i) => i);
  if (ctx.opset < 11) {
    pads = ctx.ints('pads');
    value = ctx.float('value', 0);
  } else {
    pads = Array.from(ctx.constInput(1, 'pads').data);
    if (ctx.has(2)) value = ctx.constInput(2, 'constant_value').data[0];
    if (ctx.has(3)) axes = Array.from(ctx.constInput(3, 'axes').data).map((a) => normAxis(a, r, `Pad node "${ctx.name}"`));
  }
  if (pads.length !== 2 * axes.length) ctx.fail(`pads has ${pads.length} entries for ${axes.length} axes`);
  if (pads.some((p) => p < 0)) ctx.fail('negative pads (cropping) are not supported');
  const perAxis = new Map(axes.map((a, i) => [a, [pads[i], pads[i + axes.length]]]));
  const phys = x.perm.flatMap((a) => perAxis.get(a) ?? [0, 0]);
  const paddings = ctx.constRef(makeConst('int32', [r, 2], phys), 'paddings');
  let ref: string;
  if (mode === 'constant') {
    ref = ctx.op('PadV2', [x.ref, paddings, ctx.scalar(x.dtype, value, 'value')], { T: attr.type(x.dtype), Tpaddings: attr.type('int32') }, 'pad');
  } else if (mode === 'reflect') {
    ref = ctx.op('MirrorPad', [x.ref, paddings], { T: attr.type(x.dtype), Tpaddings: attr.type('int32'), mode: attr.str('REFLECT') }, 'pad');
  } else {
    ctx.fail(`mode "${mode}" is not supported (constant and reflect are)`);
  }
  const shape = x.shape.map((d, a) => {
    const p = perAxis.get(a);
    if (!p) return d;
    return typeof d === 'number' ? d + p[0] + p[1] : ctx.symbol();
  });
  return [ctx.result(ref, x.dtype, shape, x.perm)];
}

export const sliceJoin: OpRegistry = {
  Concat: { attrs: ['axis'], convert: concat },
  Split: { attrs: ['axis', 'split', 'num_outputs'], convert: split },
  Slice: { attrs: ['starts', 'ends', 'axes'], convert: slice },
  Gather: { attrs: ['axis'], convert: gather },
  Pad: { attrs: ['mode', 'pads', 'value'], convert: pad },
  ScatterND: { attrs: ['reduction'], convert: scatterND },
};
