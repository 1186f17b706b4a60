// Hostile uploads, built here rather than stored: one or more per class of attack the service must survive
// (malformed TIFF structures, memory and CPU bombs inside the pixel limit, and valid files that must still decode).
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { image } from './fixtures';

export interface HostileInput {
  name: string;
  bytes: Buffer;
  /** The answer expected at default limits: a status and error code, or 200 for a valid file. */
  status: number;
  code?: string;
}

interface IfdEntry {
  tag: number;
  type: 3 | 4; // SHORT, LONG
  values: number[];
  /** Claimed value count when it differs from values.length (a table that lies about its size). */
  count?: number;
}

/**
 * A little-endian TIFF: `data` at offset 8, then one directory per page. `next` overrides each directory's link
 * (an index into the pages, or -1 for the end) so chains can loop.
 */
export function tiff(data: Buffer, pages: IfdEntry[][], next?: number[]): Buffer {
  const chunks: Buffer[] = [Buffer.from([0x49, 0x49, 0x2a, 0, 0, 0, 0, 0]), data];
  let offset = 8 + data.length + (data.length & 1);
  if (data.length & 1) chunks.push(Buffer.alloc(1));
  // Directory sizes first, so that every link is known before writing.
  const layout = pages.map((entries) => {
    const extra = entries.reduce((sum, e) => sum + (e.values.length * (e.type === 3 ? 2 : 4) > 4 ? e.values.length * (e.type === 3 ? 2 : 4) : 0), 0);
    const start = offset;
    offset += 2 + entries.length * 12 + 4 + extra;
    return start;
  });
  chunks[0].writeUInt32LE(layout[0], 4);
  pages.forEach((entries, p) => {
    const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
    const arrays: Buffer[] = [];
    let arrayAt = layout[p] + ifd.length;
    ifd.writeUInt16LE(entries.length, 0);
    [...entries].sort((a, b) => a.tag - b.tag).forEach((e, i) => {
      const at = 2 + i * 12;
      const size = e.type === 3 ? 2 : 4;
      ifd.writeUInt16LE(e.tag, at);
      ifd.writeUInt16LE(e.type, at + 2);
      ifd.writeUInt32LE(e.count ?? e.values.length, at + 4);
      const values = Buffer.alloc(e.values.length * size);
      e.values.forEach((v, k) => (size === 2 ? values.writeUInt16LE(v, k * 2) : values.writeUInt32LE(v, k * 4)));
      if (values.length <= 4) values.copy(ifd, at + 8);
      else {
        ifd.writeUInt32LE(arrayAt, at + 8);
        arrays.push(values);
        arrayAt += values.length;
      }
    });
    const link = next?.[p] ?? (p + 1 < pages.length ? p + 1 : -1);
    ifd.writeUInt32LE(link < 0 ? 0 : layout[link], 2 + entries.length * 12);
    chunks.push(ifd, ...arrays);
  });
  return Buffer.concat(chunks);
}

/** Directory entries of an 8-bit RGB page whose strips are `strips` (offset, byte count) pairs. */
export function rgbPage(width: number, height: number, strips: [number, number][], rowsPerStrip: number, compression = 1): IfdEntry[] {
  return [
    { tag: 0x100, type: 4, values: [width] },
    { tag: 0x101, type: 4, values: [height] },
    { tag: 0x102, type: 3, values: [8, 8, 8] },
    { tag: 0x103, type: 3, values: [compression] },
    { tag: 0x106, type: 3, values: [2] },
    { tag: 0x111, type: 4, values: strips.map(([o]) => o) },
    { tag: 0x115, type: 3, values: [3] },
    { tag: 0x116, type: 4, values: [rowsPerStrip] },
    { tag: 0x117, type: 4, values: strips.map(([, n]) => n) },
  ];
}

/** A progressive JPEG of `side` x `side` whose last scan is repeated `copies` times: each scan is a pass over it all. */
export async function manyScanJpeg(copies: number, side = 256): Promise<Buffer> {
  const jpeg = await sharp(readFileSync(image('p01-sunset.jpg'))).resize(side, side).jpeg({ progressive: true, quality: 90 }).toBuffer();
  const sos: number[] = [];
  for (let i = 2; i < jpeg.length - 1; i++) if (jpeg[i] === 0xff && jpeg[i + 1] === 0xda) sos.push(i);
  const end = jpeg.lastIndexOf(Buffer.from([0xff, 0xd9]));
  const last = jpeg.subarray(sos[sos.length - 1], end);
  return Buffer.concat([jpeg.subarray(0, end), ...Array.from({ length: copies }, () => last), jpeg.subarray(end)]);
}

/** Every hostile input, with what the service must answer at default limits (36 megapixels, 20 MiB). */
export async function hostileInputs(): Promise<HostileInput[]> {
  const pixels = Buffer.alloc(4 * 4 * 3, 0x80);
  const small = (extra: Partial<IfdEntry>[] = []) => rgbPage(4, 4, [[8, pixels.length]], 4).map((e) => ({ ...e, ...extra.find((x) => x.tag === e.tag) }) as IfdEntry);
  // 6000 x 6000 of one colour: 108 MB of pixels in a few hundred kilobytes of Deflate.
  const deflated = deflateSync(Buffer.alloc(6000 * 6000 * 3, 0x40), { level: 9 });
  const noise = Buffer.from(Array.from({ length: 6000 * 6000 * 3 / 1024 }, (_, i) => (i * 7919) & 255));
  return [
    // Class 1: structures that killed the process.
    { name: 'tiff-ifd-loop', bytes: tiff(pixels, [small(), small()], [1, 0]), status: 422, code: 'corrupt_image' },
    { name: 'tiff-ifd-self-loop', bytes: tiff(pixels, [small()], [0]), status: 422, code: 'corrupt_image' },
    { name: 'tiff-strip-table-billions', bytes: tiff(pixels, [small([{ tag: 0x111, count: 0xffffffff }, { tag: 0x117, count: 0xffffffff }])]), status: 422, code: 'corrupt_image' },
    { name: 'tiff-strip-table-too-long', bytes: tiff(pixels, [rgbPage(4, 4, Array.from({ length: 5000 }, () => [8, 4] as [number, number]), 1)]), status: 422, code: 'corrupt_image' },
    // Class 2: memory bombs inside the pixel limit.
    { name: 'tiff-300-full-size-pages', bytes: tiff(pixels, Array.from({ length: 300 }, () => rgbPage(6000, 6000, [[8, pixels.length]], 6000))), status: 422, code: 'image_too_complex' },
    { name: 'tiff-page-2-over-limit', bytes: tiff(pixels, [small(), rgbPage(20000, 20000, [[8, pixels.length]], 20000)]), status: 413, code: 'image_too_large' },
    { name: 'tiff-huge-tile', bytes: tiff(pixels, [[...rgbPage(4, 4, [], 4).filter((e) => ![0x111, 0x116, 0x117].includes(e.tag)),
      { tag: 0x142, type: 4, values: [65536] }, { tag: 0x143, type: 4, values: [65536] }, { tag: 0x144, type: 4, values: [8] }, { tag: 0x145, type: 4, values: [pixels.length] }]]), status: 422, code: 'image_too_complex' },
    { name: 'tiff-deflate-6000x6000', bytes: tiff(deflated, [rgbPage(6000, 6000, [[8, deflated.length]], 6000, 8)]), status: 200 },
    { name: 'tiff-jpeg-declares-small', bytes: await jpegInTiff(), status: 422, code: 'corrupt_image' },
    { name: 'webp-6000x6000', bytes: await sharp(noise, { raw: { width: 128, height: 1, channels: 3 } }).resize(6000, 6000, { kernel: 'nearest' }).webp({ quality: 50 }).toBuffer(), status: 200 },
    { name: 'png-6000x6000', bytes: await sharp({ create: { width: 6000, height: 6000, channels: 3, background: '#406080' } }).png().toBuffer(), status: 200 },
    { name: 'jpeg-6000x6000', bytes: await sharp(noise, { raw: { width: 128, height: 1, channels: 3 } }).resize(6000, 6000, { kernel: 'nearest' }).jpeg({ quality: 90 }).toBuffer(), status: 200 },
    // Class 3: CPU bombs.
    { name: 'jpeg-3000-scans', bytes: await manyScanJpeg(3000), status: 422, code: 'image_too_complex' },
    { name: 'jpeg-6000x6000-40-scans', bytes: await manyScanJpeg(30, 6000), status: 422, code: 'image_too_complex' },
    { name: 'tiff-30000-strips', bytes: tiff(pixels, [rgbPage(1, 30000, Array.from({ length: 30000 }, () => [8, 3] as [number, number]), 1)]), status: 200 },
    // Class 4: valid small files that were refused.
    { name: 'webp-solid-16x16', bytes: await sharp({ create: { width: 16, height: 16, channels: 3, background: '#208040' } }).webp({ lossless: true }).toBuffer(), status: 200 },
  ];
}

/** A TIFF declaring 64x64 whose one JPEG strip holds a 4096x4096 picture (JPEG-in-TIFF past the pixel check). */
async function jpegInTiff(): Promise<Buffer> {
  const jpeg = await sharp({ create: { width: 4096, height: 4096, channels: 3, background: '#808080' } }).jpeg().toBuffer();
  const page = rgbPage(64, 64, [[8, jpeg.length]], 64, 7).map((e) => (e.tag === 0x106 ? { ...e, values: [6] } : e));
  return tiff(jpeg, [page]);
}
