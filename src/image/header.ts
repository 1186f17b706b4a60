// Reads an upload's format, pixel size and EXIF orientation from its header, so bad input is refused before decoding.

import { ServiceError } from '../errors';

export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'bmp' | 'webp' | 'tiff';

export interface ImageHeader {
  format: ImageFormat;
  /** Pixel size as stored (before any EXIF rotation). */
  width: number;
  height: number;
  /** EXIF orientation 1..8 (1: as stored, 6: rotate 90 degrees clockwise to display, ...); 1 when absent. */
  orientation: number;
  /** JPEG colour components (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK); PNG: samples per pixel. */
  components?: number;
  /** Bits per sample (JPEG, PNG) or per pixel (BMP). */
  bitDepth?: number;
  /** BMP compression field (0: uncompressed BI_RGB). */
  compression?: number;
  /** GIF: where the first frame is and what Pillow paints around and under it. */
  gif?: GifFirstFrame;
  /** TIFF: the size of every page after the first (only the first is decoded, but all must be within limits). */
  morePages?: { width: number; height: number }[];
}

export interface GifFirstFrame {
  /** Offset of the first image descriptor (the 0x2C byte) and offset just past its image data. */
  descriptor: number;
  end: number;
  /** The frame's rectangle on the canvas (the canvas is the header's width x height). */
  left: number;
  top: number;
  width: number;
  height: number;
  /** Offsets of the flags byte of each graphic control extension before the frame (bit 0: transparency). */
  controlFlags: number[];
  /**
   * RGB that Pillow starts the canvas with: the colour of the transparent index, or of index 0 without one, from
   * the frame's palette. Pillow's convert('RGB') shows transparent pixels in their palette colour too.
   */
  background: [number, number, number];
}

/** Formats the service decodes, in the words used in error messages and docs/formats.md. */
export const ACCEPTED_FORMATS = 'JPEG, PNG, GIF, BMP, WebP or TIFF';

/**
 * Identifies `bytes` from its signature and reads its header.
 * @throws ServiceError 400 empty_file, 415 unsupported_format (unknown signature), 422 corrupt_image (the header
 *   is cut short or inconsistent).
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length === 0) {
    throw new ServiceError(400, 'empty_file', 'The uploaded file is empty (0 bytes); send the image file itself in the "image" field.');
  }
  const reader = new ByteReader(bytes);
  const format = sniffFormat(reader);
  if (format === undefined) {
    throw new ServiceError(415, 'unsupported_format',
      `The upload is not an image the service can read${describeKnownNonImage(reader)}; send a ${ACCEPTED_FORMATS} file.`);
  }
  const header = PARSERS[format](reader);
  if (!(header.width > 0 && header.height > 0)) {
    throw corrupt(format, `its header gives a size of ${header.width}x${header.height} pixels`);
  }
  return header;
}

/**
 * Longest side accepted, whatever the pixel count (JPEG's own limit): the resize keeps dense weight matrices of
 * side x output size, which an extreme strip (say 1 x 30,000,000) would blow up to gigabytes.
 */
export const MAX_SIDE = 65535;

/**
 * Refuses images whose pixel count exceeds `maxPixels` (decompression bombs) or whose longer side exceeds
 * MAX_SIDE, using only the header.
 * @throws ServiceError 413 image_too_large
 */
export function checkPixelLimit(header: ImageHeader, maxPixels: number): void {
  const pages = [header, ...(header.morePages ?? [])];
  pages.forEach(({ width, height }, index) => {
    const which = index === 0 ? 'The image' : `Page ${index + 1} of the TIFF file`;
    if (Math.max(width, height) > MAX_SIDE) {
      throw new ServiceError(413, 'image_too_large',
        `${which} is ${width}x${height} pixels; sides longer than ${MAX_SIDE} pixels are not accepted. ` +
        'Downscale or crop it before uploading.');
    }
    const pixels = width * height;
    if (pixels > maxPixels) {
      throw new ServiceError(413, 'image_too_large',
        `${which} is ${width}x${height} pixels (${megapixels(pixels)} megapixels), over this server's limit of ` +
        `${megapixels(maxPixels)} megapixels; downscale it before uploading.`);
    }
  });
}

function megapixels(pixels: number): string {
  return (pixels / 1e6).toFixed(1);
}

function unsupported(what: string, instead: string): ServiceError {
  return new ServiceError(415, 'unsupported_format', `${what} is not supported; ${instead}.`);
}

/** 422 image_too_complex: a structure no camera or editor writes, refused before it costs time or memory. */
function tooComplex(format: ImageFormat, what: string): ServiceError {
  return new ServiceError(422, 'image_too_complex',
    `The ${FORMAT_NAMES[format]} file ${what}, far beyond what cameras and editors write, so it is refused unread; ` +
    're-save it as a plain JPEG or PNG.');
}

export function corrupt(format: ImageFormat, what: string, cause?: unknown): ServiceError {
  return new ServiceError(422, 'corrupt_image',
    `The ${FORMAT_NAMES[format]} file is corrupt or truncated: ${what}. Re-export or re-upload the complete image.`, { cause });
}

const FORMAT_NAMES: Record<ImageFormat, string> = { jpeg: 'JPEG', png: 'PNG', gif: 'GIF', bmp: 'BMP', webp: 'WebP', tiff: 'TIFF' };

/** Bounds-checked big/little-endian reads; reading past the end means the header is cut short. */
class ByteReader {
  constructor(readonly bytes: Uint8Array) {}

  has(offset: number, length: number): boolean {
    return offset >= 0 && offset + length <= this.bytes.length;
  }

  startsWith(offset: number, signature: readonly number[] | string): boolean {
    const expected = typeof signature === 'string' ? [...signature].map((c) => c.charCodeAt(0)) : signature;
    return this.has(offset, expected.length) && expected.every((b, i) => this.bytes[offset + i] === b);
  }

  u8(offset: number): number | undefined {
    return this.has(offset, 1) ? this.bytes[offset] : undefined;
  }

  u16(offset: number, littleEndian: boolean): number | undefined {
    if (!this.has(offset, 2)) return undefined;
    const [a, b] = [this.bytes[offset], this.bytes[offset + 1]];
    return littleEndian ? a | (b << 8) : (a << 8) | b;
  }

  u24le(offset: number): number | undefined {
    return this.has(offset, 3) ? this.bytes[offset] | (this.bytes[offset + 1] << 8) | (this.bytes[offset + 2] << 16) : undefined;
  }

  u32(offset: number, littleEndian: boolean): number | undefined {
    if (!this.has(offset, 4)) return undefined;
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + offset, 4).getUint32(0, littleEndian);
  }

  i32le(offset: number): number | undefined {
    if (!this.has(offset, 4)) return undefined;
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + offset, 4).getInt32(0, true);
  }
}

/** The format named by the first bytes, without reading further. */
export function formatOf(bytes: Uint8Array): ImageFormat | undefined {
  return sniffFormat(new ByteReader(bytes));
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function sniffFormat(r: ByteReader): ImageFormat | undefined {
  if (r.startsWith(0, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (r.startsWith(0, PNG_SIGNATURE)) return 'png';
  if (r.startsWith(0, 'GIF87a') || r.startsWith(0, 'GIF89a')) return 'gif';
  if (r.startsWith(0, 'BM')) return 'bmp';
  if (r.startsWith(0, 'RIFF') && r.startsWith(8, 'WEBP')) return 'webp';
  if (r.startsWith(0, [0x49, 0x49, 0x2a, 0x00]) || r.startsWith(0, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  return undefined;
}

/** Names a few common non-images so the message tells the user what they actually sent. */
function describeKnownNonImage(r: ByteReader): string {
  if (r.startsWith(0, 'PK\x03\x04')) return ' (it is a ZIP archive)';
  if (r.startsWith(0, '%PDF')) return ' (it is a PDF document)';
  const head = new TextDecoder().decode(r.bytes.subarray(0, 256)).trimStart().toLowerCase();
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return ' (it is an HTML page)';
  return '';
}

const PARSERS: Record<ImageFormat, (r: ByteReader) => ImageHeader> = {
  jpeg: parseJpeg,
  png: parsePng,
  gif: parseGif,
  bmp: parseBmp,
  webp: parseWebp,
  tiff: parseTiff,
};

// Start-of-frame markers: SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC).
const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function parseJpeg(r: ByteReader): ImageHeader {
  let orientation = 1;
  let offset = 2;
  for (;;) {
    // Markers are 0xFF then a code; any number of 0xFF fill bytes may precede the code.
    if (r.u8(offset) !== 0xff) throw corrupt('jpeg', `no marker at byte ${offset} where the header continues`);
    while (r.u8(offset) === 0xff) offset++;
    const marker = r.u8(offset);
    if (marker === undefined) throw corrupt('jpeg', 'the file ends inside its header');
    offset++;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // markers without a length
    if (marker === 0xd9 || marker === 0xda) throw corrupt('jpeg', 'it has no frame header (SOF) before its image data');
    const length = r.u16(offset, false);
    if (length === undefined || length < 2 || !r.has(offset, length)) throw corrupt('jpeg', 'the file ends inside its header');
    if (JPEG_SOF.has(marker)) {
      const precision = r.u8(offset + 2);
      if (precision !== 8) throw unsupported(`A ${precision}-bit JPEG`, 'save it as an 8-bit JPEG or a PNG');
      const height = r.u16(offset + 3, false) ?? 0;
      const width = r.u16(offset + 5, false) ?? 0;
      // Each scan of a progressive JPEG is a pass over the whole image: their number bounds the decoding time.
      if (marker !== 0xc0 && marker !== 0xc1) checkScanCount(r, offset + length, width * height);
      return { format: 'jpeg', width, height, orientation, components: r.u8(offset + 7), bitDepth: precision };
    }
    if (marker === 0xe1 && r.startsWith(offset + 2, 'Exif\0\0')) {
      orientation = tiffOrientation(r, offset + 8, offset + length) ?? orientation;
    }
    offset += length;
  }
}

/**
 * Scans accepted in a progressive (or other multi-scan) JPEG: encoders write about 10 (libjpeg's default
 * progression) and rarely more than 20, while thousands of tiny scans make a small file that decodes for many
 * seconds. Every scan is a pass over the image, so large images get fewer: 64 at most, 20 at 36 megapixels
 * (measured: 60 scans of a 36-megapixel image take 4 s to decode, 10 scans 0.4 s), never fewer than 16.
 */
export function maxJpegScans(pixels: number): number {
  return Math.min(64, Math.max(16, Math.floor(720e6 / pixels)));
}

/** Counts start-of-scan markers from `offset` to the end of the image, skipping each scan's entropy-coded data. */
function checkScanCount(r: ByteReader, offset: number, pixels: number): void {
  const { bytes } = r;
  const limit = maxJpegScans(pixels);
  let scans = 0;
  while (offset < bytes.length) {
    offset = bytes.indexOf(0xff, offset);
    if (offset < 0) return;
    const marker = bytes[offset + 1];
    // 0xFF00 is a stuffed data byte, 0xFFFF fill, RST0-7 restart markers inside a scan's data.
    if (marker === 0x00 || marker === 0xff || (marker >= 0xd0 && marker <= 0xd7) || marker === undefined) {
      offset += 1;
      continue;
    }
    if (marker === 0xd9) return; // end of image
    const length = r.u16(offset + 2, false) ?? 0;
    if (marker === 0xda && ++scans > limit) throw tooComplex('jpeg', `has more than ${limit} scans for its size`);
    offset += 2 + Math.max(length, 2);
  }
}

function parsePng(r: ByteReader): ImageHeader {
  if (!r.startsWith(12, 'IHDR') || !r.has(16, 13)) throw corrupt('png', 'it does not start with a complete IHDR header chunk');
  const header: ImageHeader = {
    format: 'png',
    width: r.u32(16, false) ?? 0,
    height: r.u32(20, false) ?? 0,
    orientation: 1,
    bitDepth: r.u8(24),
    components: ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[r.u8(25) ?? -1],
  };
  // An eXIf chunk (PNG 1.5) must come before the image data: scan the chunks up to the first IDAT.
  for (let offset = 8; ;) {
    const length = r.u32(offset, false);
    if (length === undefined || !r.has(offset + 8, length) || r.startsWith(offset + 4, 'IDAT')) break;
    if (r.startsWith(offset + 4, 'eXIf')) {
      header.orientation = tiffOrientation(r, offset + 8, offset + 8 + length) ?? 1;
      break;
    }
    offset += length + 12;
  }
  return header;
}

function parseGif(r: ByteReader): ImageHeader {
  const at = (offset: number): number => r.u8(offset) ?? truncated();
  const truncated = (): never => {
    throw corrupt('gif', 'the file ends before its first image is complete');
  };
  // A colour table follows when bit 7 of its flags byte is set: 3 * 2^(n + 1) bytes, n in the low 3 bits.
  const colourTable = (flags: number): number => (flags & 0x80 ? 3 * 2 ** ((flags & 0x07) + 1) : 0);
  const skipSubBlocks = (offset: number): number => {
    while (at(offset) !== 0) offset += at(offset) + 1;
    return offset + 1;
  };
  const screenWidth = r.u16(6, true) ?? truncated();
  const screenHeight = r.u16(8, true) ?? truncated();
  const globalTable = colourTable(at(10)) > 0 ? 13 : undefined;
  const controlFlags: number[] = [];
  let transparent: number | undefined;
  let offset = 13 + colourTable(at(10));
  for (;;) {
    const block = at(offset);
    if (block === 0x21) {
      // Graphic control extension: 0x21 0xF9, size 4, flags, delay (2 bytes), transparent index.
      if (at(offset + 1) === 0xf9 && at(offset + 2) === 4) {
        controlFlags.push(offset + 3);
        transparent = at(offset + 3) & 0x01 ? at(offset + 6) : undefined;
      }
      offset = skipSubBlocks(offset + 2); // extension: introducer, label, data sub-blocks
    } else if (block === 0x2c) {
      // Image descriptor: left, top, width, height (16-bit each), flags, then an optional local colour table.
      const [left, top, width, height] = [1, 3, 5, 7].map((k) => r.u16(offset + k, true) ?? truncated());
      const table = colourTable(at(offset + 9)) > 0 ? offset + 10 : globalTable;
      const index = transparent ?? 0;
      // Without any palette Pillow reads the indices as gray levels.
      const background = (table === undefined ? [index, index, index] : [0, 1, 2].map((c) => at(table + 3 * index + c))) as [number, number, number];
      const descriptor = offset;
      // LZW minimum code size, then the image data sub-blocks.
      const end = skipSubBlocks(offset + 10 + colourTable(at(offset + 9)) + 1);
      const gif = { descriptor, end, left, top, width, height, controlFlags, background };
      // A frame reaching past the declared screen enlarges the canvas, as in Pillow.
      return { format: 'gif', width: Math.max(screenWidth, left + width), height: Math.max(screenHeight, top + height), orientation: 1, gif };
    } else {
      throw corrupt('gif', `it has an unknown block (0x${block.toString(16)}) before its first image`);
    }
  }
}

function parseBmp(r: ByteReader): ImageHeader {
  const dibSize = r.u32(14, true);
  // OS/2 bitmaps (12-byte header) are read by neither TensorFlow nor jimp.
  if (dibSize === 12) throw unsupported('An OS/2 bitmap (BMP with a 12-byte header)', 'save it as a Windows BMP or a PNG');
  if (dibSize === undefined || dibSize < 40 || !r.has(14, 20)) throw corrupt('bmp', 'the file ends inside its header');
  // A negative height marks a top-down bitmap.
  return {
    format: 'bmp',
    width: r.i32le(18) ?? 0,
    height: Math.abs(r.i32le(22) ?? 0),
    orientation: 1,
    bitDepth: r.u16(28, true),
    compression: r.u32(30, true),
  };
}

function parseWebp(r: ByteReader): ImageHeader {
  const base = { format: 'webp' as const, orientation: 1 };
  if (r.startsWith(12, 'VP8 ')) {
    // Lossy: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height.
    if (!r.startsWith(23, [0x9d, 0x01, 0x2a])) throw corrupt('webp', 'its VP8 frame header is missing');
    return { ...base, width: (r.u16(26, true) ?? 0) & 0x3fff, height: (r.u16(28, true) ?? 0) & 0x3fff };
  }
  if (r.startsWith(12, 'VP8L')) {
    // Lossless: signature 0x2f, then width-1 and height-1 as 14-bit fields, little-endian bit order.
    const bits = r.u32(21, true);
    if (r.u8(20) !== 0x2f || bits === undefined) throw corrupt('webp', 'its VP8L header is missing');
    return { ...base, width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (r.startsWith(12, 'VP8X')) {
    const width = r.u24le(24);
    const height = r.u24le(27);
    if (width === undefined || height === undefined) throw corrupt('webp', 'the file ends inside its header');
    // Flag bit 1: animation (libwebp's still-image decoder, the one used here, cannot read it).
    if ((r.u8(20) ?? 0) & 0x02) throw unsupported('Animated WebP', 'send a still image, or the animation as a GIF');
    return { ...base, width: width + 1, height: height + 1, orientation: webpOrientation(r) };
  }
  throw corrupt('webp', 'it has no VP8, VP8L or VP8X chunk');
}

function webpOrientation(r: ByteReader): number {
  // RIFF chunks: 4-byte id, 4-byte little-endian size, data padded to an even length.
  for (let offset = 12; r.has(offset, 8);) {
    const size = r.u32(offset + 4, true) ?? 0;
    if (r.startsWith(offset, 'EXIF')) {
      const start = r.startsWith(offset + 8, 'Exif\0\0') ? offset + 14 : offset + 8;
      return tiffOrientation(r, start, offset + 8 + size) ?? 1;
    }
    offset += 8 + size + (size & 1);
  }
  return 1;
}

function parseTiff(r: ByteReader): ImageHeader {
  const le = r.startsWith(0, 'II');
  const pages: TiffPage[] = [];
  const seen = new Set<number>();
  let entries = 0;
  for (let ifd = r.u32(4, le) ?? 0; ifd !== 0 || pages.length === 0; ifd = r.u32(ifd + 2 + 12 * (r.u16(ifd, le) ?? 0), le) ?? 0) {
    if (ifd < 8) throw corrupt('tiff', pages.length === 0 ? 'its first image directory is missing' : 'its chain of image directories points into its header');
    if (seen.has(ifd)) throw corrupt('tiff', 'its chain of image directories loops back on itself');
    seen.add(ifd);
    if (pages.length === MAX_TIFF_PAGES) throw tooComplex('tiff', `has more than ${MAX_TIFF_PAGES} pages`);
    const count = r.u16(ifd, le);
    if (count === undefined || !r.has(ifd + 2, count * 12 + 4)) {
      throw corrupt('tiff', pages.length === 0 ? 'its first image directory is missing or cut short' : `image directory ${pages.length + 1} is cut short`);
    }
    entries += count;
    if (entries > MAX_TIFF_ENTRIES) throw tooComplex('tiff', `has more than ${MAX_TIFF_ENTRIES} directory entries`);
    pages.push(readTiffPage(r, ifd, le, pages.length + 1));
  }
  const [first, ...more] = pages;
  return { format: 'tiff', width: first.width, height: first.height, orientation: first.orientation, morePages: more.map(({ width, height }) => ({ width, height })) };
}

/** Most pages (image directories) accepted in a TIFF file, and most directory entries in all of them. */
const MAX_TIFF_PAGES = 256;
const MAX_TIFF_ENTRIES = 16384;

interface TiffPage {
  width: number;
  height: number;
  orientation: number;
}

const TAG_IMAGE_WIDTH = 0x100;
const TAG_IMAGE_LENGTH = 0x101;
const TAG_BITS_PER_SAMPLE = 0x102;
const TAG_COMPRESSION = 0x103;
const TAG_PHOTOMETRIC = 0x106;
const TAG_STRIP_OFFSETS = 0x111;
const TAG_ORIENTATION = 0x112;
const TAG_SAMPLES_PER_PIXEL = 0x115;
const TAG_ROWS_PER_STRIP = 0x116;
const TAG_STRIP_BYTE_COUNTS = 0x117;
const TAG_PLANAR_CONFIGURATION = 0x11c;
const TAG_TILE_WIDTH = 0x142;
const TAG_TILE_LENGTH = 0x143;
const TAG_TILE_OFFSETS = 0x144;
const TAG_TILE_BYTE_COUNTS = 0x145;

/** Compressions libtiff decodes that photo software writes: none, LZW, JPEG, Deflate (both codes), PackBits. */
const TIFF_COMPRESSIONS = new Set([1, 5, 7, 8, 32946, 32773]);
/** Photometric interpretations whose conversion to RGB equals Pillow's: gray, RGB, palette, YCbCr (JPEG only). */
const TIFF_PHOTOMETRIC = new Set([1, 2, 3, 6]);

/**
 * Checks one image directory against what a real file looks like before libtiff sees it: a supported mode, a
 * strip or tile table with exactly the entries the image needs, all of its data inside the file, sane tiles.
 */
function readTiffPage(r: ByteReader, ifd: number, le: boolean, page: number): TiffPage {
  const entries = readIfdEntries(r, ifd, le);
  const where = page === 1 ? '' : ` (page ${page})`;
  const one = (tag: number, fallback: number): number => entries.get(tag)?.read(0) ?? fallback;
  const width = one(TAG_IMAGE_WIDTH, 0);
  const height = one(TAG_IMAGE_LENGTH, 0);
  if (!(width > 0 && height > 0)) throw corrupt('tiff', `its header gives a size of ${width}x${height} pixels${where}`);
  const compression = one(TAG_COMPRESSION, 1);
  if (!TIFF_COMPRESSIONS.has(compression)) {
    throw unsupported(`TIFF compression ${compression}${where}`, 'save it uncompressed or with LZW, Deflate or JPEG compression, or as a PNG');
  }
  const samples = one(TAG_SAMPLES_PER_PIXEL, 1);
  const photometric = one(TAG_PHOTOMETRIC, samples >= 3 ? 2 : 1);
  const bits = entries.get(TAG_BITS_PER_SAMPLE);
  const depths = new Set(Array.from({ length: Math.min(bits?.count ?? 1, 8) }, (_, i) => bits?.read(i) ?? 1));
  const depthOk = [...depths].every((d) => d === 8 || (d === 1 && photometric === 1) || (d === 4 && photometric === 3));
  if (!TIFF_PHOTOMETRIC.has(photometric) || (photometric === 6 && compression !== 7) || samples < 1 || samples > 4 || !depthOk) {
    const mode = photometric === 5 ? 'CMYK' : photometric === 8 ? 'CIELab' : `photometric ${photometric}, ${[...depths].join('/')}-bit, ${samples} samples`;
    throw unsupported(`A TIFF in this mode (${mode})${where}`, 'save it as 8-bit RGB or grayscale, or as a PNG');
  }
  const tileWidth = entries.get(TAG_TILE_WIDTH)?.read(0);
  const tileLength = entries.get(TAG_TILE_LENGTH)?.read(0);
  const tiled = tileWidth !== undefined || tileLength !== undefined;
  let blocks: number;
  if (tiled) {
    if (!tileWidth || !tileLength || tileWidth % 16 !== 0 || tileLength % 16 !== 0) {
      throw corrupt('tiff', `its tiles are ${tileWidth}x${tileLength} pixels, not multiples of 16${where}`);
    }
    if (tileWidth * tileLength > Math.max(4 * width * height, 1024 * 1024)) {
      throw tooComplex('tiff', `has ${tileWidth}x${tileLength} tiles for a ${width}x${height} image${where}`);
    }
    blocks = Math.ceil(width / tileWidth) * Math.ceil(height / tileLength);
  } else {
    const rowsPerStrip = Math.min(one(TAG_ROWS_PER_STRIP, height) || height, height);
    blocks = Math.ceil(height / rowsPerStrip);
  }
  if (one(TAG_PLANAR_CONFIGURATION, 1) === 2) blocks *= samples;
  const offsets = entries.get(tiled ? TAG_TILE_OFFSETS : TAG_STRIP_OFFSETS);
  const counts = entries.get(tiled ? TAG_TILE_BYTE_COUNTS : TAG_STRIP_BYTE_COUNTS);
  if (!offsets || !counts) throw corrupt('tiff', `its image data is not described${where}`);
  const kind = tiled ? 'tile' : 'strip';
  if (offsets.count !== blocks || counts.count !== blocks) {
    throw corrupt('tiff', `its ${kind} table has ${Math.max(offsets.count, counts.count)} entries where the image has ${blocks} ${kind}s${where}`);
  }
  // The decoder fills missing strips or tiles with zeros, so check here that the image data is all in the file.
  for (let i = 0; i < blocks; i++) {
    if ((offsets.read(i) ?? Infinity) + (counts.read(i) ?? Infinity) > r.bytes.length) {
      throw corrupt('tiff', `the file ends before the end of its image data${where}`);
    }
  }
  return { width, height, orientation: validOrientation(entries.get(TAG_ORIENTATION)?.read(0)) ?? 1 };
}

/** A SHORT or LONG directory entry: its value count and a reader of value i (undefined past the file's end). */
interface IfdEntry {
  count: number;
  read(i: number): number | undefined;
}

/**
 * The SHORT and LONG entries of the image directory at `ifd`, offsets relative to `start` (0 for a TIFF file, the
 * payload's start for EXIF), reading values lazily so a table claiming billions of entries costs nothing. An
 * entry whose values lie outside [start, end) is left out.
 */
function readIfdEntries(r: ByteReader, ifd: number, le: boolean, start = 0, end = r.bytes.length): Map<number, IfdEntry> {
  const entries = new Map<number, IfdEntry>();
  const count = r.u16(ifd, le) ?? 0;
  for (let i = 0; i < count && ifd + 14 + i * 12 <= end; i++) {
    const entry = ifd + 2 + i * 12;
    const type = r.u16(entry + 2, le);
    const size = type === 3 ? 2 : type === 4 ? 4 : 0; // SHORT, LONG
    const values = r.u32(entry + 4, le) ?? 0;
    if (size === 0) continue;
    // Values that fit in 4 bytes sit in the entry itself; longer arrays at an offset.
    const at = values * size <= 4 ? entry + 8 : start + (r.u32(entry + 8, le) ?? 0);
    if (at < start || at + values * size > end) continue;
    entries.set(r.u16(entry, le) ?? 0, { count: values, read: (k) => (k < values ? (size === 2 ? r.u16(at + 2 * k, le) : r.u32(at + 4 * k, le)) : undefined) });
  }
  return entries;
}

/** The orientation in the first directory of an EXIF block (a TIFF structure from `start` to `end`). */
function tiffOrientation(r: ByteReader, start: number, end: number): number | undefined {
  const le = r.startsWith(start, 'II');
  if (!le && !r.startsWith(start, 'MM')) return undefined;
  const ifd = start + (r.u32(start + 4, le) ?? end);
  if (ifd + 2 > end) return undefined;
  return validOrientation(readIfdEntries(r, ifd, le, start, end).get(TAG_ORIENTATION)?.read(0));
}

function validOrientation(value: number | undefined): number | undefined {
  return value !== undefined && value >= 1 && value <= 8 ? value : undefined;
}
