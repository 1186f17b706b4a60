// TensorFlow ops of our own: C kernels (src/native/*.c) that `make build` compiles into Node-API addons under
// dist/native/, each registering its op into the TensorFlow the binding has loaded (once per process; the CPU and
// the GPU binding alike). tfjs then runs an op by name, eagerly or inside a session graph.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DIST_DIR } from './dist';

/** Each op and the addon that registers it. */
export const OP_ADDONS = {
  /** Pillow's bilinear resize (src/image/pil-resize.ts). */
  PilResample: path.join(DIST_DIR, 'native', 'resample.node'),
  /** Convolution with a filter packed once (src/engine/packed-conv.ts). */
  PackedConv2D: path.join(DIST_DIR, 'native', 'conv.node'),
} as const;
export type OwnOp = keyof typeof OP_ADDONS;

const registered = new Set<OwnOp>();
const missingText = (file: string) => `${file} is missing: \`make build\` compiles it`;

/** Why the addons cannot be loaded (the first one missing), or null when all are built. */
export function opAddonMissing(): string | null {
  const missing = Object.values(OP_ADDONS).find((file) => !existsSync(file));
  return missing === undefined ? null : missingText(missing);
}

/** The addon of `op`, loaded (Node loads a file once per thread); `what` leads the error when it is not built. */
function addon<T>(op: OwnOp, what: string): T {
  const file = OP_ADDONS[op];
  if (!existsSync(file)) throw new Error(`${what}${missingText(file)}`);
  return require(file) as T;
}

interface ConvAddon {
  vectorKernels(): 'avx512' | 'avx2' | null;
  kernels(): 'avx512' | 'avx2' | 'portable';
  lendIdleCore(slots: Int32Array, maxBatch: number): void;
  helperUnits(): number;
  readyHelper(batch: number): void;
}

/**
 * PackedConv2D's kernels: `vector`, the vector kernels this CPU has (null: only the portable C ones, slower than
 * TensorFlow's own convolution, so sessions keep TensorFlow's); `running`, those the op runs in this process
 * (CONV_KERNELS may pick slower ones). Loading the addon needs no TensorFlow.
 */
export function convolutionKernels(): { vector: 'avx512' | 'avx2' | null; running: 'avx512' | 'avx2' | 'portable' } {
  const conv = addon<ConvAddon>('PackedConv2D', '');
  return { vector: conv.vectorKernels(), running: conv.kernels() };
}

/** Registers `op` with this process's TensorFlow (once; the binding must be loaded) and returns its name. */
export function registerOp(op: OwnOp): OwnOp {
  if (!registered.has(op)) {
    const name = addon<{ register(): string }>(op, `the TensorFlow op ${op} cannot run: `).register();
    if (name !== op) throw new Error(`${OP_ADDONS[op]} registered ${name}, not ${op}`);
    registered.add(op);
  }
  return op;
}

/** What lets an engine thread's convolutions use an idle core: see lendIdleCore. */
export interface IdleCoreLending {
  /** A slot per engine thread of the pool, 1 while it runs a batch (over a SharedArrayBuffer). */
  slots: Int32Array;
  /** Largest batch whose convolutions take the helper thread. */
  maxBatch: number;
}

/**
 * From now on, PackedConv2D calls in this thread (an engine thread) share their work with a helper thread for batches
 * of at most `maxBatch` images while another engine thread idles (a slot of `slots` is 0). The caller keeps `slots`
 * alive. The outputs are the same bits either way.
 */
export function lendIdleCore(lending: IdleCoreLending): void {
  addon<ConvAddon>('PackedConv2D', '').lendIdleCore(lending.slots, lending.maxBatch);
}

/** Before a model call on `batch` images: wakes the helper thread if the call will take it (lendIdleCore). */
export function readyHelper(batch: number): void {
  addon<ConvAddon>('PackedConv2D', '').readyHelper(batch);
}

/** Units of convolution work the helper thread has run in this process (lendIdleCore). */
export function helperUnits(): number {
  return addon<ConvAddon>('PackedConv2D', '').helperUnits();
}
