// Stage 1: upload bytes -> RGB pixels, as PIL's Image.open + convert('RGB') gives them; bad input refused from its header.
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { Jimp } from 'jimp';
import sharp, { type OutputInfo } from 'sharp';
import { ServiceError } from '../errors';
import { collectGarbage, LARGE_IMAGE_BYTES } from '../memory';
import { checkPixelLimit, corrupt, formatOf, readImageHeader, type ImageFormat, type ImageHeader } from './header';
import { nativeBackend as native, type Tf } from '../runtime';

export interface DecodeOptions {
  /** Largest accepted width x height, checked from the header before any pixel is allocated. */
  maxPixels: number;
  /** Apply the EXIF orientation (PIL and torchvision ignore it, so the default is false). */
  honourExif: boolean;
  /** Longest a decode may take (default DEFAULT_DECODE_TIMEOUT_MS): enforced inside libvips for TIFF and WebP. */
  decodeTimeoutMs?: number;
}

/** Default decode budget; the worker pool enforces it for every format by ending a worker that runs past it. */
export const DEFAULT_DECODE_TIMEOUT_MS = 5000;

export interface DecodedImage {
  /**
   * RGB pixels [H, W, 3] with values 0..255; the caller disposes it. Stored as TensorFlow uint8, one byte per
   * sample, though tfjs (which has no uint8 dtype) labels it int32: ops that cast it work, reading it needs toInt().
   */
  pixels: Tensor3D;
  format: ImageFormat;
  /** Size of `pixels` (after the EXIF rotation when honoured). */
  width: number;
  height: number;
}

/**
 * Decodes an upload to RGB: grayscale replicated, alpha dropped without compositing, palette expanded, first
 * frame of an animation (see docs/formats.md for every format and mode).
 * @throws ServiceError 400 empty_file, 415 unsupported_format, 413 image_too_large, 422 corrupt_image
 */
export async function decodeImage(tf: Tf, bytes: Uint8Array, opts: DecodeOptions): Promise<DecodedImage> {
  const header = readImageHeader(bytes);
  checkPixelLimit(header, opts.maxPixels);
  const stored = await DECODERS[header.format](tf, bytes, header, opts);
  // libvips and jimp hand over their pixels as JS bytes, which TensorFlow copies; V8 frees them only when it
  // collects, which for a large image may come after preprocessing has allocated as much again.
  if (header.width * header.height * 3 >= LARGE_IMAGE_BYTES) await collectGarbage();
  const pixels = opts.honourExif && header.orientation !== 1 ? orient(tf, stored, header.orientation) : stored;
  const [height, width] = pixels.shape;
  return { pixels, format: header.format, width, height };
}

type Decoder = (tf: Tf, bytes: Uint8Array, header: ImageHeader, opts: DecodeOptions) => Tensor3D | Promise<Tensor3D>;

const DECODERS: Record<ImageFormat, Decoder> = {
  // Accurate integer DCT and fancy chroma upsampling: libjpeg's defaults, which PIL uses.
  jpeg: (tf, bytes) => viaTensorflow('jpeg', () => tf.tidy(() => native(tf).decodeJpeg(bytes, 3, 1, true, false, 1, 'INTEGER_ACCURATE'))),
  // libpng expands palettes and gray to RGB and strips alpha; 16-bit samples keep their high byte.
  png: (tf, bytes) => viaTensorflow('png', () => tf.tidy(() => native(tf).decodePng(bytes, 3))),
  gif: decodeGif,
  // TensorFlow reads uncompressed 24/32-bit bitmaps only; jimp handles palettes, 16-bit and RLE.
  bmp: (tf, bytes, header) =>
    (header.bitDepth === 24 || header.bitDepth === 32) && header.compression === 0
      ? viaTensorflow('bmp', () => tf.tidy(() => native(tf).decodeBmp(bytes, 3)))
      : viaJimp(tf, bytes, 'bmp'),
  tiff: viaSharp,
  webp: viaSharp,
};

/**
 * The first frame of a GIF as Pillow shows it. TensorFlow decodes every frame, returns the first frame's own
 * rectangle and paints transparent pixels black; so it gets a one-frame copy of the file (an animation of many
 * frames under the pixel limit would otherwise be a bomb of its own) with the frame moved to 0,0, the screen
 * shrunk to the frame and transparency turned off, and the frame is then placed on Pillow's canvas.
 */
function decodeGif(tf: Tf, bytes: Uint8Array, header: ImageHeader): Tensor3D {
  const frame = header.gif!;
  const single = new Uint8Array(frame.end + 1);
  single.set(bytes.subarray(0, frame.end));
  single[frame.end] = 0x3b; // trailer
  const view = new DataView(single.buffer);
  view.setUint16(6, frame.width, true);
  view.setUint16(8, frame.height, true);
  view.setUint32(frame.descriptor + 1, 0, true); // left and top
  for (const flags of frame.controlFlags) single[flags] &= ~0x01;
  return viaTensorflow('gif', () =>
    tf.tidy(() => {
      const pixels = tf.node.decodeGif(single).squeeze([0]) as Tensor3D;
      const [right, bottom] = [header.width - frame.left - frame.width, header.height - frame.top - frame.height];
      if (frame.left === 0 && frame.top === 0 && right === 0 && bottom === 0) return pixels;
      // Pad with the background colour: shift it to 0, pad with zeros, shift back.
      const background = tf.tensor1d(frame.background, 'int32');
      return tf.add(tf.pad(tf.sub(pixels, background), [[frame.top, bottom], [frame.left, right], [0, 0]]), background) as Tensor3D;
    }),
  );
}

function viaTensorflow(format: ImageFormat, decode: () => Tensor3D): Tensor3D {
  try {
    return decode();
  } catch (err) {
    throw corrupt(format, `the decoder stopped (${tensorflowReason(err)})`, err);
  }
}

/** TensorFlow's status text is "Invalid TF_Status: 3\nMessage: <reason>\n<details>": keep the reason. */
function tensorflowReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const match = /Message: ([^\n]*)/.exec(text);
  return (match ? match[1] : text.split('\n')[0]).trim();
}

async function viaJimp(tf: Tf, bytes: Uint8Array, format: ImageFormat): Promise<Tensor3D> {
  let bitmap: { width: number; height: number; data: Uint8Array };
  try {
    ({ bitmap } = await Jimp.fromBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)));
  } catch (err) {
    throw corrupt(format, `the decoder stopped (${err instanceof Error ? err.message : String(err)})`, err);
  }
  return uint8Image(tf, rgbaToRgb(bitmap.data), bitmap.height, bitmap.width);
}

/** The formats libvips decodes (viaSharp); TensorFlow and jimp decode the others. */
const VIA_LIBVIPS: ReadonlySet<ImageFormat> = new Set(['tiff', 'webp']);

/** Whether the decoder of this upload enforces the decode budget itself (libvips does; TensorFlow and jimp do not). */
export function decoderTimesItself(bytes: Uint8Array): boolean {
  const format = formatOf(bytes);
  return format !== undefined && VIA_LIBVIPS.has(format);
}

/**
 * Whether decoding and resizing this image left enough free in the allocator to be worth giving back
 * (memory.ts): a large image, or one that libvips decoded, whose buffers and tables can be large for few pixels.
 */
export function leavesMemoryBehind(source: { format: string; width: number; height: number }): boolean {
  return source.width * source.height * 3 >= LARGE_IMAGE_BYTES || VIA_LIBVIPS.has(source.format as ImageFormat);
}

/**
 * TIFF and WebP through libvips (sharp): libtiff and libwebp, both fuzzed upstream, with libvips' own pixel limit
 * and time limit, decoding on libuv's thread pool. Only the first page; ICC profiles ignored and alpha dropped, as
 * Pillow's convert('RGB') does.
 */
async function viaSharp(tf: Tf, bytes: Uint8Array, header: ImageHeader, opts: DecodeOptions): Promise<Tensor3D> {
  const budgetMs = opts.decodeTimeoutMs ?? DEFAULT_DECODE_TIMEOUT_MS;
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes, { limitInputPixels: opts.maxPixels, sequentialRead: true, ignoreIcc: true, failOn: 'error', pages: 1 })
      .timeout({ seconds: Math.max(1, Math.ceil(budgetMs / 1000)) })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (reason.startsWith('timeout')) throw tooSlow(header.format, budgetMs, err);
    throw corrupt(header.format, `the decoder stopped (${reason.split('\n')[0]})`, err);
  }
  const { data, info } = decoded;
  if (info.width !== header.width || info.height !== header.height || info.channels !== 3) {
    throw corrupt(header.format, `its header says ${header.width}x${header.height} but its image data is ${info.width}x${info.height}`);
  }
  return uint8Image(tf, data, info.height, info.width);
}

/** 422 decode_timeout: the decode took longer than the budget; the worker pool, which does not know the format, too. */
export function tooSlow(format: ImageFormat | undefined, budgetMs: number, cause?: unknown): ServiceError {
  return new ServiceError(422, 'decode_timeout',
    `Decoding this ${format ? `${format.toUpperCase()} ` : ''}image took longer than this server's limit of ${budgetMs} ms (DECODE_TIMEOUT_MS); ` +
    'no camera or editor writes files this costly: re-save it as a plain JPEG or PNG.', { cause });
}

/**
 * Exactly these bytes in an ArrayBuffer of their own. A small Buffer is a view into Node's shared 8 KiB pool, so
 * its `.buffer` holds other allocations (other uploads) around it.
 */
export function ownArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** RGBA bytes -> RGB bytes, alpha dropped as PIL's convert('RGB') does (no compositing). */
function rgbaToRgb(rgba: ArrayLike<number>): Uint8Array {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let src = 0, dst = 0; dst < rgb.length; src += 4, dst += 3) {
    rgb[dst] = rgba[src];
    rgb[dst + 1] = rgba[src + 1];
    rgb[dst + 2] = rgba[src + 2];
  }
  return rgb;
}

/**
 * RGB bytes as a native uint8 tensor, the kind TensorFlow's own decoders return (tfjs calls it int32): one byte per
 * sample instead of four, which keeps a 36-megapixel image at 108 MB instead of 432 MB.
 */
export function uint8Image(tf: Tf, rgb: Uint8Array, height: number, width: number): Tensor3D {
  const backend = native(tf);
  const shape = [height, width, 3];
  const id = backend.binding.createTensor(shape, backend.binding.TF_UINT8, rgb);
  return backend.createOutputTensor({ id, shape, dtype: backend.binding.TF_UINT8 });
}

/** Applies EXIF orientation 2..8 as PIL's ImageOps.exif_transpose does; disposes `pixels`. */
function orient(tf: Tf, pixels: Tensor3D, orientation: number): Tensor3D {
  const swap = (x: Tensor3D): Tensor3D => tf.transpose(x, [1, 0, 2]);
  const steps: Record<number, (x: Tensor3D) => Tensor3D> = {
    2: (x) => tf.reverse(x, 1), // mirror left-right
    3: (x) => tf.reverse(x, [0, 1]), // rotate 180
    4: (x) => tf.reverse(x, 0), // mirror top-bottom
    5: (x) => swap(x), // transpose
    6: (x) => tf.reverse(swap(x), 1), // rotate 90 clockwise
    7: (x) => tf.reverse(swap(x), [0, 1]), // transverse
    8: (x) => tf.reverse(swap(x), 0), // rotate 90 counter-clockwise
  };
  try {
    return tf.tidy(() => steps[orientation](pixels));
  } finally {
    pixels.dispose();
  }
}
