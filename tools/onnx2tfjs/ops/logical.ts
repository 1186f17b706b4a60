// Comparisons and selection: Equal/Greater/Less/Not/Where, folded on constants and shape vectors (the
// expand-with-batch pattern exporters emit for ViT's class token), SelectV2 at run time.
import { attr } from '../graph-builder';
import { dimsOf, dimsValue, NodeContext } from '../context';
import { broadcastDims, broadcastTo, makeConst, unaryConst } from '../const-math';
import { Dim, Value } from '../types';
import { align, asConst, binary, rankOf, resultPerm } from './elementwise';
import type { OpRegistry } from './index';

function where(ctx: NodeContext): Value[] {
  const [c, a, b] = [0, 1, 2].map((i) => ctx.need(i));
  const cd = asConst(c);
  const ad = dimsOf(a);
  const bd = dimsOf(b);
  // Selecting between shape vectors with a known condition: stays a (possibly symbolic) shape vector.
  if (cd && cd.shape.length <= 1 && ad && bd) {
    const n = Math.max(cd.data.length, ad.dims.length, bd.dims.length);
    const pick = (v: ArrayLike<number> | Dim[], i: number) => v[v.length === 1 ? 0 : i];
    const out = Array.from({ length: n }, (_, i) => (pick(cd.data, i) ? pick(ad.dims, i) : pick(bd.dims, i)));
    return [dimsValue(out, cd.shape.length === 0 && ad.scalar && bd.scalar, ad.dtype)];
  }
  const [ac, bc] = [asConst(a), asConst(b)];
  if (cd && ac && bc) {
    const shape = broadcastDims(broadcastDims(cd.shape, ac.shape, 'Where'), bc.shape, 'Where') as number[];
    const [cb, ab, bb] = [cd, ac, bc].map((t) => broadcastTo(t, shape));
    return [{ kind: 'const', tensor: makeConst(ab.dtype, shape, Array.from(cb.data, (v, i) => (v ? ab.data[i] : bb.data[i]))) }];
  }
  const r = Math.max(rankOf(c), rankOf(a), rankOf(b));
  const perm = resultPerm([a, b, c], r);
  const [ct, at, bt] = [c, a, b].map((v) => align(ctx, v, r, perm));
  const ref = ctx.op('SelectV2', [ct.ref, at.ref, bt.ref], { T: attr.type(at.dtype) }, 'select');
  const shape = broadcastDims(broadcastDims(ct.shape, at.shape, 'Where'), bt.shape, 'Where');
  return [ctx.result(ref, at.dtype, shape, perm)];
}

function not(ctx: NodeContext): Value[] {
  const v = ctx.need(0);
  const c = asConst(v);
  if (c) return [{ kind: 'const', tensor: unaryConst(c, (x) => (x ? 0 : 1), 'bool') }];
  const t = ctx.tensor(v);
  return [{ ...t, ref: ctx.op('LogicalNot', [t.ref], {}, 'not') }];
}

export const logical: OpRegistry = {
  Equal: binary({ tf: 'Equal', fold: (x, y) => Number(x === y), out: 'bool' }),
  Greater: binary({ tf: 'Greater', fold: (x, y) => Number(x > y), out: 'bool' }),
  Less: binary({ tf: 'Less', fold: (x, y) => Number(x < y), out: 'bool' }),
  Not: { attrs: [], convert: not },
  Where: { attrs: [], convert: where },
};
