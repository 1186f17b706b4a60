// Stage 2: RGB pixels -> the model's input, torchvision's Resize((H, W)) + ToTensor + Normalize(mean, std) in tf ops.
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { resizeBilinearPil, resizeWeights, type ResizeWeights } from './pil-resize';
import type { Tf } from '../runtime';
import { registerOp } from '../tf-ops';

export interface PreprocessOptions {
  /** Model input size in pixels. */
  height: number;
  width: number;
  /** Per-channel RGB mean and standard deviation on the 0..1 scale (as given to torchvision's Normalize). */
  mean: number[];
  std: number[];
  /** Bytes of resize weights kept for reuse across source sizes (least recently used dropped first); default 64 MiB. */
  cacheBytes?: number;
}

/**
 * Returns a function from RGB pixels int32 `[h, w, 3]` (0..255, any size) to the normalised float32 NHWC image
 * `[height, width, 3]`: ((PIL-bilinear-resized / 255) - mean) / std. The result is a new tensor; the input is not
 * disposed. Resize weights are computed once per source size and kept as plain arrays (no tensors are cached).
 * @throws Error when the resize op's addon is not built
 */
export function createPreprocessor(tf: Tf, opts: PreprocessOptions): (pixels: Tensor3D) => Tensor3D {
  const { height, width, mean, std } = opts;
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)) {
    throw new RangeError(`input size must be positive integers, got ${height}x${width}`);
  }
  if (mean.length !== 3 || std.length !== 3 || std.some((s) => !(s > 0))) {
    throw new RangeError(`mean and std need 3 values each, std positive; got mean [${mean}] std [${std}]`);
  }
  // Now, not at the first image: a missing addon stops a worker at startup.
  registerOp('PilResample');
  const cache = new LruCache<string, ResizeWeights>(opts.cacheBytes ?? 64 * 2 ** 20);
  const weightsFor = (srcHeight: number, srcWidth: number): ResizeWeights => {
    const key = `${srcHeight}x${srcWidth}`;
    const cached = cache.get(key);
    if (cached) return cached;
    const weights = resizeWeights(srcHeight, srcWidth, height, width);
    cache.set(key, weights, weights.bytes);
    return weights;
  };
  return (pixels) =>
    tf.tidy(() => {
      const resized = resizeBilinearPil(tf, pixels, weightsFor(pixels.shape[0], pixels.shape[1]));
      // Same float32 operations, in the same order, as ToTensor (x / 255) and Normalize ((x - mean) / std).
      const scaled = tf.div(tf.cast(resized, 'float32'), 255);
      return tf.div(tf.sub(scaled, tf.tensor1d(mean, 'float32')), tf.tensor1d(std, 'float32')) as Tensor3D;
    });
}

/** A Map bounded by the total cost of its entries; the least recently used entries go first. */
export class LruCache<K, V> {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used entry first.
  private readonly entries = new Map<K, { value: V; cost: number }>();
  private total = 0;

  constructor(private readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError(`cache capacity must be positive, got ${capacity}`);
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Stores `value` unless its cost alone exceeds the capacity, evicting as needed. */
  set(key: K, value: V, cost: number): void {
    this.delete(key);
    if (cost > this.capacity) return;
    this.entries.set(key, { value, cost });
    this.total += cost;
    for (const oldest of this.entries.keys()) {
      if (this.total <= this.capacity) break;
      this.delete(oldest);
    }
  }

  private delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.total -= entry.cost;
  }
}
