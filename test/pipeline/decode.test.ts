// decodeImage: every bad upload refused with the right ServiceError and no leaked tensor; RGB rules, GIF, BMP, EXIF.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, type DecodeOptions } from '../../src/image/decode';
import { ServiceError } from '../../src/errors';
import { readOut, type Tf } from '../../src/runtime';
import { tempDir } from '../helpers/app';
import { tf } from '../helpers/runtime';
import { createPreprocessor } from '../../src/image/preprocess';
import { IMAGES, pipelineReference } from './reference';

const OPTIONS: DecodeOptions = { maxPixels: 50_000_000, honourExif: false };
/** Decoded pixels as int32 values: they are stored as uint8, which tfjs reads only after a cast. */
const valuesOf = (pixels: Tensor3D): Int32Array => readOut<Int32Array>(tf, () => pixels.toInt());
const read = (file: string): Uint8Array => new Uint8Array(readFileSync(join(IMAGES, file)));
const cut = (file: string, fraction: number): Uint8Array => {
  const bytes = read(file);
  return bytes.subarray(0, Math.floor(bytes.length * fraction));
};

/** Awaits a refusal: fails when nothing is thrown, checks the ServiceError and that no tensor was left behind. */
async function refused(bytes: Uint8Array, status: number, code: string, message: RegExp, options = OPTIONS, runtime: Tf = tf): Promise<void> {
  const before = tf.memory().numTensors;
  let error: unknown;
  try {
    (await decodeImage(runtime, bytes, options)).pixels.dispose();
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ServiceError, `expected a ServiceError, got ${String(error)}`);
  assert.is(error.status, status, error.message);
  assert.is(error.code, code, error.message);
  assert.match(error.message, message);
  assert.ok(error.expose, 'client errors are shown to the client');
  assert.is(tf.memory().numTensors, before, 'no tensor leaked');
}

const BAD: [string, number, string, RegExp][] = [
  ['empty.jpg', 400, 'empty_file', /empty \(0 bytes\)/],
  ['truncated.jpg', 422, 'corrupt_image', /JPEG file is corrupt or truncated/],
  ['garbage.jpg', 415, 'unsupported_format', /JPEG, PNG, GIF, BMP, WebP or TIFF/],
  ['text.png', 415, 'unsupported_format', /not an image/],
  ['header-only.png', 413, 'image_too_large', /30000x30000 pixels \(900\.0 megapixels\).*limit of 50\.0 megapixels/],
  ['bomb.png', 413, 'image_too_large', /20000x20000 pixels \(400\.0 megapixels\)/],
  ['corrupt-scan.jpg', 422, 'corrupt_image', /JPEG file is corrupt/],
  ['zip.jpg', 415, 'unsupported_format', /ZIP archive/],
  ['html.gif', 415, 'unsupported_format', /HTML page/],
];

for (const [file, status, code, message] of BAD) {
  test(`bad/${file}: ${status} ${code}`, async () => {
    await refused(read(join('bad', file)), status, code, message);
  });
}

test('oversized images are refused from the header: no decoder is ever called', async () => {
  const decoderCalled = (): never => {
    throw new Error('a decoder was called');
  };
  const node = { ...tf.node, decodePng: decoderCalled, decodeJpeg: decoderCalled, decodeImage: decoderCalled };
  const spy = { ...tf, node } as Tf;
  await refused(read('bad/bomb.png'), 413, 'image_too_large', /downscale it/, OPTIONS, spy);
  await refused(read('bad/header-only.png'), 413, 'image_too_large', /downscale it/, OPTIONS, spy);
});

test('the pixel limit is inclusive: 7x5 passes at 35 pixels, is refused at 34', async () => {
  const decoded = await decodeImage(tf, read('formats/tiny-7x5.png'), { ...OPTIONS, maxPixels: 35 });
  assert.equal([decoded.width, decoded.height, decoded.format], [7, 5, 'png']);
  decoded.pixels.dispose();
  await refused(read('formats/tiny-7x5.png'), 413, 'image_too_large', /7x5 pixels/, { ...OPTIONS, maxPixels: 34 });
});

const TRUNCATED: [string, RegExp][] = [
  ['p01-sunset.jpg', /JPEG/],
  ['formats/rgb.png', /PNG/],
  ['formats/interlaced.png', /PNG/],
  ['formats/single.gif', /GIF file .*ends before its first image/],
  ['formats/rgb24.bmp', /BMP/],
  ['formats/rgb.tiff', /TIFF file .*ends before the end of its image data/],
  ['formats/lossy.webp', /WebP/],
];

test('every format cut in half (or at 99% for JPEG, whose decoder recovers silently otherwise): 422', async () => {
  for (const [file, message] of TRUNCATED) {
    await refused(cut(file, 0.5), 422, 'corrupt_image', message);
  }
  await refused(cut('p01-sunset.jpg', 0.99), 422, 'corrupt_image', /JPEG/);
  await refused(cut('formats/rgb.png', 0.99), 422, 'corrupt_image', /PNG/);
});

test('RGB output: [H, W, 3] (uint8, labelled int32) for gray, gray+alpha, RGBA, palette, CMYK and 16-bit sources', async () => {
  for (const file of ['formats/gray.jpg', 'formats/gray-alpha.png', 'formats/rgba.png', 'formats/palette-trns.png',
    'formats/cmyk.jpg', 'formats/gray16.png', 'formats/rgba.webp', 'formats/rgb.tiff']) {
    const decoded = await decodeImage(tf, read(file), OPTIONS);
    assert.is(decoded.pixels.dtype, 'int32', file);
    assert.equal(decoded.pixels.shape, [decoded.height, decoded.width, 3], file);
    decoded.pixels.dispose();
  }
});

test('animated GIF: the first frame only, identical to the first of all frames', async () => {
  const bytes = read('formats/animated.gif');
  const decoded = await decodeImage(tf, bytes, OPTIONS);
  const frames = tf.node.decodeGif(bytes);
  assert.is(frames.shape[0], 3);
  const first = tf.tidy(() => frames.slice(0, 1).squeeze([0]));
  assert.equal(decoded.pixels.shape, [320, 480, 3]);
  assert.equal(valuesOf(decoded.pixels), first.dataSync());
  tf.dispose([decoded.pixels, frames, first]);
});

test('every decoder reads only its view: bytes inside a larger buffer (as Node pools small uploads) decode as their own copy', async () => {
  const files = ['formats/subsample-420.jpg', 'formats/rgb.png', 'formats/single.gif', 'formats/rgb24.bmp', 'formats/rgb.tiff',
    'formats/lossy.webp', 'formats/rgba.webp', 'formats/tiny-7x5.png'];
  for (const file of files) {
    const own = read(file);
    // Another valid image of the same family sits before the view, so reading from the buffer's start goes wrong quietly.
    const before = read(file.endsWith('lossy.webp') ? 'formats/rgba.webp' : 'formats/lossy.webp');
    const shared = new Uint8Array(before.length + own.length + 977).fill(0x5a);
    shared.set(before);
    shared.set(own, before.length);
    // A Buffer, as uploads arrive: its slice() is a view too, unlike Uint8Array's.
    const view = Buffer.from(shared.buffer, before.length, own.length);
    const [a, b] = [await decodeImage(tf, own, OPTIONS), await decodeImage(tf, view, OPTIONS)];
    assert.equal(b.pixels.shape, a.pixels.shape, file);
    assert.ok(Buffer.from(valuesOf(b.pixels).buffer).equals(Buffer.from(valuesOf(a.pixels).buffer)), `${file}: same pixels from a view`);
    tf.dispose([a.pixels, b.pixels]);
  }
});

/**
 * formats/single.gif (GIF87a, 640x480 frame, global palette) with a different screen size, the frame moved, and
 * optionally a graphic control extension that marks `transparent` as the transparent index.
 */
function gifVariant(screen: [number, number], left: number, top: number, transparent?: number): Uint8Array {
  const source = read('formats/single.gif');
  const descriptor = 13 + 3 * 2 ** ((source[10] & 0x07) + 1);
  assert.is(source[descriptor], 0x2c, 'single.gif: image descriptor right after the global palette');
  const control = transparent === undefined ? [] : [0x21, 0xf9, 4, 0x01, 0, 0, transparent, 0];
  const bytes = Uint8Array.from([...source.subarray(0, descriptor), ...control, ...source.subarray(descriptor)]);
  const view = new DataView(bytes.buffer);
  bytes.set([...'GIF89a'].map((c) => c.charCodeAt(0)));
  view.setUint16(6, screen[0], true);
  view.setUint16(8, screen[1], true);
  view.setUint16(descriptor + control.length + 1, left, true);
  view.setUint16(descriptor + control.length + 3, top, true);
  return bytes;
}

test('GIF canvas as Pillow paints it: transparent pixels in their palette colour, frame placed, canvas filled', async () => {
  // All 700x500 so that the reference's Resize is the identity and whole pictures are compared.
  const variants: [string, Uint8Array][] = [
    ['transparent-index', gifVariant([700, 500], 0, 0, 0x10)],
    ['frame-offset', gifVariant([700, 500], 30, 12)],
    ['offset-transparent', gifVariant([700, 500], 41, 9, 0x20)],
    ['frame-past-screen', gifVariant([650, 470], 60, 20)],
  ];
  const dir = tempDir('gif-variants');
  const files = variants.map(([name, bytes]) => {
    writeFileSync(join(dir, `${name}.gif`), bytes);
    return join(dir, `${name}.gif`);
  });
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const reference = pipelineReference({ size: [500, 700], mean, std, honour_exif: false, files });
  const preprocess = createPreprocessor(tf, { height: 500, width: 700, mean, std });
  for (const [i, entry] of reference.entries.entries()) {
    if (!entry.ok) throw new Error(`Pillow could not read ${entry.file}: ${entry.error}`);
    const decoded = await decodeImage(tf, variants[i][1], OPTIONS);
    assert.equal([decoded.width, decoded.height], [700, 500], variants[i][0]);
    const ours = preprocess(decoded.pixels);
    const expected = reference.tensor(entry);
    const values = ours.dataSync();
    const first = values.findIndex((v, k) => Math.abs(v - expected[(k % 3) * 500 * 700 + Math.floor(k / 3)]) > 1e-5);
    assert.is(first, -1, `${variants[i][0]}: pixel ${Math.floor(first / 3)} differs from Pillow's`);
    tf.dispose([decoded.pixels, ours]);
  }
  // TensorFlow alone paints transparent pixels black: the transparent variant must really contain that index.
  const raw = tf.node.decodeGif(gifVariant([640, 480], 0, 0, 0x10));
  const plain = await decodeImage(tf, read('formats/single.gif'), OPTIONS);
  assert.not.equal(raw.dataSync(), valuesOf(plain.pixels), 'index 0x10 is used in single.gif');
  tf.dispose([raw, plain.pixels]);
});

/**
 * An uncompressed bottom-up BMP: 8-bit with `palette` (TensorFlow cannot read it, so it goes through jimp) or,
 * without a palette, 32-bit BGRX with `pixels` as [r, g, b, x] (TensorFlow's decoder).
 */
function bmp(width: number, height: number, pixels: number[][], palette?: number[][]): Uint8Array {
  const bitsPerPixel = palette ? 8 : 32;
  const stride = Math.ceil((width * bitsPerPixel) / 32) * 4;
  const dataOffset = 14 + 40 + (palette ? 256 * 4 : 0);
  const bytes = new Uint8Array(dataOffset + stride * height);
  const view = new DataView(bytes.buffer);
  bytes.set([0x42, 0x4d]);
  view.setUint32(2, bytes.length, true);
  view.setUint32(10, dataOffset, true);
  view.setUint32(14, 40, true);
  view.setInt32(18, width, true);
  view.setInt32(22, height, true); // positive: rows stored bottom-up
  view.setUint16(26, 1, true);
  view.setUint16(28, bitsPerPixel, true);
  if (palette) view.setUint32(46, 256, true);
  palette?.forEach(([r, g, b], i) => bytes.set([b, g, r, 0], 54 + 4 * i));
  pixels.forEach((pixel, i) => {
    const row = dataOffset + (height - 1 - Math.floor(i / width)) * stride;
    const [r, g, b, x] = pixel;
    if (palette) bytes[row + (i % width)] = pixel[0];
    else bytes.set([b, g, r, x], row + (i % width) * 4);
  });
  return bytes;
}

test('8-bit palette BMP (jimp): palette expanded, rows bottom-up', async () => {
  const palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]];
  const indices = [0, 1, 2, 3, 3, 2];
  const decoded = await decodeImage(tf, bmp(3, 2, indices.map((i) => [i]), palette), OPTIONS);
  assert.equal([decoded.format, decoded.width, decoded.height], ['bmp', 3, 2]);
  assert.equal(Array.from(valuesOf(decoded.pixels)), indices.flatMap((i) => palette[i]));
  decoded.pixels.dispose();
});

test('32-bit BMP (TensorFlow): the 4th byte is ignored, as Pillow does', async () => {
  const pixels = [[1, 2, 3, 0], [40, 50, 60, 255], [200, 100, 0, 7], [9, 8, 7, 128]];
  const decoded = await decodeImage(tf, bmp(2, 2, pixels), OPTIONS);
  assert.equal(Array.from(valuesOf(decoded.pixels)), pixels.flatMap(([r, g, b]) => [r, g, b]));
  decoded.pixels.dispose();
});

/** Where each displayed pixel (y, x) comes from in the stored [h, w] image, per EXIF orientation (the spec's table). */
const SOURCE: Record<number, (y: number, x: number, h: number, w: number) => [number, number]> = {
  1: (y, x) => [y, x],
  2: (y, x, _h, w) => [y, w - 1 - x],
  3: (y, x, h, w) => [h - 1 - y, w - 1 - x],
  4: (y, x, h) => [h - 1 - y, x],
  5: (y, x) => [x, y],
  6: (y, x, h) => [h - 1 - x, y],
  7: (y, x, h, w) => [h - 1 - x, w - 1 - y],
  8: (y, x, _h, w) => [x, w - 1 - y],
};

test('honourExif: all eight orientations, and none applied by default', async () => {
  const original = read('formats/exif-rot6.jpg');
  // The big-endian IFD entry of exif-rot6.jpg: tag 0x0112, type SHORT, count 1, value 6.
  const entry = [0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06];
  const at = original.findIndex((_, i) => entry.every((b, k) => original[i + k] === b));
  assert.ok(at > 0, 'orientation entry found');
  const stored = await decodeImage(tf, original, OPTIONS);
  const [h, w] = stored.pixels.shape;
  const storedValues = valuesOf(stored.pixels);
  stored.pixels.dispose();
  for (let orientation = 1; orientation <= 8; orientation++) {
    const bytes = original.slice();
    bytes[at + 9] = orientation;
    const upright = await decodeImage(tf, bytes, { ...OPTIONS, honourExif: true });
    const [height, width] = orientation >= 5 ? [w, h] : [h, w];
    assert.equal([upright.height, upright.width], [height, width], `orientation ${orientation}`);
    const values = valuesOf(upright.pixels);
    for (let y = 0; y < height; y += 7) {
      for (let x = 0; x < width; x += 5) {
        const [sy, sx] = SOURCE[orientation](y, x, h, w);
        for (let c = 0; c < 3; c++) {
          if (values[(y * width + x) * 3 + c] !== storedValues[(sy * w + sx) * 3 + c]) {
            assert.unreachable(`orientation ${orientation}: pixel (${y}, ${x}) is not stored pixel (${sy}, ${sx})`);
          }
        }
      }
    }
    upright.pixels.dispose();
    const asStored: Tensor3D = (await decodeImage(tf, bytes, OPTIONS)).pixels;
    assert.equal(asStored.shape, [h, w, 3], `orientation ${orientation} ignored by default`);
    asStored.dispose();
  }
});

test.run();
