// Window geometry shared by convolutions and pools: ONNX pads/auto_pad/ceil_mode resolved to per-axis begin/end pads.
import type { NodeContext } from './context';
import { Dim } from './types';

export interface AxisWindow {
  /** Input length (static). */
  size: number;
  kernel: number;
  stride: number;
  dilation: number;
  padBegin: number;
  /** End padding from the attributes, before any ceil_mode extension. */
  padEnd: number;
  out: number;
}

/** Effective window extent with dilation. */
const extent = (k: number, d: number) => (k - 1) * d + 1;

/**
 * Resolves the spatial windows of a 2-D Conv/Pool node for input spatial dims [H, W].
 * Output lengths follow ONNX (floor, or ceil with `ceil_mode`, where a last window starting in the end padding
 * is dropped, as PyTorch and onnxruntime do). Returns null dims when a spatial size is only known at run time.
 */
export function resolveWindows(ctx: NodeContext, spatial: Dim[], kernel: number[], ceilMode = false): AxisWindow[] | null {
  const n = kernel.length;
  const strides = ctx.ints('strides', new Array(n).fill(1));
  const dilations = ctx.ints('dilations', new Array(n).fill(1));
  const autoPad = ctx.str('auto_pad', 'NOTSET');
  const pads = ctx.ints('pads', new Array(2 * n).fill(0));
  if (strides.length !== n || dilations.length !== n || pads.length !== 2 * n) {
    ctx.fail(`strides/dilations/pads must have ${n} / ${n} / ${2 * n} entries`);
  }
  if (pads.some((p) => p < 0)) ctx.fail('negative pads are not supported');
  if (spatial.some((d) => typeof d !== 'number')) {
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') ctx.fail(`auto_pad ${autoPad} needs static spatial sizes`);
    return null;
  }
  return spatial.map((dim, i): AxisWindow => {
    const size = dim as number;
    const k = kernel[i];
    const s = strides[i];
    const d = dilations[i];
    let pb = pads[i];
    let pe = pads[i + n];
    if (autoPad === 'VALID') {
      pb = 0;
      pe = 0;
    } else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const out = Math.ceil(size / s);
      const total = Math.max(0, (out - 1) * s + extent(k, d) - size);
      pb = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      pe = total - pb;
    } else if (autoPad !== 'NOTSET') {
      ctx.fail(`auto_pad "${autoPad}" is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`);
    }
    const span = size + pb + pe - extent(k, d);
    if (span < 0) ctx.fail(`window ${k} (dilation ${d}) is larger than the padded input ${size + pb + pe}`);
    let out = (ceilMode ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    if (ceilMode && (out - 1) * s >= size + pb) out -= 1;
    return { size, kernel: k, stride: s, dilation: d, padBegin: pb, padEnd: pe, out };
  });
}

/** Output dim for a window, or a fresh symbol when the input size is dynamic. */
export function outDims(ctx: NodeContext, windows: AxisWindow[] | null, n: number): Dim[] {
  return windows ? windows.map((w) => w.out) : Array.from({ length: n }, () => ctx.symbol());
}

/** True when TF's SAME padding produces exactly these pads and output sizes. */
export function isTfSame(windows: AxisWindow[], padEnds: number[]): boolean {
  return windows.every((w, i) => {
    const out = Math.ceil(w.size / w.stride);
    const total = Math.max(0, (out - 1) * w.stride + extent(w.kernel, w.dilation) - w.size);
    return out === w.out && w.padBegin === Math.floor(total / 2) && padEnds[i] === total - Math.floor(total / 2);
  });
}

/** End padding that makes a VALID window walk produce exactly `out` outputs (at least; never negative). */
export function validEndPad(w: AxisWindow): number {
  return Math.max(0, (w.out - 1) * w.stride + extent(w.kernel, w.dilation) - w.size - w.padBegin);
}
