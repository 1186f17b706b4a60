// HTTP behaviour of createApp in-process: exact bodies and statuses, bad uploads, topk, readiness, no tensor leaks.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../../src/http/app';
import type { AppConfig, AppDeps, Ready } from '../../src/http/state';
import { decodeImage } from '../../src/image/decode';
import type { Model } from '../../src/engine/model';
import { createPipeline, loadPipeline } from '../../src/engine/pipeline';
import { createPreprocessor } from '../../src/image/preprocess';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import { appConfig, memoryLogger, postImage, request, serve, tempDir, writeTinyModel, type TinyWeights } from '../helpers/app';
import { IMAGES } from '../helpers/fixtures';
import { pipelineReference } from '../pipeline/reference';
import { info, tf } from '../helpers/runtime';

const photo = (name: string) => readFileSync(path.join(IMAGES, name));
const CLASSES = 5;
const config: AppConfig = appConfig({ maxUploadBytes: 4 * 1024 * 1024, maxInFlight: 8 });
const runtime = runtimeHealth(info);

let model: Model;
let weights: TinyWeights;
let ready: Ready;

async function withApp<T>(deps: Partial<AppDeps>, body: (url: string, logger: ReturnType<typeof memoryLogger>) => Promise<T>): Promise<T> {
  const logger = memoryLogger();
  const app = createApp({ config, logger, ready, ...deps });
  const server = await serve(app.koa.callback());
  try {
    return await body(server.url, logger);
  } finally {
    await server.close();
  }
}

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Expected predictions computed apart from the server: torchvision's 8x8 input, then mean @ w + b and softmax in float64. */
function expectedPredictions(name: string, k: number): { label: string; probability: number }[] {
  const reference = pipelineReference({ size: [8, 8], mean: MEAN, std: STD, honour_exif: false, files: [path.join(IMAGES, name)] });
  const [entry] = reference.entries;
  assert.ok(entry.ok, `torchvision reads ${name}`);
  const input = reference.tensor(entry); // [3, 8, 8]
  const mean = [0, 1, 2].map((c) => input.subarray(c * 64, (c + 1) * 64).reduce((sum, v) => sum + v, 0) / 64);
  const logits = Array.from({ length: CLASSES }, (_, j) => mean[0] * weights.w[j] + mean[1] * weights.w[CLASSES + j] + mean[2] * weights.w[2 * CLASSES + j] + weights.b[j]);
  const max = Math.max(...logits);
  const sum = logits.reduce((s, x) => s + Math.exp(x - max), 0);
  return logits
    .map((x, i) => ({ label: String(i), probability: Math.exp(x - max) / sum }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k);
}

function assertPredictions(body: unknown, want: { label: string; probability: number }[]): void {
  const b = body as { success: boolean; predictions: { label: string; probability: number }[] };
  assert.equal(Object.keys(b), ['success', 'predictions'], 'exactly the original body');
  assert.is(b.success, true);
  assert.equal(b.predictions.map((p) => Object.keys(p)), want.map(() => ['label', 'probability']));
  assert.equal(b.predictions.map((p) => p.label), want.map((p) => p.label));
  b.predictions.forEach((p, i) => {
    assert.type(p.probability, 'number');
    assert.ok(Math.abs(p.probability - want[i].probability) < 1e-5, `probability ${i}: ${p.probability} vs ${want[i].probability}`);
  });
}

const errorBody = (code: string, message: string) => ({ success: false, error: { code, message } });

test.before(async () => {
  const tiny = writeTinyModel(tempDir('app-model'), { classes: CLASSES, height: 8, width: 8 });
  weights = tiny.weights;
  const loaded = await loadPipeline(tf, tiny.dir, { maxPixels: 36_000_000, honourExif: false });
  model = loaded.model;
  ready = { pipeline: loaded.pipeline, health: healthInfo(model.metadata, runtime) };
});

test.after(() => model.dispose());

test('POST /predict answers the original body with the top 3 of the model', async () => {
  await withApp({}, async (url, logger) => {
    for (const name of ['p02-squirrel.jpg', 'p05-raccoon.png', 'p19-coins.png']) {
      const bytes = photo(name);
      const reply = await postImage(url, bytes, { filename: name });
      assert.is(reply.status, 200, name);
      assert.match(reply.headers.get('content-type') ?? '', 'application/json');
      assertPredictions(reply.body, expectedPredictions(name, 3));
    }
    const logged = logger.lines.filter((l) => l.msg === 'request').map((l) => [l.fields.path, l.fields.status, l.fields.image, l.fields.upload_bytes]);
    assert.equal(logged, [
      ['/predict', 200, 'jpeg 535x426', photo('p02-squirrel.jpg').length],
      ['/predict', 200, 'png 1024x768', photo('p05-raccoon.png').length],
      ['/predict', 200, 'png 384x303', photo('p19-coins.png').length],
    ]);
  });
});

test('topk from the form field or the query; invalid values are 400 bad_topk', async () => {
  await withApp({}, async (url) => {
    const bytes = photo('p04-tree.jpg');
    assertPredictions((await postImage(url, bytes, { fields: { topk: '5' } })).body, expectedPredictions('p04-tree.jpg', 5));
    assertPredictions((await postImage(url, bytes, { query: '?topk=1' })).body, expectedPredictions('p04-tree.jpg', 1));
    for (const bad of ['0', '6', 'abc', '2.5', '-1']) {
      const reply = await postImage(url, bytes, { fields: { topk: bad } });
      assert.is(reply.status, 400, `topk=${bad}`);
      assert.equal(reply.body, errorBody('bad_topk', `topk must be one integer from 1 to ${CLASSES} (the class count), got "${bad}".`));
    }
  });
});

test('GET /health describes model and runtime once ready', async () => {
  await withApp({}, async (url) => {
    const reply = await request(`${url}/health`);
    assert.is(reply.status, 200);
    assert.equal(reply.body, {
      status: 'ok',
      model: { name: 'tiny.pth', arch: 'tiny-mean-linear', classes: CLASSES, input_size: [8, 8], labels: 'indices', demo: false, checkpoint_sha256: '0'.repeat(64) },
      runtime: {
        backend: 'tensorflow', device: 'cpu', devices: ['CPU'], binding: '@tensorflow/tfjs-node', tensorflow: info.tfVersion,
        tfjs: '4.22.0', intra_op_threads: info.intraOpThreads, inter_op_threads: info.interOpThreads, onednn: info.oneDnn,
        convolutions: info.convolutions,
      },
    });
  });
});

test('before the model is warm: /health 503 loading, /predict 503 not_ready; a failed load stays 503', async () => {
  await withApp({ ready: new Promise<Ready>(() => undefined) }, async (url) => {
    const health = await request(`${url}/health`);
    assert.is(health.status, 503);
    assert.equal(health.body, { status: 'loading', message: 'The model is loading and warming up; retry shortly.' });
    const predict = await postImage(url, photo('p04-tree.jpg'));
    assert.is(predict.status, 503);
    assert.is(predict.headers.get('retry-after'), '5');
    assert.equal(predict.body, errorBody('not_ready', 'The model is still loading; retry shortly.'));
  });
  await withApp({ ready: Promise.reject(new Error('disk on fire')) }, async (url) => {
    const health = await request(`${url}/health`);
    assert.is(health.status, 503);
    assert.equal(health.body, { status: 'failed', message: 'The model failed to load; the reason is in the server log.' });
    const predict = await postImage(url, photo('p04-tree.jpg'));
    assert.is(predict.status, 503);
    assert.is(predict.headers.get('retry-after'), null, 'no point retrying a failed load');
    assert.equal(predict.body, errorBody('not_ready', 'The model failed to load; the reason is in the server log.'));
  });
});

test('wrong method is 405 with Allow; unknown route is 404; OPTIONS lists the methods', async () => {
  await withApp({}, async (url) => {
    const get = await request(`${url}/predict`);
    assert.is(get.status, 405);
    assert.is(get.headers.get('allow'), 'POST');
    assert.equal(get.body, errorBody('method_not_allowed', 'GET is not allowed on /predict; use POST.'));
    const post = await request(`${url}/health`, { method: 'POST' });
    assert.is(post.status, 405);
    assert.is(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(post.body, errorBody('method_not_allowed', 'POST is not allowed on /health; use GET, HEAD.'));
    const head = await request(`${url}/health`, { method: 'HEAD' });
    assert.is(head.status, 200);
    assert.is(head.body, undefined);
    const del = await request(`${url}/predict`, { method: 'DELETE' });
    assert.is(del.status, 405);
    assert.is(del.headers.get('allow'), 'POST');
    const options = await request(`${url}/predict`, { method: 'OPTIONS' });
    assert.is(options.status, 204);
    assert.is(options.headers.get('allow'), 'POST');
    const missing = await request(`${url}/nope`);
    assert.is(missing.status, 404);
    assert.equal(
      missing.body,
      errorBody('not_found', 'No endpoint GET /nope; this service answers POST /predict, GET /health, GET /metrics, GET /openapi.json (its API description) and GET / (a page to try it).'),
    );
  });
});

test('no image field, another field, an empty file, a malformed body: 400 with what to do', async () => {
  const hint = 'send multipart/form-data with the picture as file field "image" (curl -F "image=@photo.jpg" .../predict)';
  await withApp({}, async (url) => {
    const none = await postImage(url, undefined, { fields: { topk: '2' } });
    assert.is(none.status, 400);
    assert.equal(none.body, errorBody('missing_image', `No file in field "image": ${hint}.`));
    const json = await request(`${url}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"image": "x"}' });
    assert.is(json.status, 400);
    assert.equal(json.body, errorBody('missing_image', `No file in field "image": ${hint}.`));
    const other = await postImage(url, photo('p04-tree.jpg'), { field: 'file' });
    assert.is(other.status, 400);
    assert.equal(other.body, errorBody('bad_request', `Unexpected file field "file": ${hint}.`));
    const empty = await postImage(url, new Uint8Array(0), { filename: 'empty.jpg' });
    assert.is(empty.status, 400);
    assert.equal(empty.body, errorBody('empty_file', 'The file "empty.jpg" in field "image" is empty (0 bytes).'));
    const malformed = await request(`${url}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      body: '--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nabc',
    });
    assert.is(malformed.status, 400);
    assert.is((malformed.body as { error: { code: string } }).error.code, 'bad_request');
    assert.match((malformed.body as { error: { message: string } }).error.message, /^Malformed multipart\/form-data body \(.+\): send multipart/);
    const crowded = await postImage(url, photo('p04-tree.jpg'), { fields: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, 'x'])) });
    assert.is(crowded.status, 400);
    assert.equal(crowded.body, errorBody('bad_request', 'The form goes over a limit (Too many fields): send only the file field "image" and optionally "topk".'));
  });
});

test('a second file in another field: 400 naming the field (several pictures go in "image", see operations.test.ts)', async () => {
  await withApp({}, async (url) => {
    const form = new FormData();
    form.append('image', new Blob([photo('p04-tree.jpg')]), 'a.jpg');
    form.append('other', new Blob([photo('p07-robin.jpg')]), 'b.jpg');
    const reply = await request(`${url}/predict`, { method: 'POST', body: form });
    assert.is(reply.status, 400);
    assert.equal(reply.body, errorBody('bad_request', `Unexpected file field "other": send multipart/form-data with the picture as file field "image" (curl -F "image=@photo.jpg" .../predict).`));
  });
});

test('--compat: every POST /predict error is 200 {"success": false} with the code in X-Error-Code, as the original answered', async () => {
  await withApp({ config: { ...config, compat: true } }, async (url) => {
    const cases: [string, Promise<{ status: number; headers: Headers; body: unknown }>][] = [
      ['missing_image', postImage(url, undefined)],
      ['empty_file', postImage(url, new Uint8Array(0))],
      ['unsupported_format', postImage(url, readFileSync(path.join(IMAGES, 'bad/text.png')))],
      ['corrupt_image', postImage(url, readFileSync(path.join(IMAGES, 'bad/truncated.jpg')))],
      ['bad_topk', postImage(url, photo('p04-tree.jpg'), { query: '?topk=0' })],
    ];
    for (const [code, pending] of cases) {
      const reply = await pending;
      assert.is(reply.status, 200, code);
      assert.equal(reply.body, { success: false }, code);
      assert.is(reply.headers.get('x-error-code'), code);
    }
    assertPredictions((await postImage(url, photo('p04-tree.jpg'))).body, expectedPredictions('p04-tree.jpg', 3));
    // Other routes keep their status: the original had none of them, so there is nothing to be compatible with.
    const wrongMethod = await request(`${url}/predict`);
    assert.is(wrongMethod.status, 405);
    assert.is((await request(`${url}/nope`, { method: 'POST' })).status, 404);
  });
});

test('an upload over the size limit is 413 file_too_large', async () => {
  await withApp({ config: { ...config, maxUploadBytes: 100_000 } }, async (url) => {
    const reply = await postImage(url, photo('p10-mountains-large.jpg'));
    assert.is(reply.status, 413);
    assert.equal(reply.body, errorBody('file_too_large', 'The upload is larger than the limit of 100000 bytes (MAX_UPLOAD_BYTES); send a smaller file.'));
    assert.is((await postImage(url, photo('p04-tree.jpg'))).status, 200, 'the next request is served');
  });
});

test('every file in bad/ gets a 4xx JSON error, the next request succeeds, and no tensor is kept', async () => {
  const expectedStatus: Record<string, number> = {
    'empty.jpg': 400,
    'bomb.png': 413,
    'header-only.png': 413,
    'garbage.jpg': 415,
    'text.png': 415,
    'zip.jpg': 415,
    'html.gif': 415,
    'truncated.jpg': 422,
    'corrupt-scan.jpg': 422,
  };
  const codes: Record<number, string[]> = { 400: ['empty_file', 'corrupt_image'], 413: ['image_too_large'], 415: ['unsupported_format'], 422: ['corrupt_image'] };
  await withApp({}, async (url) => {
    const good = photo('p07-robin.jpg');
    assert.is((await postImage(url, good)).status, 200, 'warm-up');
    const before = tf.memory().numTensors;
    const files = readdirSync(path.join(IMAGES, 'bad')).sort();
    assert.ok(files.length >= 9, `bad/ has ${files.length} files`);
    for (const name of files) {
      const reply = await postImage(url, readFileSync(path.join(IMAGES, 'bad', name)), { filename: name });
      const body = reply.body as { success: boolean; error: { code: string; message: string } };
      assert.ok(reply.status >= 400 && reply.status < 500, `${name}: status ${reply.status}`);
      if (expectedStatus[name] !== undefined) assert.is(reply.status, expectedStatus[name], name);
      assert.is(body.success, false, name);
      assert.ok((codes[reply.status] ?? []).includes(body.error.code), `${name}: code ${body.error.code} for status ${reply.status}`);
      assert.ok(body.error.message.length > 20, `${name}: a message saying what is wrong`);
      const next = await postImage(url, good);
      assert.is(next.status, 200, `the request after ${name} is served`);
      assert.is(tf.memory().numTensors, before, `no tensor kept after ${name}`);
    }
  });
});

test('an internal failure is 500 with a generic message, logged in full; the server keeps serving', async () => {
  const broken: Ready = {
    health: ready.health,
    pipeline: {
      numClasses: CLASSES,
      predict: () => Promise.reject(new Error('kernel exploded at /secret/path')),
    },
  };
  await withApp({ ready: broken }, async (url, logger) => {
    const reply = await postImage(url, photo('p04-tree.jpg'));
    assert.is(reply.status, 500);
    assert.equal(reply.body, errorBody('internal', 'Internal server error; the details are in the server log.'));
    const logged = logger.lines.find((l) => l.level === 'error');
    assert.ok(logged, 'the failure is logged');
    assert.match(String(logged?.fields.error), /Error: kernel exploded at \/secret\/path\n\s+at /);
    assert.is((await request(`${url}/health`)).status, 200);
  });
});

test('beyond max in-flight requests: 503 overloaded with Retry-After; the held ones complete', async () => {
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = 0;
  let bothEntered = () => undefined as void;
  const bothHeld = new Promise<void>((resolve) => (bothEntered = resolve));
  const gated: Ready = {
    health: ready.health,
    pipeline: {
      numClasses: CLASSES,
      predict: async (bytes, topk, options) => {
        if (++entered === 2) bothEntered();
        await gate;
        return ready.pipeline.predict(bytes, topk, options);
      },
    },
  };
  await withApp({ ready: gated, config: { ...config, maxInFlight: 2 } }, async (url) => {
    const bytes = photo('p04-tree.jpg');
    const held = [postImage(url, bytes), postImage(url, bytes)];
    // Failures surface through Promise.all below; this only keeps an early assertion from crashing the run.
    held.forEach((h) => h.catch(() => undefined));
    await bothHeld;
    const refused = await postImage(url, bytes);
    assert.is(refused.status, 503);
    assert.is(refused.headers.get('retry-after'), '1');
    assert.equal(refused.body, errorBody('overloaded', 'The server already holds 2 prediction requests; retry after a second.'));
    release();
    for (const reply of await Promise.all(held)) assert.is(reply.status, 200);
    assert.is((await postImage(url, bytes)).status, 200, 'capacity is back');
  });
});

/**
 * A pipeline on the tiny model whose first decode waits for `release()`, holding the only runner: later requests
 * wait in its queue. `holding` resolves once that first decode has started; `decodes()` counts decodes.
 */
function heldPipeline() {
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let firstDecodeStarted = () => undefined as void;
  const holding = new Promise<void>((resolve) => (firstDecodeStarted = resolve));
  let decodes = 0;
  const pipeline = createPipeline({
    tf,
    model,
    preprocess: createPreprocessor(tf, { height: 8, width: 8, mean: MEAN, std: STD }),
    decode: async (bytes) => {
      decodes += 1;
      if (decodes === 1) {
        firstDecodeStarted();
        await gate;
      }
      return decodeImage(tf, bytes, { maxPixels: 36_000_000, honourExif: false });
    },
  });
  return { pipeline, holding, release, decodes: () => decodes };
}

test('a prediction that cannot start within the request timeout is 503 overloaded at once, and never runs', async () => {
  const { pipeline, holding, release, decodes } = heldPipeline();
  await withApp({ ready: { pipeline, health: ready.health }, config: { ...config, requestTimeoutMs: 300 } }, async (url) => {
    const bytes = photo('p04-tree.jpg');
    const holder = postImage(url, bytes);
    holder.catch(() => undefined);
    await holding;
    // The holder is released only after this answer, so the answer cannot have waited for the queue.
    const queued = await postImage(url, bytes);
    assert.is(queued.status, 503);
    assert.is(queued.headers.get('retry-after'), '1');
    assert.equal(queued.body, errorBody('overloaded', 'The prediction did not start within 300 ms; retry later.'));
    release();
    assert.is((await holder).status, 200);
    assert.is((await postImage(url, bytes)).status, 200);
    assert.is(decodes(), 2, 'the timed-out request was never decoded');
  });
});

test('a client that disconnects while its request is queued: the prediction is dropped, never computed', async () => {
  const { pipeline: inner, holding, release, decodes } = heldPipeline();
  let queuedCall = (_settled: Promise<unknown>) => undefined as void;
  const secondQueued = new Promise<Promise<unknown>>((resolve) => (queuedCall = resolve));
  let calls = 0;
  const pipeline = {
    numClasses: inner.numClasses,
    predict: (...args: Parameters<typeof inner.predict>) => {
      const result = inner.predict(...args);
      if (++calls === 2) queuedCall(result.then(() => 'ran', () => 'dropped'));
      return result;
    },
  };
  await withApp({ ready: { pipeline, health: ready.health } }, async (url) => {
    const bytes = photo('p04-tree.jpg');
    const holder = postImage(url, bytes);
    holder.catch(() => undefined);
    await holding;
    const leaving = new AbortController();
    const form = new FormData();
    form.append('image', new Blob([bytes]), 'a.jpg');
    const gone = fetch(`${url}/predict`, { method: 'POST', body: form, signal: leaving.signal });
    gone.catch(() => undefined);
    const settled = await secondQueued;
    leaving.abort();
    await gone.then(() => assert.unreachable('the aborted request has no answer'), () => undefined);
    // The server saw the disconnect and dropped the queued prediction before the holder finished.
    assert.is(await settled, 'dropped');
    release();
    assert.is((await holder).status, 200);
    // The queue runs in order: had the abandoned prediction run, it would have decoded before this one.
    assert.is((await postImage(url, bytes)).status, 200);
    assert.is(decodes(), 2, 'the abandoned request was never decoded');
  });
});

test('the pixel limit applies over HTTP: 413 image_too_large from the header, then service as usual', async () => {
  const limited = await loadPipeline(tf, writeTinyModel(tempDir('app-model'), { classes: CLASSES, height: 8, width: 8 }).dir, { maxPixels: 380 * 254 - 1, honourExif: false });
  try {
    await withApp({ ready: { pipeline: limited.pipeline, health: healthInfo(limited.model.metadata, runtime) } }, async (url) => {
      const reply = await postImage(url, photo('p04-tree.jpg'));
      assert.is(reply.status, 413);
      assert.is((reply.body as { error: { code: string } }).error.code, 'image_too_large');
      assert.match((reply.body as { error: { message: string } }).error.message, '380x254 pixels');
      assert.is((await postImage(url, readFileSync(path.join(IMAGES, 'formats/tiny-7x5.png')))).status, 200);
    });
  } finally {
    limited.model.dispose();
  }
});

test('shutting down: /health is 503 stopping, requests already arriving are served, connections close', async () => {
  const logger = memoryLogger();
  const app = createApp({ config, logger, ready });
  const server = await serve(app.koa.callback());
  try {
    app.beginShutdown();
    const health = await request(`${server.url}/health`);
    assert.is(health.status, 503);
    assert.equal(health.body, { status: 'stopping', message: 'The server is shutting down; send new requests to another instance.' });
    assert.is(health.headers.get('connection'), 'close');
    const predict = await postImage(server.url, photo('p04-tree.jpg'));
    assert.is(predict.status, 200);
  } finally {
    await server.close();
  }
});

test.run();
