// Stage 1: upload bytes -> RGB pixels, as PIL's Image.open + convert('RGB') gives them; bad input refused from its header.
import { readFileSync } from 'node:fs';
import type { Tensor3D } from '@tensorflow/tfjs-node';
import decodeWebpWasm, { init as initWebpWasm } from '@jsquash/webp/decode';
import { Jimp } from 'jimp';
import { checkPixelLimit, corrupt, readImageHeader, type ImageFormat, type ImageHeader } from './header';
import type { Tf } from '../runtime';

export interface DecodeOptions {
  /** Largest accepted width x height, checked from the header before any pixel is allocated. */
  maxPixels: number;
  /** Apply the EXIF orientation (PIL and torchvision ignore it, so the default is false). */
  honourExif: boolean;
}

export interface DecodedImage {
  /** RGB pixels int32 [H, W, 3] with values 0..255 (tfjs has no uint8 dtype); the caller disposes it. */
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
  const stored = await DECODERS[header.format](tf, bytes, header);
  const pixels = opts.honourExif && header.orientation !== 1 ? orient(tf, stored, header.orientation) : stored;
  const [height, width] = pixels.shape;
  return { pixels, format: header.format, width, height };
}

type Decoder = (tf: Tf, bytes: Uint8Array, header: ImageHeader) => Tensor3D | Promise<Tensor3D>;

const DECODERS: Record<ImageFormat, Decoder> = {
  // Accurate integer DCT and fancy chroma upsampling: libjpeg's defaults, which PIL uses.
  jpeg: (tf, bytes) => viaTensorflow('jpeg', () => tf.node.decodeJpeg(bytes, 3, 1, true, false, 1, 'INTEGER_ACCURATE')),
  // libpng expands palettes and gray to RGB and strips alpha; 16-bit samples keep their high byte.
  png: (tf, bytes) => viaTensorflow('png', () => tf.node.decodePng(bytes, 3)),
  gif: decodeGif,
  // TensorFlow reads uncompressed 24/32-bit bitmaps only; jimp handles palettes, 16-bit and RLE.
  bmp: (tf, bytes, header) =>
    (header.bitDepth === 24 || header.bitDepth === 32) && header.compression === 0
      ? viaTensorflow('bmp', () => tf.node.decodeBmp(bytes, 3))
      : viaJimp(tf, bytes, 'bmp'),
  tiff: (tf, bytes) => viaJimp(tf, bytes, 'tiff'),
  webp: decodeWebp,
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
  return rgbaToRgb(tf, bitmap.data, bitmap.width, bitmap.height);
}

// The project's lib settings (ES2022, no DOM) leave out the WebAssembly global; this is the one call used.
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<object> };

/**
 * `make()` run once and its result kept, unless it fails: a failed attempt is not cached, so the next call tries
 * again (a passing fault must not disable a decoder for the life of the process).
 */
export function onceSucceeded<T>(make: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= make().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

const webpReady = onceSucceeded(() => {
  // The typings omit init's first parameter, the compiled module; in Node the .wasm must be handed over this way.
  const init = initWebpWasm as unknown as (module: object) => Promise<void>;
  return WebAssembly.compile(readFileSync(require.resolve('@jsquash/webp/codec/dec/webp_dec.wasm'))).then(init);
});

async function decodeWebp(tf: Tf, bytes: Uint8Array): Promise<Tensor3D> {
  await webpReady();
  let image: { width: number; height: number; data: Uint8ClampedArray };
  try {
    image = await decodeWebpWasm(ownArrayBuffer(bytes));
  } catch (err) {
    throw corrupt('webp', 'libwebp could not decode it', err);
  }
  return rgbaToRgb(tf, image.data, image.width, image.height);
}

/**
 * Exactly these bytes in an ArrayBuffer of their own. A small Buffer is a view into Node's shared 8 KiB pool, so
 * its `.buffer` holds other allocations (other uploads) around it.
 */
export function ownArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** RGBA bytes -> int32 [H, W, 3], alpha dropped as PIL's convert('RGB') does (no compositing). */
function rgbaToRgb(tf: Tf, rgba: ArrayLike<number>, width: number, height: number): Tensor3D {
  const rgb = new Int32Array(width * height * 3);
  for (let src = 0, dst = 0; dst < rgb.length; src += 4, dst += 3) {
    rgb[dst] = rgba[src];
    rgb[dst + 1] = rgba[src + 1];
    rgb[dst + 2] = rgba[src + 2];
  }
  return tf.tensor3d(rgb, [height, width, 3], 'int32');
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
