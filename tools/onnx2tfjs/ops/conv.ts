// Conv: 2-D convolutions (plain, depthwise, grouped) as NHWC TF convs, folding a following BatchNormalization and
// fusing bias and Relu/Relu6 into _FusedConv2D / FusedDepthwiseConv2dNative.
import { attr } from '../graph-builder';
import { NodeContext, NHWC } from '../context';
import { makeConst, transposeConst } from '../const-math';
import { outDims, resolveWindows, isTfSame } from '../spatial';
import { ConstTensor, Value } from '../types';
import type { OnnxNode } from '../reader';
import type { OpRegistry } from './index';

type Activation = 'Relu' | 'Relu6' | null;

/** Folds BatchNormalization (inference form) into conv weights [M, ...] and bias [M], in float64. */
function foldBatchNorm(ctx: NodeContext, bn: OnnxNode, w: ConstTensor, b: Float64Array): ConstTensor | null {
  const params = [1, 2, 3, 4].map((i) => ctx.valueOf(bn.inputs[i] ?? ''));
  if (params.some((p) => p?.kind !== 'const')) return null;
  if ((bn.attrs.get('training_mode') ?? 0) !== 0) return null;
  if ([...bn.attrs.keys()].some((k) => !['epsilon', 'momentum', 'spatial', 'training_mode'].includes(k))) return null;
  if (bn.outputs.slice(1).some((o) => o !== '')) return null;
  const [gamma, beta, mean, variance] = params.map((p) => (p as Extract<Value, { kind: 'const' }>).tensor.data);
  const eps = (bn.attrs.get('epsilon') as number | undefined) ?? 1e-5;
  const m = w.shape[0];
  if ([gamma, beta, mean, variance].some((p) => p.length !== m)) return null;
  const per = w.data.length / m;
  const out = new Float32Array(w.data.length);
  for (let o = 0; o < m; o++) {
    const scale = gamma[o] / Math.sqrt(variance[o] + Math.fround(eps));
    for (let j = 0; j < per; j++) out[o * per + j] = w.data[o * per + j] * scale;
    b[o] = (b[o] - mean[o]) * scale + beta[o];
  }
  return { dtype: 'float32', shape: w.shape, data: out };
}

/** A Relu, or a Clip to [0, 6], that can be fused into the op producing `output`. */
function fusibleActivation(ctx: NodeContext, output: string): { node: OnnxNode; act: Activation } | null {
  const c = ctx.soleConsumer(output);
  if (!c || c.inputs[0] !== output || c.domain !== '') return null;
  if (c.opType === 'Relu' && c.attrs.size === 0) return { node: c, act: 'Relu' };
  if (c.opType === 'Clip') {
    let lo: number | undefined;
    let hi: number | undefined;
    if (ctx.opset < 11) {
      lo = c.attrs.get('min') as number | undefined;
      hi = c.attrs.get('max') as number | undefined;
    } else {
      const read = (i: number) => {
        const v = ctx.valueOf(c.inputs[i] ?? '');
        return v?.kind === 'const' && v.tensor.data.length === 1 ? v.tensor.data[0] : undefined;
      };
      lo = read(1);
      hi = read(2);
    }
    if (lo === 0 && hi === 6) return { node: c, act: 'Relu6' };
  }
  return null;
}

/** Looks past the conv/matmul output for BatchNormalization (conv only) and an activation to fold. */
export function fuseFollowers(
  ctx: NodeContext, output: string, weight: ConstTensor, bias: Float64Array, allowBn: boolean,
): { weight: ConstTensor; act: Activation; absorbed: boolean } {
  let cur = output;
  let w = weight;
  let absorbed = false;
  const bn = allowBn ? ctx.soleConsumer(cur) : undefined;
  if (bn && bn.opType === 'BatchNormalization' && bn.domain === '' && bn.inputs[0] === cur) {
    const folded = foldBatchNorm(ctx, bn, w, bias);
    if (folded) {
      w = folded;
      ctx.absorb(bn, cur);
      absorbed = true;
      cur = bn.outputs[0];
    }
  }
  const act = fusibleActivation(ctx, cur);
  if (act) {
    ctx.absorb(act.node, cur);
    absorbed = true;
  }
  return { weight: w, act: act?.act ?? null, absorbed };
}

/** OIHW kernel with dilation d as an undilated kernel of extent (k-1)*d+1 holding zeros between the taps. */
function dilateKernel(w: ConstTensor, [dh, dw]: number[]): ConstTensor {
  const [m, c, kh, kw] = w.shape;
  const [eh, ew] = [(kh - 1) * dh + 1, (kw - 1) * dw + 1];
  const out = new Float32Array(m * c * eh * ew);
  for (let oc = 0; oc < m * c; oc++) {
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) out[(oc * eh + y * dh) * ew + x * dw] = w.data[(oc * kh + y) * kw + x];
    }
  }
  return { dtype: 'float32', shape: [m, c, eh, ew], data: out };
}

function convert(ctx: NodeContext): Value[] {
  const xv = ctx.need(0);
  const w = ctx.constInput(1, 'the weight');
  if (w.shape.length !== 4) ctx.fail(`only 2-D convolutions (4-D weights) are supported, got a ${w.shape.length}-D weight`);
  const [m, cg] = w.shape;
  let [, , kh, kw] = w.shape;
  const kernel = ctx.ints('kernel_shape', [kh, kw]);
  if (kernel[0] !== kh || kernel[1] !== kw) ctx.fail(`kernel_shape [${kernel}] disagrees with the weight [${w.shape}]`);
  const group = ctx.int('group', 1);
  const bias = new Float64Array(m);
  if (ctx.has(2)) {
    const b = ctx.constInput(2, 'the bias');
    if (b.data.length !== m) ctx.fail(`bias has ${b.data.length} values for ${m} output channels`);
    bias.set(b.data);
  }
  const x = ctx.nhwc(xv);
  const c = x.shape[1];
  if (typeof c === 'number' && c !== cg * group) ctx.fail(`input has ${c} channels but weight expects ${cg} x group ${group}`);
  if (m % group !== 0) ctx.fail(`${m} output channels do not split into ${group} groups`);
  const windows = resolveWindows(ctx, [x.shape[2], x.shape[3]], kernel);
  const strides = ctx.ints('strides', [1, 1]);
  let dilations = ctx.ints('dilations', [1, 1]);
  let padding: string;
  let explicit: number[] = [];
  if (!windows) {
    const pads = ctx.ints('pads', [0, 0, 0, 0]);
    padding = pads.every((p) => p === 0) ? 'VALID' : 'EXPLICIT';
    explicit = [0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0];
  } else if (windows.every((a) => a.padBegin === 0 && a.padEnd === 0)) {
    padding = 'VALID';
  } else if (isTfSame(windows, windows.map((a) => a.padEnd))) {
    padding = 'SAME';
  } else {
    padding = 'EXPLICIT';
    explicit = [0, 0, windows[0].padBegin, windows[0].padEnd, windows[1].padBegin, windows[1].padEnd, 0, 0];
  }
  const fused = fuseFollowers(ctx, ctx.node.outputs[0], w, bias, true);
  let wf = fused.weight;
  if (group > 1 && dilations.some((d) => d > 1)) {
    // TF's depthwise kernel has no dilation: spread the taps with zeros (same window, exact sums).
    wf = dilateKernel(wf, dilations);
    [kh, kw] = [wf.shape[2], wf.shape[3]];
    dilations = [1, 1];
  }
  const hasBias = ctx.has(2) || fused.absorbed;
  const fusedOps = hasBias ? ['BiasAdd', ...(fused.act ? [fused.act] : [])] : [];
  // TF convolves with strides > 1 or dilations > 1, not both: convolve densely, then subsample (exact).
  const subsample = strides.some((st) => st > 1) && dilations.some((d) => d > 1);
  const convStrides = subsample ? [1, 1] : strides;
  const common = {
    T: attr.type('float32'),
    strides: attr.ints([1, convStrides[0], convStrides[1], 1]),
    padding: attr.str(padding),
    data_format: attr.str('NHWC'),
    dilations: attr.ints([1, dilations[0], dilations[1], 1]),
    ...(padding === 'EXPLICIT' ? { explicit_paddings: attr.ints(explicit) } : {}),
  };
  const emit = (op: 'conv' | 'depthwise', input: string, filter: ConstTensor, b: Float64Array, suffix: string) => {
    const inputs = [input, ctx.constRef(filter, `${suffix}/filter`)];
    if (fusedOps.length) inputs.push(ctx.constRef(makeConst('float32', [b.length], b), `${suffix}/bias`));
    const attrs = fusedOps.length ? { ...common, fused_ops: attr.strs(fusedOps), num_args: attr.int(1), epsilon: attr.float(0) } : common;
    const tfOp = op === 'depthwise' ? (fusedOps.length ? 'FusedDepthwiseConv2dNative' : 'DepthwiseConv2dNative') : (fusedOps.length ? '_FusedConv2D' : 'Conv2D');
    return ctx.op(tfOp, inputs, op === 'conv' ? { ...attrs, use_cudnn_on_gpu: attr.bool(true) } : attrs, suffix);
  };
  let ref: string;
  if (group === 1) {
    ref = emit('conv', x.ref, transposeConst(wf, [2, 3, 1, 0]), bias, 'conv');
  } else if (cg === 1) {
    // ONNX output channel c*mult+j reads input channel c: TF's depthwise filter [kh, kw, C, mult] has the same order.
    const mult = m / group;
    const filter = transposeConst({ ...wf, shape: [group, mult, kh, kw] }, [2, 3, 0, 1]);
    ref = emit('depthwise', x.ref, filter, bias, 'depthwise');
  } else {
    // tfjs convolutions have no groups. A depthwise conv with multiplier mg computes every (input channel,
    // output of its group) product; summing each group's cg inputs gives the grouped conv in 4 ops.
    const mg = m / group;
    const dw = new Float32Array(kh * kw * group * cg * mg);
    const dwBias = new Float64Array(group * cg * mg);
    for (let gi = 0; gi < group; gi++) {
      for (let i = 0; i < cg; i++) {
        const c = gi * cg + i;
        for (let j = 0; j < mg; j++) {
          const o = gi * mg + j;
          for (let y = 0; y < kh; y++) {
            for (let z = 0; z < kw; z++) dw[((y * kw + z) * group * cg + c) * mg + j] = wf.data[((o * cg + i) * kh + y) * kw + z];
          }
          // The bias rides on one input channel of the group so the sum adds it once.
          if (i === 0) dwBias[c * mg + j] = bias[o];
        }
      }
    }
    const filter: ConstTensor = { dtype: 'float32', shape: [kh, kw, group * cg, mg], data: dw };
    const actFree = fusedOps.length ? ['BiasAdd'] : [];
    const inputs = [x.ref, ctx.constRef(filter, 'grouped/filter')];
    if (actFree.length) inputs.push(ctx.constRef(makeConst('float32', [dwBias.length], dwBias), 'grouped/bias'));
    const partial = ctx.op(actFree.length ? 'FusedDepthwiseConv2dNative' : 'DepthwiseConv2dNative', inputs,
      actFree.length ? { ...common, fused_ops: attr.strs(actFree), num_args: attr.int(1), epsilon: attr.float(0) } : common, 'grouped');
    const [oh, ow] = windows ? [windows[0].out, windows[1].out] : [ctx.symbol(), ctx.symbol()];
    const n = x.shape[0];
    const split = ctx.reshape(partial, [n, oh, ow, group, cg, mg], 'float32', 'grouped/split');
    const summed = ctx.op('Sum', [split, ctx.ints32([4], 'grouped/axis')], { T: attr.type('float32'), Tidx: attr.type('int32'), keep_dims: attr.bool(false) }, 'grouped/sum');
    ref = ctx.reshape(summed, [n, oh, ow, m], 'float32', 'grouped/merge');
    if (fused.act) ref = ctx.op(fused.act, [ref], { T: attr.type('float32') }, fused.act.toLowerCase());
  }
  if (subsample) {
    ref = ctx.op('StridedSlice', [ref, ctx.ints32([0, 0, 0, 0], 'subsample/begin'), ctx.ints32([0, 0, 0, 0], 'subsample/end'), ctx.ints32([1, strides[0], strides[1], 1], 'subsample/strides')], {
      T: attr.type('float32'), Index: attr.type('int32'), begin_mask: attr.int(15), end_mask: attr.int(15),
      ellipsis_mask: attr.int(0), new_axis_mask: attr.int(0), shrink_axis_mask: attr.int(0),
    }, 'subsample');
  }
  return [ctx.result(ref, 'float32', [x.shape[0], m, ...outDims(ctx, windows, 2)], NHWC)];
}

export const conv: OpRegistry = {
  Conv: { attrs: ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'], convert },
};
