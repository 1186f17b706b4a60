// The fuzz targets: each entry point that reads upload bytes, with the property it must keep on hostile input.
import fc from 'fast-check';
import { describe, ServiceError } from '../../src/errors';
import { decodeImage } from '../../src/image/decode';
import { checkPixelLimit, MAX_SIDE, readImageHeader, type ImageFormat, type ImageHeader } from '../../src/image/header';
import { createPreprocessor } from '../../src/image/preprocess';
import type { Tf } from '../../src/runtime';
import { materialize, mutantArbitrary, type Mutant } from './mutate';
import { FORMATS, signatureFormat, type Seed } from './seeds';

/** A broken property (as opposed to an error of the harness). */
export class Finding extends Error {
  constructor(message: string, cause?: unknown) {
    super(cause === undefined ? message : `${message}: ${describe(cause)}`, { cause });
    this.name = 'Finding';
  }
}

export interface Target<T> {
  name: string;
  /** Share of the time budget. */
  weight: number;
  /** Whether `check` returns a promise. */
  async: boolean;
  arbitrary: fc.Arbitrary<T>;
  /** How the input is saved for a finding: upload bytes, or JSON for the targets that take no bytes. */
  inputExt: 'bin' | 'json';
  input(value: T): Uint8Array;
  /** The counterexample in a few words: seed and mutations. */
  explain(value: T): string;
  /** Throws a Finding (or anything unexpected) when the property does not hold; `input` is `input(value)`. */
  check(value: T, input: Uint8Array): void | Promise<void>;
  /** The property on saved upload bytes (the regression files); byte targets only. */
  checkBytes?(bytes: Uint8Array): void | Promise<void>;
}

// Per-input time bounds; a run over its bound is repeated and only a second slow run counts (a GC pause or a core
// taken by another process must not make a finding).
const HEADER_MS = 100;
const DECODE_MS = 2000;
const PREPROCESS_MS = 1000;
/** The service's default --max-pixels. */
const MAX_PIXELS = 36_000_000;

/** The codes each refusal status may carry (decode_timeout from decodeImage only); anything else is a finding. */
const REFUSALS: Record<number, string[]> = {
  400: ['empty_file'],
  413: ['image_too_large'],
  415: ['unsupported_format'],
  422: ['corrupt_image', 'image_too_complex', 'decode_timeout'],
};

function expectRefusal(err: unknown, what: string): void {
  if (!(err instanceof ServiceError)) throw new Finding(`${what} threw something other than a ServiceError`, err);
  const fits = REFUSALS[err.status]?.includes(err.code) && (err.code !== 'decode_timeout' || what === 'decodeImage');
  if (!fits || !err.expose || err.message === '') {
    throw new Finding(`${what} refused with ${err.status} ${err.code} (expose ${err.expose}), which no upload should get`, err);
  }
}

type Outcome<T> = ({ ok: true; value: T } | { ok: false; error: unknown }) & { ms: number };

function attempt<T>(run: () => T): Outcome<T> {
  const started = performance.now();
  try {
    const value = run();
    return { ok: true, value, ms: performance.now() - started };
  } catch (error) {
    return { ok: false, error, ms: performance.now() - started };
  }
}

async function attemptAsync<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  const started = performance.now();
  try {
    const value = await run();
    return { ok: true, value, ms: performance.now() - started };
  } catch (error) {
    return { ok: false, error, ms: performance.now() - started };
  }
}

const isSide = (n: number): boolean => Number.isSafeInteger(n) && n > 0;

/** What readImageHeader must do with `bytes`: refuse with a fitting ServiceError, or give a sane header of the signature's format. */
function checkHeader(bytes: Uint8Array): void {
  const read = () => readImageHeader(bytes);
  const outcome = attempt(read);
  if (outcome.ms > HEADER_MS && attempt(read).ms > HEADER_MS) throw new Finding(`readImageHeader took ${outcome.ms.toFixed(0)} ms, over ${HEADER_MS} ms`);
  const format = signatureFormat(bytes);
  if (!outcome.ok) {
    expectRefusal(outcome.error, 'readImageHeader');
    const { status } = outcome.error as ServiceError;
    const expected = bytes.length === 0 ? [400] : format === undefined ? [415] : [415, 422];
    if (!expected.includes(status)) throw new Finding(`readImageHeader refused ${format ?? 'unknown'} bytes with ${status}, expected ${expected.join(' or ')}`, outcome.error);
    return;
  }
  const header = outcome.value;
  if (format === undefined || header.format !== format) throw new Finding(`readImageHeader read ${format ?? 'unknown'} bytes as ${header.format}`);
  checkHeaderFields(header, bytes.length);
}

function checkHeaderFields(h: ImageHeader, length: number): void {
  const fail = (what: string): never => {
    throw new Finding(`readImageHeader returned ${what}: ${JSON.stringify(h)}`);
  };
  if (!isSide(h.width) || !isSide(h.height)) fail(`a size of ${h.width}x${h.height}`);
  if (h.morePages?.some((p) => !isSide(p.width) || !isSide(p.height))) fail('a page of no size');
  if (!(Number.isInteger(h.orientation) && h.orientation >= 1 && h.orientation <= 8)) fail(`orientation ${h.orientation}`);
  const g = h.gif;
  if (g) {
    // What decodeGif relies on when it copies and patches the first frame.
    if (!(g.descriptor >= 13 && g.descriptor + 10 <= g.end && g.end <= length)) fail('a first frame outside the file');
    if (g.left + g.width > h.width || g.top + g.height > h.height) fail('a first frame outside the canvas');
    if (g.controlFlags.some((at) => !(at > 0 && at < g.descriptor))) fail('a control block outside the header');
    if (g.background.some((c) => !(Number.isInteger(c) && c >= 0 && c <= 255))) fail('a background that is no RGB colour');
  }
}

/** decodeImage's property: a tensor of the header's size, 3 channels, or a fitting refusal; no tensor left behind. */
async function checkDecode(tf: Tf, bytes: Uint8Array, honourExif: boolean): Promise<void> {
  const before = tf.memory().numTensors;
  const decode = () => decodeImage(tf, bytes, { maxPixels: MAX_PIXELS, honourExif });
  const outcome = await attemptAsync(decode);
  try {
    if (!outcome.ok) {
      expectRefusal(outcome.error, 'decodeImage');
    } else {
      const header = readImageHeader(bytes);
      const [height, width] = honourExif && header.orientation >= 5 ? [header.width, header.height] : [header.height, header.width];
      const { pixels } = outcome.value;
      const shape = JSON.stringify(pixels.shape);
      if (shape !== JSON.stringify([height, width, 3]) || pixels.dtype !== 'int32' || outcome.value.width !== width || outcome.value.height !== height) {
        throw new Finding(`decodeImage gave ${pixels.dtype} ${shape} (${outcome.value.width}x${outcome.value.height}) for a ${header.format} header of ${header.width}x${header.height}, orientation ${header.orientation}`);
      }
    }
  } finally {
    if (outcome.ok) outcome.value.pixels.dispose();
  }
  if (outcome.ms > DECODE_MS) {
    const again = await attemptAsync(decode);
    if (again.ok) again.value.pixels.dispose();
    if (again.ms > DECODE_MS) throw new Finding(`decodeImage took ${outcome.ms.toFixed(0)} ms, over ${DECODE_MS} ms (${bytes.length} bytes)`);
  }
  const after = tf.memory().numTensors;
  if (after !== before) throw new Finding(`decodeImage left ${after - before} tensors behind`);
}

function byteTarget(
  name: string,
  weight: number,
  seeds: Seed[],
  partners: Seed[],
  check: (bytes: Uint8Array, honourExif: boolean) => void | Promise<void>,
  /** Async, and also run with --honour-exif (the EXIF rotation, in tf ops); header parsing does not depend on it. */
  decoder: boolean,
  keepSignature: boolean,
): Target<{ mutant: Mutant; honourExif: boolean }> {
  const bytesOf = (mutant: Mutant) => materialize(mutant, seeds, partners, keepSignature);
  return {
    name,
    weight,
    async: decoder,
    arbitrary: fc.record({ mutant: mutantArbitrary(seeds, partners), honourExif: decoder ? fc.boolean() : fc.constant(false) }),
    inputExt: 'bin',
    input: ({ mutant }) => bytesOf(mutant),
    explain: ({ mutant, honourExif }) => {
      const seed = seeds[mutant.seed];
      const ops = mutant.ops.map((op) => (op.op === 'splice' ? { ...op, other: partners[op.other].name } : op));
      return `${seed.name}${seed.format === 'png' && mutant.fixCrcs ? ' (CRCs recomputed)' : ''}${decoder ? `, honourExif ${honourExif}` : ''}, ${JSON.stringify(ops)}`;
    },
    check: ({ honourExif }, bytes) => check(bytes, honourExif),
    checkBytes: async (bytes) => {
      await check(bytes, false);
      if (decoder) await check(bytes, true);
    },
  };
}

const PREPROCESS_MEAN = [0.485, 0.456, 0.406];
const PREPROCESS_STD = [0.229, 0.224, 0.225];

interface PreprocessCase {
  height: number;
  width: number;
  outHeight: number;
  outWidth: number;
  /** Constant black, constant white, or pseudo-random pixels from `seed`. */
  fill: 0 | 255 | 'random';
  seed: number;
}

function checkPreprocess(tf: Tf, c: PreprocessCase): void {
  const before = tf.memory().numTensors;
  const values = new Int32Array(c.height * c.width * 3);
  if (c.fill === 'random') {
    for (let i = 0, s = c.seed; i < values.length; i++) values[i] = (s = (Math.imul(s, 1664525) + 1013904223) | 0) >>> 24;
  } else {
    values.fill(c.fill);
  }
  const pixels = tf.tensor3d(values, [c.height, c.width, 3], 'int32');
  const preprocess = createPreprocessor(tf, { height: c.outHeight, width: c.outWidth, mean: PREPROCESS_MEAN, std: PREPROCESS_STD });
  try {
    const outcome = attempt(() => preprocess(pixels));
    if (!outcome.ok) throw new Finding('preprocess threw', outcome.error);
    const out = outcome.value;
    const shape = JSON.stringify(out.shape);
    const data = out.dataSync();
    out.dispose();
    if (shape !== JSON.stringify([c.outHeight, c.outWidth, 3]) || out.dtype !== 'float32') throw new Finding(`preprocess gave ${out.dtype} ${shape}`);
    // Resized values stay within 0..255 (PIL clips), and a constant image stays that constant.
    const level = (v: number, channel: number) => (v / 255 - PREPROCESS_MEAN[channel]) / PREPROCESS_STD[channel];
    const bounds = [0, 1, 2].map((channel) => (c.fill === 'random' ? [level(0, channel), level(255, channel)] : [level(c.fill, channel), level(c.fill, channel)]));
    for (let i = 0; i < data.length; i++) {
      const [min, max] = bounds[i % 3];
      if (!(data[i] >= min - 1e-5 && data[i] <= max + 1e-5)) throw new Finding(`preprocess gave ${data[i]} at index ${i}, outside ${min}..${max}`);
    }
    if (outcome.ms > PREPROCESS_MS && attempt(() => preprocess(pixels).dispose()).ms > PREPROCESS_MS) {
      throw new Finding(`preprocess took ${outcome.ms.toFixed(0)} ms, over ${PREPROCESS_MS} ms`);
    }
  } finally {
    pixels.dispose();
  }
  const after = tf.memory().numTensors;
  if (after !== before) throw new Finding(`preprocess left ${after - before} tensors behind`);
}

/** Sides as headers give them (1 to 2^32 - 1), the limits' edges most often. */
const side = fc.oneof(
  fc.constantFrom(1, 2, 6000, 6001, MAX_SIDE - 1, MAX_SIDE, MAX_SIDE + 1, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff),
  fc.integer({ min: 1, max: 70_000 }),
  fc.bigInt({ min: 1n, max: 0xffffffffn }).map(Number),
);

interface PixelLimitCase {
  width: number;
  height: number;
  /** The pages of a TIFF file after the first, each within the limits too. */
  morePages: { width: number; height: number }[];
  maxPixels: number;
}

function pixelLimitTarget(): Target<PixelLimitCase> {
  const page = fc.record({ width: side, height: side });
  return {
    name: 'pixel-limit',
    weight: 0.5,
    async: false,
    arbitrary: fc.record({
      width: side,
      height: side,
      morePages: fc.array(page, { maxLength: 3 }),
      maxPixels: fc.oneof(fc.constant(MAX_PIXELS), fc.integer({ min: 1, max: 0x7fffffff })),
    }),
    inputExt: 'json',
    input: (value) => Buffer.from(JSON.stringify(value)),
    explain: (value) => JSON.stringify(value),
    check: ({ width, height, morePages, maxPixels }) => {
      const header: ImageHeader = { format: 'tiff', width, height, orientation: 1, morePages };
      const outcome = attempt(() => checkPixelLimit(header, maxPixels));
      const tooLarge = [{ width, height }, ...morePages].some((p) => Math.max(p.width, p.height) > MAX_SIDE || p.width * p.height > maxPixels);
      if (outcome.ok === tooLarge) throw new Finding(`checkPixelLimit ${outcome.ok ? 'accepted' : 'refused'} ${JSON.stringify({ width, height, morePages })} with maxPixels ${maxPixels}`);
      if (!outcome.ok) {
        expectRefusal(outcome.error, 'checkPixelLimit');
        if ((outcome.error as ServiceError).status !== 413) throw new Finding('checkPixelLimit refused with a status other than 413', outcome.error);
      }
    },
  };
}

function preprocessTarget(tf: Tf): Target<PreprocessCase> {
  return {
    name: 'preprocess',
    weight: 2,
    async: false,
    arbitrary: fc.record({
      height: fc.integer({ min: 1, max: 300 }),
      width: fc.integer({ min: 1, max: 300 }),
      outHeight: fc.oneof(fc.constantFrom(64, 224), fc.integer({ min: 1, max: 256 })),
      outWidth: fc.oneof(fc.constantFrom(64, 224), fc.integer({ min: 1, max: 256 })),
      fill: fc.constantFrom(0 as const, 255 as const, 'random' as const),
      seed: fc.integer(),
    }),
    inputExt: 'json',
    input: (value) => Buffer.from(JSON.stringify(value)),
    explain: (value) => JSON.stringify(value),
    check: (value) => checkPreprocess(tf, value),
  };
}

/**
 * Every target, in the order they run: per format a header target (readImageHeader on that format's seeds, mutated)
 * and a decode target (decodeImage on a real TensorFlow runtime), one header target on all seeds including the
 * non-images of bad/, checkPixelLimit, and the preprocess stage.
 */
export function allTargets(tf: Tf, seeds: Seed[]): Target<unknown>[] {
  const of = (format: ImageFormat) => seeds.filter((s) => s.format === format);
  return [
    ...FORMATS.map((format) => byteTarget(`header-${format}`, 1, of(format), seeds, checkHeader, false, true)),
    byteTarget('header-any', 1, seeds, seeds, checkHeader, false, false),
    pixelLimitTarget(),
    preprocessTarget(tf),
    ...FORMATS.map((format) => byteTarget(`decode-${format}`, 4, of(format), seeds, (bytes, exif) => checkDecode(tf, bytes, exif), true, true)),
  ];
}
