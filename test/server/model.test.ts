// Model.load: a valid folder loads and predicts; every missing, corrupt or inconsistent file is refused by name.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, ModelLoadError, readModelFolder, type ModelMetadata } from '../../src/engine/model';
import { sessionModel } from '../../src/engine/session-graph';
import { tempDir, writeMetadata, writeTinyModel } from '../helpers/app';
import { tf } from '../helpers/runtime';

function readMetadata(dir: string): ModelMetadata {
  return JSON.parse(readFileSync(path.join(dir, 'metadata.json'), 'utf8')) as ModelMetadata;
}

/** Replaces a model file and records its new size and hash, so only the intended inconsistency remains. */
function rewrite(dir: string, file: string, bytes: Buffer): void {
  writeFileSync(path.join(dir, file), bytes);
  const metadata = readMetadata(dir);
  const entry = metadata.files.find((f) => f.path === file);
  if (!entry) throw new Error(`${file} is not listed`);
  entry.bytes = bytes.length;
  entry.sha256 = createHash('sha256').update(bytes).digest('hex');
  writeMetadata(dir, metadata);
}

async function loadError(dir: string): Promise<ModelLoadError> {
  const before = tf.memory().numTensors;
  let caught: unknown;
  try {
    await Model.load(tf, dir);
  } catch (err) {
    caught = err;
  }
  assert.instance(caught, ModelLoadError, 'Model.load must refuse this folder');
  assert.match((caught as Error).message, 'Run `make convert`');
  assert.is(tf.memory().numTensors, before, 'a refused model leaves no tensor behind');
  return caught as ModelLoadError;
}

/** Loads a tiny model of `classes` classes and checks that a batch of 2 gives mean(H, W) @ w + b, leaving only its output. */
async function checkPredictions(classes: number): Promise<void> {
  const { dir, weights } = writeTinyModel(tempDir('model'), { classes, height: 6, width: 5 });
  const model = await Model.load(tf, dir);
  assert.equal(model.inputSize, { height: 6, width: 5 });
  assert.is(model.numClasses, classes);
  assert.equal(model.labels, Array.from({ length: classes }, (_, i) => String(i)));

  const values = Float32Array.from({ length: 2 * 6 * 5 * 3 }, (_, i) => Math.sin(i) * 2);
  const batch = tf.tensor4d(values, [2, 6, 5, 3]);
  const before = tf.memory().numTensors;
  const logits = model.predict(batch);
  assert.is(tf.memory().numTensors, before + 1, 'only the logits tensor is new');
  assert.equal(logits.shape, [2, classes]);
  const got = logits.dataSync();
  for (let n = 0; n < 2; n++) {
    const mean = [0, 1, 2].map((c) => {
      let sum = 0;
      for (let p = 0; p < 30; p++) sum += values[n * 90 + p * 3 + c];
      return sum / 30;
    });
    for (let k = 0; k < classes; k++) {
      const want = mean[0] * weights.w[k] + mean[1] * weights.w[classes + k] + mean[2] * weights.w[2 * classes + k] + weights.b[k];
      assert.ok(Math.abs(got[n * classes + k] - want) < 1e-5, `logit [${n}, ${k}]: ${got[n * classes + k]} vs ${want}`);
    }
  }
  tf.dispose([logits, batch]);
  model.dispose();
}

test('loads a valid folder; predict gives mean(H, W) @ w + b and leaves only its output', async () => {
  await checkPredictions(4);
});

test('large weights become session variables, assigned at load: same answers, graph without their bytes', async () => {
  // w is 3 x 400 float32 (4800 bytes): a variable; b (1600 bytes) and the int32 axes stay constants.
  const { dir, metadata } = writeTinyModel(tempDir('model-variables'), { classes: 400 });
  const folder = await readModelFolder(dir);
  const signature = { input: { name: metadata.input.name, shape: metadata.input.shape }, output: { name: metadata.output.name, shape: metadata.output.shape } };
  const session = sessionModel(folder.artifacts, signature, { packedConvolutions: false });
  assert.equal(session.variables.map((v) => [v.name, v.shape, v.bytes.byteLength]), [['w', [3, 400], 4800]]);
  assert.ok(session.savedModel.byteLength < 4800, `saved_model.pb has ${session.savedModel.byteLength} bytes: it must not carry w`);
  const before = tf.memory().numTensors;
  await checkPredictions(400);
  assert.is(tf.memory().numTensors, before, 'loading leaves no feed or output tensor behind');
});

test('labels come from metadata when it has them', async () => {
  const { dir } = writeTinyModel(tempDir('model'), { classes: 3, labels: ['daisy', 'rose', 'tulip'] });
  const model = await Model.load(tf, dir);
  assert.equal(model.labels, ['daisy', 'rose', 'tulip']);
  model.dispose();
});

test('predict refuses a batch of the wrong shape or dtype', async () => {
  const { dir } = writeTinyModel(tempDir('model'));
  const model = await Model.load(tf, dir);
  const wrongSize = tf.zeros([1, 9, 8, 3]) as Tensor4D;
  const wrongType = tf.zeros([1, 8, 8, 3], 'int32') as Tensor4D;
  assert.throws(() => model.predict(wrongSize), (e: Error) => e instanceof RangeError && /expects a batch \[N, 8, 8, 3\], got \[1, 9, 8, 3\]/.test(e.message));
  assert.throws(() => model.predict(wrongType), (e: Error) => e instanceof TypeError && /float32 batch, got int32/.test(e.message));
  tf.dispose([wrongSize, wrongType]);
  model.dispose();
});

test('a folder without metadata.json names the file and says to run make convert', async () => {
  const dir = tempDir('empty-model');
  const err = await loadError(dir);
  assert.match(err.message, `Cannot read ${path.join(dir, 'metadata.json')} (ENOENT)`);
});

test('a corrupt, truncated or missing shard is refused by name', async () => {
  const { dir } = writeTinyModel(tempDir('model'));
  const shard = path.join(dir, 'group1-shard1of1.bin');
  const bytes = readFileSync(shard);
  const flipped = Buffer.from(bytes);
  flipped[10] ^= 0xff;
  writeFileSync(shard, flipped);
  assert.match((await loadError(dir)).message, new RegExp(`Model file ${shard} has sha256 [0-9a-f]{64}; metadata.json says [0-9a-f]{64} \\(corrupt`));
  writeFileSync(shard, bytes.subarray(0, 20));
  assert.match((await loadError(dir)).message, `Model file ${shard} has 20 bytes; metadata.json says ${bytes.length} (truncated`);
  rmSync(shard);
  assert.match((await loadError(dir)).message, `Model file ${shard} listed in metadata.json cannot be read (ENOENT)`);
});

test('invalid metadata fields are named', async () => {
  const cases: [string, (m: Record<string, unknown>) => void, string][] = [
    ['schema', (m) => (m.schema = 2), 'schema is 2, this server reads schema 1'],
    ['labels', (m) => (m.labels = ['a']), 'labels must be null or 5 strings'],
    ['path', (m) => ((m.files as { path: string }[])[1].path = '../secret.bin'), 'files has an invalid path "../secret.bin"'],
    ['input', (m) => ((m.input as { shape: number[] }).shape = [-1, 8, 8, 1]), 'input.shape must be [-1, 8, 8, 3]'],
    ['std', (m) => (m.std = [0.2, 0, 0.2]), 'std must be 3 positive numbers'],
    ['source', (m) => delete m.source, 'source must be {checkpoint, sha256, demo}'],
  ];
  for (const [name, change, message] of cases) {
    const { dir, metadata } = writeTinyModel(tempDir(`model-${name}`));
    const raw = metadata as unknown as Record<string, unknown>;
    change(raw);
    writeMetadata(dir, raw);
    const err = await loadError(dir);
    assert.match(err.message, `${path.join(dir, 'metadata.json')} is invalid: ${message}`, name);
  }
});

test('model.json naming an unlisted weight file, or not a graph model, is refused', async () => {
  const { dir } = writeTinyModel(tempDir('model'));
  const modelJson = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[]; format: string };
  modelJson.weightsManifest[0].paths = ['other.bin'];
  rewrite(dir, 'model.json', Buffer.from(JSON.stringify(modelJson)));
  assert.match((await loadError(dir)).message, 'names weight file other.bin, which');
  modelJson.format = 'layers-model';
  rewrite(dir, 'model.json', Buffer.from(JSON.stringify(modelJson)));
  assert.match((await loadError(dir)).message, 'is not a TF.js graph model');
  rewrite(dir, 'model.json', Buffer.from('{"format": '));
  assert.match((await loadError(dir)).message, 'is not valid JSON');
});

test('a graph that disagrees with metadata (input size, class count) is refused', async () => {
  const small = writeTinyModel(tempDir('model'), { height: 8, width: 8 });
  const bigger = { ...small.metadata, image_size: [16, 16], input: { ...small.metadata.input, shape: [-1, 16, 16, 3] } };
  writeMetadata(small.dir, bigger);
  assert.match((await loadError(small.dir)).message, 'declares input shape [-1, 8, 8, 3]; metadata.json says [-1, 16, 16, 3]');

  const five = writeTinyModel(tempDir('model'), { classes: 5 });
  writeMetadata(five.dir, { ...five.metadata, num_classes: 6, output: { name: 'logits', shape: [-1, 6] } });
  assert.match((await loadError(five.dir)).message, 'answers shape [1, 5] for one image; metadata.json expects [1, 6]');
});

test('input or output names that differ from metadata are refused, naming both', async () => {
  const input = writeTinyModel(tempDir('model'));
  writeMetadata(input.dir, { ...input.metadata, input: { ...input.metadata.input, name: 'pixels' } });
  assert.match((await loadError(input.dir)).message, 'has inputs [input]; metadata.json expects one input "pixels"');
  const output = writeTinyModel(tempDir('model'));
  writeMetadata(output.dir, { ...output.metadata, output: { ...output.metadata.output, name: 'probabilities' } });
  assert.match((await loadError(output.dir)).message, 'has no node "probabilities", the output metadata.json names');
});

test('weights that give non-finite logits for a zero image are refused as corrupt', async () => {
  const { dir } = writeTinyModel(tempDir('model'), { classes: 5 });
  // The shard holds axes (2 x int32), then w [3, 5] and b [5] as float32: make one bias NaN.
  const shard = readFileSync(path.join(dir, 'group1-shard1of1.bin'));
  shard.writeFloatLE(Number.NaN, 8 + 15 * 4 + 2 * 4);
  rewrite(dir, 'group1-shard1of1.bin', shard);
  assert.match((await loadError(dir)).message, 'answers non-finite logits for a zero image: the weights are corrupt');
});

test('predict after dispose is an error, not a crash; dispose twice is harmless', async () => {
  const { dir } = writeTinyModel(tempDir('model'));
  const model = await Model.load(tf, dir);
  model.dispose();
  model.dispose();
  const batch = tf.zeros([1, 8, 8, 3], 'float32') as Tensor4D;
  try {
    assert.throws(() => model.predict(batch), /Model.predict called after dispose\(\)/);
  } finally {
    batch.dispose();
  }
});

test.run();
