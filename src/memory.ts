// Giving memory back after large images: V8 collects the JS buffers a decoder handed over, and glibc returns the
// free pages inside its arenas (dist/native/memory.node, built by `make build`; docs/runtime.md, "Memory").
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import { DIST_DIR } from './dist';

export const MEMORY_ADDON = path.join(DIST_DIR, 'native', 'memory.node');

/**
 * Decoded images of this many RGB bytes or more are collected after decoding, and trimmed after once the engine is
 * idle (decode.ts: decodeImage, leavesMemoryBehind).
 */
export const LARGE_IMAGE_BYTES = 32 * 2 ** 20;

/**
 * Under sustained load the engine never goes idle, so the pool's idle trim never runs; each engine worker then trims
 * between its batches at most this often (worker.ts).
 */
export const BUSY_TRIM_INTERVAL_MS = 10_000;

/**
 * The engine idle this long gives back what its busy spell freed: `make serve` lets glibc keep freed pages (its trim
 * threshold is raised so that decoding does not fault them in again each request), so a burst would otherwise stay
 * resident until the next large image. Not sooner: traffic that pauses for a few seconds would fault the same pages
 * in again at each restart (docs/runtime.md, "Memory").
 */
export const IDLE_TRIM_DELAY_MS = 10_000;

let addon: { trim(): boolean } | null | undefined;

/** Why pages freed inside the allocator stay resident, or null when they can be given back. */
export function memoryAddonMissing(): string | null {
  return existsSync(MEMORY_ADDON) ? null : `${MEMORY_ADDON} is missing (\`make build\` compiles it)`;
}

/** Hands the allocator's free pages back to the system (malloc_trim); false when there was none or no addon. */
export function releaseFreedMemory(): boolean {
  if (addon === undefined) addon = memoryAddonMissing() === null ? (require(MEMORY_ADDON) as { trim(): boolean }) : null;
  return addon?.trim() ?? false;
}

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * A full collection, then a turn of the event loop: Node frees the native memory of buffers found dead (libvips'
 * output, jimp's bitmap) in an immediate after the collection, not during it.
 */
export async function collectGarbage(): Promise<void> {
  gc();
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * When the engine gives memory back while idle: at once after an image that left much behind (large, or decoded by
 * libvips), else once it has stayed idle for `delayMs`. Work starting meanwhile cancels the pending release.
 */
export class IdleRelease {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly release: () => unknown = releaseFreedMemory,
    private readonly delayMs = IDLE_TRIM_DELAY_MS,
  ) {}

  busy(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  idle(leftMuchBehind: boolean): void {
    this.busy();
    if (leftMuchBehind) {
      this.release();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release();
    }, this.delayMs).unref();
  }

  close(): void {
    this.busy();
  }
}
