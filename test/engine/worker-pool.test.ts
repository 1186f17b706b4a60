// The engine's worker threads: each loads its own session; concurrent requests are batched across them and answer
// exactly as the in-process pipeline does; refusals cross the thread boundary as the same ServiceError.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadPipeline, type Pipeline, type PipelineResult } from '../../src/engine/pipeline';
import { startWorkerPool, WorkerStartError, type WorkerPool } from '../../src/engine/worker-pool';
import { ServiceError } from '../../src/errors';
import { memoryLogger, tempDir, writeTinyModel } from '../helpers/app';
import { image } from '../helpers/fixtures';
import { tf } from '../helpers/runtime';

/** What a prediction answers, without its timing (which differs from run to run). */
const answer = (result: PipelineResult) => ({ predictions: result.predictions, source: result.source });

const PHOTOS = ['p02-squirrel.jpg', 'p05-raccoon.png', 'p19-coins.png', 'p04-tree.jpg', 'formats/lossy.webp', 'formats/single.gif'];
const options = { workers: 2, device: 'cpu' as const, maxPixels: 36_000_000, honourExif: false, decodeTimeoutMs: 2000, workerHeapMb: 512, maxBatch: 4, maxDelayMs: 0, idleCoreMaxBatch: 1 };

let pool: WorkerPool;
let local: { pipeline: Pipeline; dispose(): void };
const logger = memoryLogger();

test.before(async () => {
  const { dir } = writeTinyModel(tempDir('pool-model'), { classes: 5, height: 8, width: 8 });
  pool = await startWorkerPool({ ...options, modelDir: dir, logger });
  const loaded = await loadPipeline(tf, dir, { maxPixels: 36_000_000, honourExif: false });
  local = { pipeline: loaded.pipeline, dispose: () => loaded.model.dispose() };
});

test.after(async () => {
  await pool.close();
  local.dispose();
});

test('the pool reports its workers, the model and the runtime the workers loaded', () => {
  assert.is(pool.workers, 2);
  assert.is(pool.metadata.num_classes, 5);
  assert.equal([pool.runtime.backend, pool.runtime.device], ['tensorflow', 'cpu']);
});

test('concurrent requests, batched across the workers, answer exactly as the in-process pipeline does alone', async () => {
  const bytes = PHOTOS.map((name) => readFileSync(image(name)));
  const alone: ReturnType<typeof answer>[] = [];
  for (const b of bytes) alone.push(answer(await local.pipeline.predict(b, 3)));
  // Three rounds of every photo at once: batches of up to 4 on two workers.
  const together = await Promise.all([...bytes, ...bytes, ...bytes].map((b) => pool.pipeline.predict(b, 3)));
  together.forEach((result, i) => assert.equal(answer(result), alone[i % bytes.length], `${PHOTOS[i % bytes.length]} (request ${i})`));
  assert.ok(together.some((r) => r.timing.batchSize > 1), 'some requests were batched');
  assert.is(new Set(alone.map((r) => JSON.stringify(r.predictions))).size, bytes.length, 'different photos, different answers');
});

test('requests that arrive while both workers are busy join the batch of one still decoding, answered as alone', async () => {
  const names = ['p10-mountains-large.jpg', 'p14-dogs-large.jpg', 'p05-raccoon.png', 'formats/lossy.webp'];
  const bytes = names.map((name) => readFileSync(image(name)));
  const alone: ReturnType<typeof answer>[] = [];
  for (const b of bytes) alone.push(answer(await local.pipeline.predict(b, 3)));
  // The first two start a batch each; the next two, submitted while those large photos decode (tens of ms), join
  // one each (the smaller batch first).
  const results = await Promise.all(bytes.map((b) => pool.pipeline.predict(b, 3)));
  results.forEach((result, i) => assert.equal(answer(result), alone[i], names[i]));
  assert.equal(results.map((r) => r.timing.batchSize), [2, 2, 2, 2]);
});

test('a refused upload fails alone with the same ServiceError; the batch around it is answered', async () => {
  const good = readFileSync(image('p04-tree.jpg'));
  const bad = readFileSync(image('bad/truncated.jpg'));
  const outcomes = await Promise.allSettled([good, bad, good].map((b) => pool.pipeline.predict(b, 2)));
  assert.equal(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled']);
  const error = (outcomes[1] as PromiseRejectedResult).reason as ServiceError;
  assert.instance(error, ServiceError);
  assert.equal([error.status, error.code, error.expose], [422, 'corrupt_image', true]);
  assert.match(error.message, 'JPEG');
});

test('a small upload inside a larger buffer reaches the worker as its own bytes', async () => {
  const own = readFileSync(image('formats/tiny-7x5.png'));
  const shared = Buffer.alloc(own.length + 4096, 0x5a);
  own.copy(shared, 2048);
  const view = shared.subarray(2048, 2048 + own.length);
  assert.equal(answer(await pool.pipeline.predict(view, 3)), answer(await local.pipeline.predict(own, 3)));
});

test('a folder that cannot load fails the pool with the model error, and no worker is left running', async () => {
  const dir = tempDir('pool-missing');
  await startWorkerPool({ ...options, modelDir: dir, logger }).then(
    () => assert.unreachable('an empty folder must not load'),
    (err: Error) => assert.match(err.message, 'metadata.json (ENOENT). Run `make convert`'),
  );
  const broken = writeTinyModel(tempDir('pool-broken'), { classes: 5 });
  const shard = readFileSync(`${broken.dir}/group1-shard1of1.bin`);
  shard.writeFloatLE(Number.NaN, 8 + 15 * 4);
  writeFileSync(`${broken.dir}/group1-shard1of1.bin`, shard);
  const metadata = broken.metadata;
  const entry = metadata.files.find((f) => f.path === 'group1-shard1of1.bin')!;
  entry.sha256 = createHash('sha256').update(shard).digest('hex');
  writeFileSync(`${broken.dir}/metadata.json`, JSON.stringify(metadata));
  await startWorkerPool({ ...options, modelDir: broken.dir, logger }).then(
    () => assert.unreachable('NaN weights must not load'),
    (err: Error) => {
      assert.instance(err, WorkerStartError);
      assert.match(err.message, 'non-finite logits');
    },
  );
});

test('a decode past its budget: 422 decode_timeout for that image, the rest of its batch answered, the worker replaced', async () => {
  const { dir } = writeTinyModel(tempDir('pool-budget'), { classes: 5 });
  const budgetLogger = memoryLogger();
  // One worker and a short gathering delay, so the three requests form one batch with the slow one in the middle.
  const budgeted = await startWorkerPool({ ...options, workers: 1, maxDelayMs: 50, decodeTimeoutMs: 100, modelDir: dir, logger: budgetLogger });
  try {
    // 36 megapixels of detail: several hundred milliseconds to decode here, far past 100 ms.
    const noise = Buffer.from(Array.from({ length: 3 * 64 * 64 }, (_, i) => (i * 7919) & 255));
    const slow = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).resize(6000, 6000, { kernel: 'nearest' }).jpeg({ quality: 95 }).toBuffer();
    const small = readFileSync(image('p04-tree.jpg'));
    const expected = answer(await local.pipeline.predict(small, 3));
    const started = Date.now();
    const [first, timedOut, last] = await Promise.allSettled([small, slow, small].map((bytes) => budgeted.pipeline.predict(bytes, 3)));
    assert.equal(first.status === 'fulfilled' && answer(first.value), expected);
    assert.equal(last.status === 'fulfilled' && answer(last.value), expected);
    assert.is(timedOut.status, 'rejected');
    const error = (timedOut as PromiseRejectedResult).reason as ServiceError;
    assert.instance(error, ServiceError);
    assert.equal([error.status, error.code], [422, 'decode_timeout']);
    assert.match(error.message, 'Decoding this image took longer than this server\'s limit of 100 ms (DECODE_TIMEOUT_MS)');
    assert.ok(Date.now() - started < 5000, 'answered without waiting for the slow decode to finish');
    assert.ok(budgetLogger.lines.some((l) => l.msg === 'engine worker ended; starting a new one'), 'the replacement is logged');
    // The replacement serves what comes next.
    assert.equal(answer(await budgeted.pipeline.predict(small, 3)), expected);
    assert.is(budgeted.workers, 1);
  } finally {
    await budgeted.close();
  }
});

test('close lets queued predictions finish, then refuses new ones', async () => {
  const { dir } = writeTinyModel(tempDir('pool-close'), { classes: 5 });
  const closing = await startWorkerPool({ ...options, workers: 1, modelDir: dir, logger });
  const bytes = readFileSync(image('p04-tree.jpg'));
  const pending = [1, 2, 3].map(() => closing.pipeline.predict(bytes, 1));
  const closed = closing.close();
  for (const result of await Promise.all(pending)) assert.is(result.predictions.length, 1);
  await closed;
  await closing.pipeline.predict(bytes, 1).then(() => assert.unreachable('closed'), (err: Error) => assert.match(err.message, 'closed'));
});

test.run();
