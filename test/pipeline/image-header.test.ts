// readImageHeader / checkPixelLimit: sizes of every shared image against MANIFEST.tsv, and synthetic headers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ServiceError } from '../../src/errors';
import { checkPixelLimit, readImageHeader } from '../../src/image/header';
import { IMAGES } from './reference';

const manifest = readFileSync(join(IMAGES, 'MANIFEST.tsv'), 'utf8').trim().split('\n').slice(1).map((line) => {
  const [file, , kind, width, height] = line.split('\t');
  return { file, kind, width: Number(width), height: Number(height) };
});

function throwsService(fn: () => unknown, status: number, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ServiceError && e.status === status && e.code === code && message.test(e.message));
}

test('every photo and format file: format and size as MANIFEST.tsv records them', () => {
  const images = manifest.filter((m) => m.kind !== 'bad');
  assert.ok(images.length >= 58, 'manifest lists the photos and format files');
  for (const { file, width, height } of images) {
    const header = readImageHeader(new Uint8Array(readFileSync(join(IMAGES, file))));
    assert.equal([header.width, header.height], [width, height], file);
    const extension = file.split('.').pop()!;
    assert.is(header.format, extension === 'jpg' ? 'jpeg' : extension, file);
    assert.is(header.orientation, file.endsWith('exif-rot6.jpg') ? 6 : 1, file);
  }
});

test('JPEG colour components: 4 for CMYK, 1 for gray; PNG bit depth 16', () => {
  const header = (file: string) => readImageHeader(new Uint8Array(readFileSync(join(IMAGES, file))));
  assert.is(header('formats/cmyk.jpg').components, 4);
  assert.is(header('formats/gray.jpg').components, 1);
  assert.is(header('formats/gray16.png').bitDepth, 16);
});

test('checkPixelLimit: refuses past the limit with both sizes in the message', () => {
  const header = { format: 'png' as const, width: 20000, height: 20000, orientation: 1 };
  checkPixelLimit(header, 400_000_000);
  throwsService(() => checkPixelLimit(header, 40_000_000), 413, 'image_too_large', /20000x20000 pixels \(400\.0 megapixels\).*40\.0 megapixels/);
});

test('checkPixelLimit: a side over 65535 pixels is refused even under the pixel limit', () => {
  checkPixelLimit({ format: 'png', width: 65535, height: 1, orientation: 1 }, 1e9);
  throwsService(() => checkPixelLimit({ format: 'png', width: 1, height: 65536, orientation: 1 }, 1e9), 413, 'image_too_large',
    /1x65536 pixels; sides longer than 65535 pixels are not accepted/);
});

const bytes = (...parts: (string | number[])[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...p].map((c) => c.charCodeAt(0)) : p)));

test('WebP: lossless (VP8L) and extended (VP8X) headers', () => {
  // VP8L: signature 0x2f, then (width - 1) and (height - 1) as 14-bit little-endian fields: 300x200.
  const bits = (300 - 1) | ((200 - 1) << 14);
  const vp8l = bytes('RIFF', [0, 0, 0, 0], 'WEBP', 'VP8L', [0, 0, 0, 0], [0x2f, bits & 255, (bits >> 8) & 255, (bits >> 16) & 255, bits >>> 24]);
  assert.equal([readImageHeader(vp8l).width, readImageHeader(vp8l).height], [300, 200]);
  // VP8X: 24-bit (width - 1) and (height - 1) at bytes 24 and 27: 70000x3; an EXIF chunk with orientation 8.
  const exif = bytes('MM', [0, 0x2a, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0]);
  const vp8x = bytes('RIFF', [0, 0, 0, 0], 'WEBP', 'VP8X', [10, 0, 0, 0], [0x08, 0, 0, 0], [0x6f, 0x11, 0x01], [2, 0, 0],
    'EXIF', [exif.length, 0, 0, 0], [...exif]);
  const header = readImageHeader(vp8x);
  assert.equal([header.width, header.height, header.orientation], [70000, 3, 8]);
});

test('TIFF: big-endian header with strips inside the file; strips past the end are refused', () => {
  // 2x1 RGB, one strip of 6 bytes at offset 8; IFD at 14 with width, length, strip offsets, strip byte counts.
  const entry = (tag: number, value: number) => [tag >> 8, tag & 255, 0, 3, 0, 0, 0, 1, value >> 8, value & 255, 0, 0];
  const tiff = (stripBytes: number) => bytes('MM', [0, 0x2a, 0, 0, 0, 14], [1, 2, 3, 4, 5, 6], [0, 4],
    entry(0x100, 2), entry(0x101, 1), entry(0x111, 8), entry(0x117, stripBytes), [0, 0, 0, 0]);
  assert.equal([readImageHeader(tiff(6)).width, readImageHeader(tiff(6)).height], [2, 1]);
  throwsService(() => readImageHeader(tiff(600)), 422, 'corrupt_image', /ends before the end of its image data/);
});

test('damaged headers: 422 corrupt_image naming what is wrong', () => {
  throwsService(() => readImageHeader(bytes([0xff, 0xd8, 0xff, 0xe0, 0, 16], 'JFIF')), 422, 'corrupt_image', /JPEG.*ends inside its header/);
  throwsService(() => readImageHeader(bytes([0xff, 0xd8, 0xff, 0xda, 0, 2])), 422, 'corrupt_image', /no frame header \(SOF\)/);
  throwsService(() => readImageHeader(bytes([0x89], 'PNG\r\n', [0x1a, 0x0a])), 422, 'corrupt_image', /complete IHDR/);
  throwsService(() => readImageHeader(bytes('GIF89a', [1, 0, 1, 0, 0, 0, 0], [0x2c, 0, 0, 0, 0, 2, 0, 2, 0, 0])), 422, 'corrupt_image',
    /GIF.*ends before its first image is complete/);
  throwsService(() => readImageHeader(bytes('GIF89a', [1, 0, 1, 0, 0, 0, 0], [0x3b])), 422, 'corrupt_image', /unknown block \(0x3b\)/);
  throwsService(() => readImageHeader(bytes('BM', [0, 0, 0, 0])), 422, 'corrupt_image', /BMP.*ends inside its header/);
  throwsService(() => readImageHeader(bytes('RIFF', [0, 0, 0, 0], 'WEBP', 'ABCD')), 422, 'corrupt_image', /no VP8, VP8L or VP8X chunk/);
  throwsService(() => readImageHeader(bytes('II', [0x2a, 0, 200, 0, 0, 0])), 422, 'corrupt_image', /TIFF.*first image directory/);
  // A valid PNG header claiming 0 rows.
  const zeroHeight = bytes([0x89], 'PNG\r\n', [0x1a, 0x0a, 0, 0, 0, 13], 'IHDR', [0, 0, 0, 5, 0, 0, 0, 0, 8, 2, 0, 0, 0]);
  throwsService(() => readImageHeader(zeroHeight), 422, 'corrupt_image', /size of 5x0 pixels/);
});

test('recognised but unsupported variants: 415 saying what to send instead', () => {
  const animated = bytes('RIFF', [0, 0, 0, 0], 'WEBP', 'VP8X', [10, 0, 0, 0], [0x02, 0, 0, 0], [9, 0, 0], [9, 0, 0]);
  throwsService(() => readImageHeader(animated), 415, 'unsupported_format', /Animated WebP is not supported; send a still image/);
  const twelveBit = bytes([0xff, 0xd8, 0xff, 0xc1, 0, 11, 12, 0, 8, 0, 8, 3, 1, 0x11, 0]);
  throwsService(() => readImageHeader(twelveBit), 415, 'unsupported_format', /12-bit JPEG is not supported; save it as an 8-bit JPEG/);
  // A 4x4 24-bit OS/2 bitmap: 14-byte file header, 12-byte core header (size, width, height, planes, bits).
  const os2 = bytes('BM', [74, 0, 0, 0, 0, 0, 0, 0, 26, 0, 0, 0], [12, 0, 0, 0, 4, 0, 4, 0, 1, 0, 24, 0], new Array(48).fill(0x80));
  throwsService(() => readImageHeader(os2), 415, 'unsupported_format', /OS\/2 bitmap .* save it as a Windows BMP or a PNG/);
});

test('not images: 415 naming the accepted formats; empty: 400', () => {
  throwsService(() => readImageHeader(new Uint8Array(0)), 400, 'empty_file', /empty/);
  throwsService(() => readImageHeader(bytes('%PDF-1.7')), 415, 'unsupported_format', /PDF document.*JPEG, PNG, GIF, BMP, WebP or TIFF/);
  throwsService(() => readImageHeader(bytes('  <!DOCTYPE html><html>')), 415, 'unsupported_format', /HTML page/);
  throwsService(() => readImageHeader(bytes([0xff])), 415, 'unsupported_format', /not an image the service can read;/);
});

test.run();
