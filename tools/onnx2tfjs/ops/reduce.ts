// Reductions over ONNX axes remapped to the stored layout: ReduceMean/Sum/Max/Min/Prod.
import { attr } from '../graph-builder';
import { NodeContext } from '../context';
import { normAxis } from '../const-math';
import { Value } from '../types';
import type { OpConverter, OpRegistry } from './index';

function reduction(tf: string, axesInputSince: number): OpConverter {
  return {
    attrs: ['axes', 'keepdims', 'noop_with_empty_axes'],
    convert(ctx: NodeContext): Value[] {
      const x = ctx.tensor(ctx.need(0));
      const r = x.shape.length;
      const where = `${ctx.node.opType} node "${ctx.name}"`;
      let axes: number[] | undefined;
      if (ctx.opset >= axesInputSince) {
        if (ctx.hasAttr('axes')) ctx.fail(`from opset ${axesInputSince} axes is an input, not an attribute`);
        if (ctx.has(1)) axes = Array.from(ctx.constInput(1, 'axes').data);
      } else if (ctx.hasAttr('axes')) {
        axes = ctx.ints('axes');
      }
      if (!axes || axes.length === 0) {
        if (ctx.int('noop_with_empty_axes', 0) === 1) return [x];
        axes = Array.from({ length: r }, (_, i) => i);
      }
      const logical = [...new Set(axes.map((a) => normAxis(a, r, where)))];
      const keep = ctx.int('keepdims', 1) === 1;
      const phys = logical.map((a) => x.perm.indexOf(a)).sort((p, q) => p - q);
      const ref = ctx.op(tf, [x.ref, ctx.ints32(phys, 'axes')], { T: attr.type(x.dtype), Tidx: attr.type('int32'), keep_dims: attr.bool(keep) }, tf.toLowerCase());
      if (keep) return [{ ...x, ref, shape: x.shape.map((d, i) => (logical.includes(i) ? 1 : d)) }];
      const remaining = x.shape.map((_, i) => i).filter((i) => !logical.includes(i));
      const perm = x.perm.filter((a) => !logical.includes(a)).map((a) => remaining.indexOf(a));
      return [ctx.result(ref, x.dtype, remaining.map((i) => x.shape[i]), perm)];
    },
  };
}

export const reduce: OpRegistry = {
  ReduceMean: reduction('Mean', 18),
  ReduceSum: reduction('Sum', 13),
  ReduceMax: reduction('Max', 18),
  ReduceMin: reduction('Min', 18),
  ReduceProd: reduction('Prod', 18),
};
