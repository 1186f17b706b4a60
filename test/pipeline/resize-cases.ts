// The synthetic resize cases of pil-resize.test.ts, shared with resize-child.ts.
import { mulberry32 } from '../helpers/random';
import type { ResizeCase } from './reference';

/** Deterministic bytes (mulberry32), so the cached Pillow output stays valid between runs. */
function noise(length: number, seed: number): Uint8Array {
  const next = mulberry32(seed);
  return Uint8Array.from({ length }, () => next() & 0xff);
}

function makeCase(name: string, [h, w]: [number, number], size: [number, number], fill?: number): ResizeCase {
  const pixels = fill === undefined ? noise(h * w * 3, h * 7919 + w) : new Uint8Array(h * w * 3).fill(fill);
  return { name, pixels, shape: [h, w, 3], size };
}

export const CASES: ResizeCase[] = [
  makeCase('upscale-7x5', [5, 7], [64, 64]),
  makeCase('upscale-1x1', [1, 1], [64, 64]),
  makeCase('row-1xN', [1, 97], [64, 64]),
  makeCase('column-Nx1', [97, 1], [64, 64]),
  makeCase('identity-64', [64, 64], [64, 64]),
  makeCase('photo-1024x683', [683, 1024], [64, 64]),
  makeCase('factor-47', [1500, 3000], [32, 64]),
  makeCase('wide-4000x30', [30, 4000], [64, 64]),
  makeCase('tall-30x4000', [4000, 30], [64, 64]),
  makeCase('mixed-37x100', [100, 37], [13, 71]),
  makeCase('odd-upscale-224', [89, 97], [224, 224]),
  makeCase('to-1x1', [17, 23], [1, 1]),
  // Constant 255: the integer weights of a row may sum past 2^22, so this exercises the clip to 255.
  makeCase('white-clip', [333, 517], [64, 64], 255),
  // Downscales by 100000: 200001 taps per output sample.
  makeCase('int32-wide', [3, 100_000], [3, 1]),
  makeCase('int32-tall', [100_000, 2], [1, 2]),
];
