// The fuzzers' seed corpus: every file under test/fixtures/images, read once, grouped by the format its bytes start with.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ImageFormat } from '../../src/image/header';
import { IMAGES } from '../helpers/fixtures';

export interface Seed {
  /** Path relative to test/fixtures/images (extra seeds: ../fuzz-seeds/...). */
  name: string;
  /** From the signature, not the file name (bad/garbage.jpg is no JPEG); undefined for non-images. */
  format: ImageFormat | undefined;
  bytes: Uint8Array;
}

export const FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'gif', 'bmp', 'webp', 'tiff'];

// Kept apart from src/image/header.ts on purpose: the corpus must not depend on the code under test.
const SIGNATURES: [ImageFormat, (b: Buffer) => boolean][] = [
  ['jpeg', (b) => b.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff]))],
  ['png', (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))],
  ['gif', (b) => /^GIF8[79]a/.test(b.subarray(0, 6).toString('latin1'))],
  ['bmp', (b) => b.subarray(0, 2).toString('latin1') === 'BM'],
  ['webp', (b) => b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP'],
  ['tiff', (b) => ['49492a00', '4d4d002a'].includes(b.subarray(0, 4).toString('hex'))],
];

/** The format whose signature `bytes` starts with, if any. */
export function signatureFormat(bytes: Uint8Array): ImageFormat | undefined {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return SIGNATURES.find(([, matches]) => matches(view))?.[0];
}

/** Where each format's signature lies ([start, end) spans): WebP's RIFF size between its two parts is no signature. */
export const SIGNATURE_SPANS: Record<ImageFormat, [number, number][]> = {
  jpeg: [[0, 3]],
  png: [[0, 8]],
  gif: [[0, 6]],
  bmp: [[0, 2]],
  webp: [[0, 4], [8, 12]],
  tiff: [[0, 4]],
};

/** Extra small variants (palette BMP, compressed and tiled TIFF, lossless WebP) the test images lack. */
const EXTRA_SEEDS = path.join(IMAGES, '../fuzz-seeds');

let corpus: Seed[] | undefined;

export function loadSeeds(): Seed[] {
  corpus ??= [IMAGES, EXTRA_SEEDS].flatMap((root) =>
    readdirSync(root, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && !/\.(md|tsv)$/.test(e.name))
      .map((e) => path.relative(IMAGES, path.join(e.parentPath, e.name)))
      .sort()
      .map((name) => {
        const bytes = new Uint8Array(readFileSync(path.join(IMAGES, name)));
        return { name, format: signatureFormat(bytes), bytes };
      }),
  );
  return corpus;
}
