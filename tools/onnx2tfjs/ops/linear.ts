// Gemm and MatMul: constant weights pre-transposed and pre-scaled, bias and Relu fused into _FusedMatMul.
import { attr } from '../graph-builder';
import { NodeContext } from '../context';
import { broadcastDims, makeConst, unaryConst } from '../const-math';
import { ConstTensor, Dim, Value } from '../types';
import { fuseFollowers } from './conv';
import type { OpRegistry } from './index';

const F = { T: attr.type('float32') };

/**
 * A [M,K] (runtime) x B (constant; [K,N], or [N,K] with `transB`, as torch's Linear stores it) with optional
 * bias [N] and activation, as one _FusedMatMul.
 */
function denseRef(ctx: NodeContext, a: string, transA: boolean, b: ConstTensor, transB: boolean, bias: Float64Array | null, act: string | null): string {
  const n = b.shape[transB ? 0 : 1];
  const inputs = [a, ctx.constRef(b, 'weight')];
  if (bias === null && act === null) {
    return ctx.op('MatMul', inputs, { ...F, transpose_a: attr.bool(transA), transpose_b: attr.bool(transB) }, 'matmul');
  }
  inputs.push(ctx.constRef(makeConst('float32', [n], bias ?? new Float64Array(n)), 'bias'));
  return ctx.op('_FusedMatMul', inputs, {
    ...F,
    transpose_a: attr.bool(transA),
    transpose_b: attr.bool(transB),
    fused_ops: attr.strs(['BiasAdd', ...(act ? [act] : [])]),
    num_args: attr.int(1),
    epsilon: attr.float(0),
  }, 'matmul');
}

/** A const bias Add consuming `output` that can join the matmul: returns its [N] values. */
function fusibleBias(ctx: NodeContext, output: string, n: number): Float64Array | null {
  const c = ctx.soleConsumer(output);
  if (!c || c.opType !== 'Add' || c.domain !== '' || c.inputs.length !== 2) return null;
  const other = c.inputs[0] === output ? c.inputs[1] : c.inputs[1] === output ? c.inputs[0] : null;
  const v = other === null ? undefined : ctx.valueOf(other);
  if (v?.kind !== 'const' || v.tensor.dtype !== 'float32') return null;
  const s = v.tensor.shape;
  if (v.tensor.data.length !== n || s[s.length - 1] !== n || s.length > 1) return null;
  ctx.absorb(c, output);
  return Float64Array.from(v.tensor.data);
}

function gemm(ctx: NodeContext): Value[] {
  const transA = ctx.int('transA', 0) === 1;
  const transB = ctx.int('transB', 0) === 1;
  const alpha = ctx.float('alpha', 1);
  const beta = ctx.float('beta', 1);
  const av = ctx.need(0);
  const a = ctx.plain(ctx.tensor(av));
  if (a.shape.length !== 2) ctx.fail(`A must be 2-D, got rank ${a.shape.length}`);
  const m = transA ? a.shape[1] : a.shape[0];
  const bv = ctx.need(1);
  let cConst: ConstTensor | null = null;
  if (ctx.has(2)) {
    const cv = ctx.need(2);
    if (cv.kind === 'const') cConst = unaryConst(cv.tensor, (x) => x * beta, 'float32');
  }
  if (bv.kind === 'const') {
    const b = alpha === 1 ? bv.tensor : unaryConst(bv.tensor, (x) => x * alpha, 'float32');
    const n = b.shape[transB ? 0 : 1];
    let bias: Float64Array | null = null;
    let rest: ConstTensor | null = null;
    if (cConst && cConst.data.length === n && cConst.shape[cConst.shape.length - 1] === n && cConst.shape.length <= 2) {
      bias = Float64Array.from(cConst.data);
    } else if (cConst) {
      rest = cConst;
    }
    let act: string | null = null;
    // An activation may join only when C is absent or became the bias: a separate Add must come before it.
    if (!ctx.has(2) || bias !== null) {
      act = fuseFollowers(ctx, ctx.node.outputs[0], b, new Float64Array(n), false).act;
      if (act && bias === null) bias = new Float64Array(n);
    }
    let ref = denseRef(ctx, a.ref, transA, b, transB, bias, act);
    if (ctx.has(2) && !bias) {
      const c = rest ? ctx.constRef(rest, 'c') : ctx.op('Mul', [ctx.plain(ctx.need(2)).ref, ctx.scalar('float32', beta, 'beta')], F, 'beta');
      ref = ctx.op('AddV2', [ref, c], F, 'addc');
    }
    return [ctx.result(ref, 'float32', [m, n])];
  }
  const b = ctx.plain(bv);
  const n = transB ? b.shape[0] : b.shape[1];
  let ref = ctx.op('MatMul', [a.ref, b.ref], { ...F, transpose_a: attr.bool(transA), transpose_b: attr.bool(transB) }, 'matmul');
  if (alpha !== 1) ref = ctx.op('Mul', [ref, ctx.scalar('float32', alpha, 'alpha')], F, 'alpha');
  if (ctx.has(2)) {
    const c = cConst ? ctx.constRef(cConst, 'c') : ctx.op('Mul', [ctx.plain(ctx.need(2)).ref, ctx.scalar('float32', beta, 'beta')], F, 'beta');
    ref = ctx.op('AddV2', [ref, c], F, 'addc');
  }
  return [ctx.result(ref, 'float32', [m, n])];
}

function matMul(ctx: NodeContext): Value[] {
  const av = ctx.need(0);
  const bv = ctx.need(1);
  if (av.kind === 'const' && bv.kind === 'const') ctx.fail('constant x constant MatMul is not folded; export with constant folding');
  const at = ctx.tensor(av);
  const r = at.shape.length;
  if (bv.kind === 'const' && bv.tensor.shape.length === 2 && r >= 2) {
    const b = bv.tensor;
    const [k, n] = b.shape;
    // Contract the last logical axis; keep A's layout when that axis is stored last.
    const a = at.perm[r - 1] === r - 1 ? at : ctx.plain(at);
    const lead = a.perm.slice(0, r - 1).map((p) => a.shape[p]);
    let input = a.ref;
    if (r > 2) input = ctx.reshape(a.ref, [-1, k], 'float32', 'flatten');
    const bias = fusibleBias(ctx, ctx.node.outputs[0], n);
    const out = bias ? ctx.soleConsumer(ctx.node.outputs[0])!.outputs[0] : ctx.node.outputs[0];
    const f = fuseFollowers(ctx, out, b, bias ?? new Float64Array(n), false);
    let ref = denseRef(ctx, input, false, b, false, bias ?? (f.act ? new Float64Array(n) : null), f.act);
    if (r > 2) ref = ctx.reshape(ref, [...lead, n], 'float32', 'unflatten');
    const shape: Dim[] = [...at.shape.slice(0, r - 1), n];
    return [ctx.result(ref, 'float32', shape, a.perm)];
  }
  const a = ctx.plain(at);
  const b = ctx.plain(ctx.tensor(bv));
  if (a.shape.length < 2 || b.shape.length < 2) ctx.fail('1-D run-time MatMul operands are not supported');
  const batch = broadcastDims(a.shape.slice(0, -2), b.shape.slice(0, -2), `MatMul node "${ctx.name}"`);
  const op = a.shape.length === 2 && b.shape.length === 2 ? 'MatMul' : 'BatchMatMulV2';
  const attrs = op === 'MatMul' ? { ...F, transpose_a: attr.bool(false), transpose_b: attr.bool(false) } : { ...F, adj_x: attr.bool(false), adj_y: attr.bool(false) };
  const ref = ctx.op(op, [a.ref, b.ref], attrs, 'matmul');
  return [ctx.result(ref, 'float32', [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]])];
}

export const linear: OpRegistry = {
  Gemm: { attrs: ['alpha', 'beta', 'transA', 'transB'], convert: gemm },
  MatMul: { attrs: [], convert: matMul },
};
