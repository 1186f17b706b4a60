// Pools: MaxPool/AveragePool with ONNX pads, ceil_mode and count_include_pad made exact with explicit padding,
// and GlobalAveragePool/GlobalMaxPool as reductions over the NHWC spatial axes.
import { attr } from '../graph-builder';
import { NodeContext, NHWC } from '../context';
import { makeConst } from '../const-math';
import { AxisWindow, isTfSame, outDims, resolveWindows, validEndPad } from '../spatial';
import { Value } from '../types';
import type { OpRegistry } from './index';

function poolInput(ctx: NodeContext) {
  const x = ctx.nhwc(ctx.need(0));
  const kernel = ctx.ints('kernel_shape');
  if (kernel.length !== 2) ctx.fail(`only 2-D pooling is supported, got kernel_shape [${kernel}]`);
  if (ctx.ints('dilations', [1, 1]).some((d) => d !== 1)) ctx.fail('dilated pooling is not supported');
  const windows = resolveWindows(ctx, [x.shape[2], x.shape[3]], kernel, ctx.int('ceil_mode', 0) === 1);
  return { x, kernel, windows };
}

function poolAttrs(kernel: number[], strides: number[], padding: string) {
  return {
    T: attr.type('float32'),
    ksize: attr.ints([1, kernel[0], kernel[1], 1]),
    strides: attr.ints([1, strides[0], strides[1], 1]),
    padding: attr.str(padding),
    data_format: attr.str('NHWC'),
  };
}

/** Pads the NHWC input so that a VALID pool yields exactly the ONNX output size. */
function padFor(ctx: NodeContext, ref: string, windows: AxisWindow[], value: number): string {
  const ends = windows.map(validEndPad);
  if (windows.every((w, i) => w.padBegin === 0 && ends[i] === 0)) return ref;
  const pads = makeConst('int32', [4, 2], [0, 0, windows[0].padBegin, ends[0], windows[1].padBegin, ends[1], 0, 0]);
  return ctx.op('PadV2', [ref, ctx.constRef(pads, 'pad/paddings'), ctx.scalar('float32', value, 'pad/value')],
    { T: attr.type('float32'), Tpaddings: attr.type('int32') }, 'pad');
}

/** Drops trailing outputs a VALID walk over the padded input makes beyond the ONNX size (ceil_mode corner case). */
function cropTo(ctx: NodeContext, ref: string, windows: AxisWindow[]): string {
  const tfOut = windows.map((w) => Math.floor((w.size + w.padBegin + validEndPad(w) - w.kernel) / w.stride) + 1);
  if (tfOut.every((o, i) => o === windows[i].out)) return ref;
  return ctx.op('Slice', [ref, ctx.ints32([0, 0, 0, 0], 'crop/begin'), ctx.ints32([-1, windows[0].out, windows[1].out, -1], 'crop/size')],
    { T: attr.type('float32'), Index: attr.type('int32') }, 'crop');
}

function maxPool(ctx: NodeContext): Value[] {
  if (ctx.outputUsed(1)) ctx.fail('the Indices output is not supported');
  // storage_order only shapes the Indices output, refused above.
  const { x, kernel, windows } = poolInput(ctx);
  const strides = ctx.ints('strides', [1, 1]);
  if (!windows) ctx.fail('pooling needs static spatial sizes');
  let ref: string;
  if (isTfSame(windows, windows.map(validEndPad))) {
    ref = ctx.op('MaxPool', [x.ref], poolAttrs(kernel, strides, 'SAME'), 'maxpool');
  } else {
    // Padding with -inf never wins a max, which is ONNX's semantics for padded cells.
    const padded = padFor(ctx, x.ref, windows, -Infinity);
    ref = cropTo(ctx, ctx.op('MaxPool', [padded], poolAttrs(kernel, strides, 'VALID'), 'maxpool'), windows);
  }
  return [ctx.result(ref, 'float32', [x.shape[0], x.shape[1], ...outDims(ctx, windows, 2)], NHWC)];
}

/** Per-output divisor correction k*k/count, where count is the number of cells ONNX averages over. */
function divisorMap(windows: AxisWindow[], includePad: boolean): Float32Array | null {
  const counts = windows.map((w) => Array.from({ length: w.out }, (_, o) => {
    const start = o * w.stride - w.padBegin;
    const lo = includePad ? -w.padBegin : 0;
    const hi = includePad ? w.size + w.padEnd : w.size;
    return Math.min(start + w.kernel, hi) - Math.max(start, lo);
  }));
  const kk = windows[0].kernel * windows[1].kernel;
  const [oh, ow] = [windows[0].out, windows[1].out];
  const map = new Float32Array(oh * ow);
  let uniform = true;
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      const n = counts[0][i] * counts[1][j];
      map[i * ow + j] = kk / n;
      if (n !== kk) uniform = false;
    }
  }
  return uniform ? null : map;
}

function averagePool(ctx: NodeContext): Value[] {
  const { x, kernel, windows } = poolInput(ctx);
  const strides = ctx.ints('strides', [1, 1]);
  if (!windows) ctx.fail('pooling needs static spatial sizes');
  const includePad = ctx.int('count_include_pad', 0) === 1;
  // Zero padding + VALID average = window sum / k*k; a constant map then rescales to ONNX's divisor per cell.
  const padded = padFor(ctx, x.ref, windows, 0);
  let ref = cropTo(ctx, ctx.op('AvgPool', [padded], poolAttrs(kernel, strides, 'VALID'), 'avgpool'), windows);
  const map = divisorMap(windows, includePad);
  if (map) {
    const t = makeConst('float32', [1, windows[0].out, windows[1].out, 1], map);
    ref = ctx.op('Mul', [ref, ctx.constRef(t, 'divisor')], { T: attr.type('float32') }, 'divisor');
  }
  return [ctx.result(ref, 'float32', [x.shape[0], x.shape[1], ...outDims(ctx, windows, 2)], NHWC)];
}

function globalPool(tfOp: 'Mean' | 'Max') {
  return (ctx: NodeContext): Value[] => {
    const x = ctx.nhwc(ctx.need(0));
    const ref = ctx.op(tfOp, [x.ref, ctx.ints32([1, 2], 'axes')], { T: attr.type('float32'), Tidx: attr.type('int32'), keep_dims: attr.bool(true) }, tfOp.toLowerCase());
    return [ctx.result(ref, 'float32', [x.shape[0], x.shape[1], 1, 1], NHWC)];
  };
}

export const pool: OpRegistry = {
  MaxPool: { attrs: ['auto_pad', 'ceil_mode', 'dilations', 'kernel_shape', 'pads', 'storage_order', 'strides'], convert: maxPool },
  AveragePool: { attrs: ['auto_pad', 'ceil_mode', 'count_include_pad', 'dilations', 'kernel_shape', 'pads', 'strides'], convert: averagePool },
  GlobalAveragePool: { attrs: [], convert: globalPool('Mean') },
  GlobalMaxPool: { attrs: [], convert: globalPool('Max') },
};
