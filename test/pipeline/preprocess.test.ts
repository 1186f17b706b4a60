// Preprocessing parity: decode + preprocess against torchvision's PIL pipeline on every test photo and format file.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage } from '../../src/image/decode';
import { resizeWeights } from '../../src/image/pil-resize';
import { createPreprocessor, LruCache } from '../../src/image/preprocess';
import { tf } from '../helpers/runtime';
import { IMAGES, pipelineReference, type PipelineEntry, type PipelineSpec } from './reference';

const SIZE: [number, number] = [64, 64];
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const DECODE = { maxPixels: 50_000_000, honourExif: false };

const imageFiles = (dir: string): string[] =>
  readdirSync(dir).filter((f) => /\.(jpe?g|png|gif|bmp|webp|tiff?)$/i.test(f)).sort().map((f) => join(dir, f));
const PHOTOS = imageFiles(IMAGES);
const FORMATS = imageFiles(join(IMAGES, 'formats'));

interface Parity {
  /** Largest difference in 8-bit steps (1 / (255 * std) after normalisation). */
  maxSteps: number;
  /** Fraction of values equal to torchvision's (within float32 rounding). */
  identical: number;
}

/** Our NHWC tensor against torchvision's NCHW one, per value in 8-bit steps. */
function compare(ours: Float32Array, reference: Float32Array): Parity {
  const [h, w] = SIZE;
  let maxSteps = 0;
  let same = 0;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < h * w; i++) {
      const steps = Math.abs(ours[i * 3 + c] - reference[c * h * w + i]) * 255 * STD[c];
      maxSteps = Math.max(maxSteps, steps);
      if (steps < 1e-3) same++;
    }
  }
  return { maxSteps, identical: same / ours.length };
}

async function ourTensor(file: string, honourExif = false): Promise<Float32Array> {
  const preprocess = createPreprocessor(tf, { height: SIZE[0], width: SIZE[1], mean: MEAN, std: STD });
  const decoded = await decodeImage(tf, new Uint8Array(readFileSync(file)), { ...DECODE, honourExif });
  const input = preprocess(decoded.pixels);
  decoded.pixels.dispose();
  assert.equal(input.shape, [SIZE[0], SIZE[1], 3]);
  assert.is(input.dtype, 'float32');
  const values = input.dataSync() as Float32Array;
  input.dispose();
  return values;
}

function spec(files: string[], honourExif = false): PipelineSpec {
  return { size: SIZE, mean: MEAN, std: STD, honour_exif: honourExif, files };
}

function okEntry(entry: PipelineEntry): PipelineEntry & { ok: true } {
  if (!entry.ok) throw new Error(`torchvision could not read ${entry.file}: ${entry.error}`);
  return entry;
}

async function checkAll(label: string, files: string[], minIdentical: number): Promise<void> {
  const reference = pipelineReference(spec(files));
  const before = tf.memory().numTensors;
  const rows: string[] = [];
  assert.is(reference.entries.length, files.length, 'one reference per file');
  let worst = { maxSteps: 0, identical: 1 };
  for (const entry of reference.entries.map(okEntry)) {
    const parity = compare(await ourTensor(entry.file), reference.tensor(entry));
    worst = { maxSteps: Math.max(worst.maxSteps, parity.maxSteps), identical: Math.min(worst.identical, parity.identical) };
    const name = entry.file.slice(IMAGES.length + 1);
    rows.push(`  ${name.padEnd(28)} ${entry.mode.padEnd(5)} max ${parity.maxSteps.toFixed(2)} step, identical ${(100 * parity.identical).toFixed(3)}%` +
      (entry.policy ? ` (policy: ${entry.policy})` : ''));
    assert.ok(parity.maxSteps <= 1 + 1e-3, `${name}: differs from torchvision by ${parity.maxSteps.toFixed(3)} 8-bit steps (bar: 1)`);
    assert.ok(parity.identical >= minIdentical, `${name}: only ${(100 * parity.identical).toFixed(3)}% identical (bar: ${100 * minIdentical}%)`);
  }
  assert.is(tf.memory().numTensors, before, 'no tensor leaked');
  assert.is(rows.length, files.length, 'every file compared');
  console.log(`${label}: ${files.length} files, worst max difference ${worst.maxSteps.toFixed(2)} 8-bit step, ` +
    `worst identical ${(100 * worst.identical).toFixed(3)}%\n${rows.join('\n')}`);
}

test('photos (baseline JPEG, PNG): within 1 step of torchvision, >= 99.9% identical', async () => {
  assert.ok(PHOTOS.length >= 35, `expected the 35 test photos in ${IMAGES}`);
  await checkAll('photos', PHOTOS, 0.999);
});

test('every file in formats/: within 1 step of torchvision, >= 99.9% identical', async () => {
  assert.ok(FORMATS.length >= 23, `expected the 23 format files in ${join(IMAGES, 'formats')}`);
  await checkAll('formats', FORMATS, 0.999);
});

test('honourExif: exif-rot6.jpg turned upright as ImageOps.exif_transpose does', async () => {
  const file = join(IMAGES, 'formats/exif-rot6.jpg');
  const reference = pipelineReference(spec([file], true));
  const parity = compare(await ourTensor(file, true), reference.tensor(okEntry(reference.entries[0])));
  console.log(`exif-rot6.jpg upright: max ${parity.maxSteps.toFixed(2)} step, identical ${(100 * parity.identical).toFixed(3)}%`);
  assert.ok(parity.maxSteps <= 1 + 1e-3);
  const unrotated = compare(await ourTensor(file, false), reference.tensor(okEntry(reference.entries[0])));
  assert.ok(unrotated.maxSteps > 10, 'without the option the picture stays as stored, unlike the upright reference');
});

test('createPreprocessor refuses bad options with the offending values', () => {
  assert.throws(() => createPreprocessor(tf, { height: 0, width: 64, mean: MEAN, std: STD }), /0x64/);
  assert.throws(() => createPreprocessor(tf, { height: 64, width: 64, mean: [0.5], std: STD }), /mean \[0.5\]/);
  assert.throws(() => createPreprocessor(tf, { height: 64, width: 64, mean: MEAN, std: [1, 0, 1] }), /std \[1,0,1\]/);
});

test('LruCache: bounded by total cost, least recently used evicted first, oversized entries not kept', () => {
  const cache = new LruCache<string, number>(10);
  cache.set('a', 1, 4);
  cache.set('b', 2, 4);
  assert.is(cache.get('a'), 1); // 'a' is now the most recent, so 'b' goes first
  cache.set('c', 3, 4);
  assert.equal([cache.get('a'), cache.get('b'), cache.get('c')], [1, undefined, 3]);
  cache.set('huge', 4, 11);
  assert.equal([cache.get('huge'), cache.get('a'), cache.get('c')], [undefined, 1, 3]);
  cache.set('a', 5, 10); // replacing an entry releases its old cost first
  assert.equal([cache.get('a'), cache.get('c')], [5, undefined]);
  assert.throws(() => new LruCache(0), /positive, got 0/);
});

test('one preprocessor serves many source sizes, beyond its cache size, with the same results', async () => {
  // Room for one source size's weights only.
  const cacheBytes = Math.max(resizeWeights(10, 12, 8, 8).bytes, resizeWeights(30, 7, 8, 8).bytes);
  const preprocess = createPreprocessor(tf, { height: 8, width: 8, mean: MEAN, std: STD, cacheBytes });
  const sizes: [number, number][] = [[10, 12], [30, 7], [10, 12]];
  const outputs = sizes.map(([h, w]) => {
    const pixels = tf.tidy(() => tf.range(0, h * w * 3, 1, 'int32').mod(256).toInt().reshape([h, w, 3]) as Tensor3D);
    const out = preprocess(pixels);
    const values = Array.from(out.dataSync());
    tf.dispose([pixels, out]);
    return values;
  });
  assert.equal(outputs[2], outputs[0], 'weights rebuilt after eviction give the same result');
});

test.run();
