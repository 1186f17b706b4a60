// The pipeline without HTTP: one prediction at a time, queued calls can be aborted, failures leave no tensor.
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ServiceError } from '../../src/errors';
import { Model } from '../../src/engine/model';
import { createPipeline, type DecodedImage, type Stages } from '../../src/engine/pipeline';
import { createPreprocessor } from '../../src/image/preprocess';
import { tempDir, writeTinyModel } from '../helpers/app';
import { tf } from '../helpers/runtime';

let model: Model;
let preprocess: Stages['preprocess'];

/** A decoder that makes a flat grey image of value bytes[0], so each call is recognisable. */
function greyDecode(bytes: Uint8Array): DecodedImage {
  return { pixels: tf.fill([12, 10, 3], bytes[0], 'int32') as Tensor3D, format: 'png', width: 10, height: 12 };
}

test.before(async () => {
  model = await Model.load(tf, writeTinyModel(tempDir('pipeline-model')).dir);
  const { mean, std } = model.metadata;
  preprocess = createPreprocessor(tf, { height: 8, width: 8, mean, std });
});

test.after(() => model.dispose());

test('calls queued together run as one batch, in order, one image at a time, and answer as each alone', async () => {
  let active = 0;
  let maxActive = 0;
  const order: number[] = [];
  const pipeline = createPipeline({
    tf,
    model,
    preprocess,
    decode: async (bytes) => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      order.push(bytes[0]);
      // Give the event loop turns in which another call could start if the pipeline let it.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      active -= 1;
      return greyDecode(bytes);
    },
  });
  const values = [10, 200, 90, 150];
  const results = await Promise.all(values.map((v) => pipeline.predict(Uint8Array.of(v), 2)));
  assert.is(maxActive, 1);
  assert.equal(order, values);
  for (const [i, v] of values.entries()) {
    assert.equal(results[i].predictions, (await pipeline.predict(Uint8Array.of(v), 2)).predictions);
    assert.equal(results[i].source, { format: 'png', width: 10, height: 12 });
    assert.is(results[i].predictions.length, 2);
  }
  assert.is.not(JSON.stringify(results[0].predictions), JSON.stringify(results[1].predictions), 'different images, different answers');
});

test('a decode or preprocess failure rejects with its error and leaves no tensor', async () => {
  const refused = new ServiceError(415, 'unsupported_format', 'not an image');
  let failPreprocess = false;
  const pipeline = createPipeline({
    tf,
    model,
    decode: (bytes) => {
      if (bytes[0] === 0) throw refused;
      return greyDecode(bytes);
    },
    preprocess: (pixels) => {
      if (failPreprocess) throw new Error('preprocess broke');
      return preprocess(pixels);
    },
  });
  await pipeline.predict(Uint8Array.of(5), 1);
  const before = tf.memory().numTensors;
  await pipeline.predict(Uint8Array.of(0), 1).then(
    () => assert.unreachable('decode failure must reject'),
    (err: unknown) => assert.is(err, refused),
  );
  failPreprocess = true;
  await pipeline.predict(Uint8Array.of(5), 1).then(
    () => assert.unreachable('preprocess failure must reject'),
    (err: unknown) => assert.match((err as Error).message, 'preprocess broke'),
  );
  assert.is(tf.memory().numTensors, before, 'decoded pixels are disposed on failure');
  failPreprocess = false;
  assert.is((await pipeline.predict(Uint8Array.of(5), 1)).predictions.length, 1);
});

/** A pipeline whose decode of an image of value 1 waits for `release()`; `decoded` lists the values decoded. */
function gatedPipeline() {
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started = () => undefined as void;
  const firstStarted = new Promise<void>((resolve) => (started = resolve));
  const decoded: number[] = [];
  const pipeline = createPipeline({
    tf,
    model,
    preprocess,
    decode: async (bytes) => {
      decoded.push(bytes[0]);
      if (bytes[0] === 0) throw new ServiceError(422, 'corrupt_image', 'broken on purpose');
      if (bytes[0] === 1) {
        started();
        await gate;
      }
      return greyDecode(bytes);
    },
  });
  return { pipeline, decoded, firstStarted, release };
}

test('a failed call does not stop the calls queued behind it', async () => {
  const { pipeline, decoded, firstStarted, release } = gatedPipeline();
  const calls = [1, 0, 2, 3].map((v) => pipeline.predict(Uint8Array.of(v), 1));
  calls.forEach((c) => c.catch(() => undefined));
  await firstStarted;
  release();
  const outcomes = await Promise.allSettled(calls);
  assert.equal(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  assert.is(((outcomes[1] as PromiseRejectedResult).reason as ServiceError).code, 'corrupt_image');
  assert.equal(decoded, [1, 0, 2, 3], 'every call ran, in order');
});

test('a call whose signal is already aborted rejects with its reason and never runs', async () => {
  const { pipeline, decoded } = gatedPipeline();
  const reason = new ServiceError(400, 'bad_request', 'The client closed the connection.');
  await pipeline.predict(Uint8Array.of(2), 1, { signal: AbortSignal.abort(reason) }).then(
    () => assert.unreachable('an aborted call must reject'),
    (err: unknown) => assert.is(err, reason),
  );
  assert.is((await pipeline.predict(Uint8Array.of(3), 1)).predictions.length, 1);
  assert.equal(decoded, [3]);
});

test('aborting a queued call rejects at once and it never runs; a running call is not interrupted', async () => {
  const { pipeline, decoded, firstStarted, release } = gatedPipeline();
  const running = new AbortController();
  const queued = new AbortController();
  const first = pipeline.predict(Uint8Array.of(1), 1, { signal: running.signal });
  const second = pipeline.predict(Uint8Array.of(2), 1, { signal: queued.signal });
  await firstStarted;
  const reason = new ServiceError(503, 'overloaded', 'waited too long');
  queued.abort(reason);
  running.abort(new Error('too late to matter'));
  await second.then(
    () => assert.unreachable('an aborted queued call must reject'),
    (err: unknown) => assert.is(err, reason),
  );
  release();
  assert.is((await first).predictions.length, 1, 'the running call completes');
  await pipeline.predict(Uint8Array.of(3), 1);
  assert.equal(decoded, [1, 3], 'the aborted call was never decoded');
});

test.run();
