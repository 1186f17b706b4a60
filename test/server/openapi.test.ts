// GET /openapi.json: the document validates as OpenAPI 3.1 (@seriousme/openapi-schema-validator), names every route,
// method and error code the service has, and every response it documents (each error code apart) is produced here
// by a real request whose answer is checked against it: status, Content-Type, required headers, and the body against
// its schema with Ajv's JSON Schema 2020-12, the dialect of OpenAPI 3.1.
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Model } from '../../src/engine/model';
import { loadPipeline } from '../../src/engine/pipeline';
import { startWorkerPool, type WorkerPool } from '../../src/engine/worker-pool';
import { ERROR_CODES } from '../../src/errors';
import { createApp, ROUTES } from '../../src/http/app';
import { API_VERSION, OPENAPI, type OpenApiHeader, type OpenApiOperation, type OpenApiResponse } from '../../src/http/openapi';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import type { AppConfig, AppDeps, Ready } from '../../src/http/state';
import { appConfig, memoryLogger, serve, tempDir, writeTinyModel } from '../helpers/app';
import { scopedAuth, TEST_API_KEY } from '../helpers/auth';
import { image } from '../helpers/fixtures';
import { manyScanJpeg } from '../helpers/hostile';
import { info, tf } from '../helpers/runtime';
import { buildPage } from '../helpers/page';

const ROOT = path.join(__dirname, '../..');
const METHODS = ['get', 'head', 'post', 'options'] as const;

type Ref = { $ref: string };
const isRef = (value: unknown): value is Ref => typeof value === 'object' && value !== null && '$ref' in value;

/** The documented responses, one per error code where the body names codes: `GET /health 503`, `POST /predict 400 bad_topk`. */
function documentedResponses(): Map<string, { operation: OpenApiOperation; status: string; response: OpenApiResponse; code?: string }> {
  const out = new Map<string, { operation: OpenApiOperation; status: string; response: OpenApiResponse; code?: string }>();
  for (const [route, item] of Object.entries(OPENAPI.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      for (const [status, response] of Object.entries(operation.responses)) {
        const key = `${method.toUpperCase()} ${route} ${status}`;
        const codes = errorCodes(response);
        if (codes.length === 0) out.set(key, { operation, status, response });
        for (const code of codes) out.set(`${key} ${code}`, { operation, status, response, code });
      }
    }
  }
  return out;
}

/** The codes an error response allows (`allOf: [ErrorBody, {error.code enum}]`), or none. */
function errorCodes(response: OpenApiResponse): string[] {
  const schema = response.content?.['application/json']?.schema as { allOf?: [Ref, { properties: { error: { properties: { code: { enum: string[] } } } } }] } | undefined;
  return schema?.allOf?.[1].properties.error.properties.code.enum ?? [];
}

// The document's schemas under an id of their own, so that a response schema's `#/components/...` refs resolve.
const ajv = new Ajv2020({ strict: true, allErrors: true });
const rebase = <T>(schema: T): T => JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', '"openapi-components#/$defs/')) as T;
ajv.addSchema({ $id: 'openapi-components', $defs: rebase(OPENAPI.components.schemas) });
const validators = new Map<unknown, ValidateFunction>();
function validatorOf(schema: object): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(rebase(schema));
    validators.set(schema, validate);
  }
  return validate;
}

const header = (value: Ref | OpenApiHeader): OpenApiHeader =>
  isRef(value) ? OPENAPI.components.headers[value.$ref.replace('#/components/headers/', '')] : value;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Checks one answer against the documented response; `what` names it in failures. */
function assertConforms(answer: Answer, documented: { response: OpenApiResponse; status: string; code?: string }, what: string): void {
  const { response, status, code } = documented;
  assert.is(String(answer.status), status, `${what}: status`);
  for (const [name, spec] of Object.entries(response.headers ?? {})) {
    const { required, schema } = header(spec);
    const value = answer.headers[name.toLowerCase()];
    if (required) assert.ok(value !== undefined, `${what}: header ${name}`);
    if (value !== undefined) assert.ok(validatorOf(schema)(value), `${what}: header ${name}: ${String(value)} does not match ${JSON.stringify(schema)}`);
  }
  if (!response.content) {
    assert.is(answer.body.length, 0, `${what}: no body`);
    return;
  }
  const type = String(answer.headers['content-type'] ?? '');
  const media = Object.keys(response.content).find((m) => type.split(';')[0].trim() === m);
  assert.ok(media, `${what}: Content-Type ${type} is one of ${Object.keys(response.content).join(', ')}`);
  const body: unknown = media === 'application/json' ? JSON.parse(answer.body.toString('utf8')) : answer.body.toString('utf8');
  const validate = validatorOf(response.content[media!].schema);
  assert.ok(validate(body), `${what}: body ${answer.body.toString('utf8').slice(0, 300)}\n${ajv.errorsText(validate.errors)}`);
  if (code) assert.is((body as { error: { code: string } }).error.code, code, `${what}: error code`);
}

/** Any request on a connection of its own; the raw answer. A Buffer body is sent as it is. */
function send(url: string, method: string, target: string, options: { headers?: http.OutgoingHttpHeaders; body?: Buffer | FormData } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    void (async () => {
      let body = options.body as Buffer | undefined;
      const headers = { ...options.headers };
      if (options.body instanceof FormData) {
        const encoded = new Response(options.body);
        headers['content-type'] = encoded.headers.get('content-type') ?? '';
        body = Buffer.from(await encoded.arrayBuffer());
      }
      const req = http.request(`${url}${target}`, { method, headers, agent: false });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    })().catch(reject);
  });
}

const form = (files: [string, string][], fields: Record<string, string> = {}) => {
  const f = new FormData();
  for (const [name, file] of files) f.append('image', new Blob([readFileSync(image(file))]), name);
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  return f;
};
const photo = (file = 'p04-tree.jpg') => form([[path.basename(file), file]]);
const bytesForm = (name: string, bytes: Buffer) => {
  const f = new FormData();
  f.append('image', new Blob([bytes]), name);
  return f;
};

let model: Model;
let ready: Ready;
let pool: WorkerPool | undefined;
const servers: { close(): Promise<void> }[] = [];

async function app(deps: Partial<AppDeps> = {}, config: Partial<AppConfig> = {}): Promise<string> {
  const created = createApp({ config: appConfig(config), logger: memoryLogger(), ready, ...deps });
  const server = await serve(created.koa.callback());
  servers.push(server);
  return server.url;
}

test.before(async () => {
  buildPage();
  const tiny = writeTinyModel(tempDir('openapi-model'), { classes: 5, height: 8, width: 8 });
  const loaded = await loadPipeline(tf, tiny.dir, { maxPixels: 36_000_000, honourExif: false });
  model = loaded.model;
  ready = { pipeline: loaded.pipeline, health: healthInfo(model.metadata, runtimeHealth(info)) };
});

test.after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await pool?.close();
  model?.dispose();
});

test('the document is valid OpenAPI 3.1 by a maintained validator, which does refuse a broken copy', async () => {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(OPENAPI) as unknown as Parameters<Validator['validate']>[0]);
  assert.equal(result, { valid: true }, JSON.stringify(result.errors, null, 1));
  assert.is(validator.version, '3.1');
  const broken = structuredClone(OPENAPI) as unknown as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  broken.paths['/health'].get.responses['200'] = { content: {} };
  assert.is((await new Validator().validate(broken as unknown as Parameters<Validator['validate']>[0])).valid, false, 'a response without a description is refused');
  assert.is(API_VERSION, (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

test('GET /openapi.json serves the document as JSON, revalidated by ETag', async () => {
  const url = await app();
  const answer = await send(url, 'GET', '/openapi.json');
  assert.is(answer.status, 200);
  assert.is(answer.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(JSON.parse(answer.body.toString('utf8')), JSON.parse(JSON.stringify(OPENAPI)));
  const again = await send(url, 'GET', '/openapi.json', { headers: { 'if-none-match': answer.headers.etag } });
  assert.is(again.status, 304);
});

test('every route and method of the app is documented, and nothing else; OPTIONS and a wrong method on each', () => {
  const guarded = ['/predict', '/health', '/metrics'];
  assert.equal(Object.keys(OPENAPI.paths).sort(), Object.keys(ROUTES).sort());
  for (const [route, allowed] of Object.entries(ROUTES)) {
    const item = OPENAPI.paths[route];
    const documented = METHODS.filter((m) => item[m]);
    const answering = documented.filter((m) => m !== 'options' && !('405' in item[m]!.responses));
    assert.equal(answering.map((m) => m.toUpperCase()).sort(), [...allowed].sort(), `${route}: the methods it answers`);
    assert.ok(item.options, `${route}: OPTIONS`);
    const wrong = documented.filter((m) => m !== 'options' && '405' in item[m]!.responses);
    assert.is(wrong.length, 1, `${route}: one wrong method documented`);
    // Where a token may be needed, it is checked before the method.
    assert.equal(Object.keys(item[wrong[0]]!.responses), guarded.includes(route) ? ['401', '403', '405'] : ['405'], `${route}: what a wrong method answers`);
  }
});

test('every error code of src/errors.ts, and every (status, code) the sources raise, is documented', () => {
  const documented = new Set([...documentedResponses().keys()].map((key) => key.split(' ').slice(2).join(' ')));
  for (const code of ERROR_CODES) assert.ok([...documented].some((d) => d.endsWith(` ${code}`)), `error code ${code} is documented`);
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
  const raised = new Set<string>();
  for (const file of walk(path.join(ROOT, 'src'))) {
    for (const match of readFileSync(file, 'utf8').matchAll(/new ServiceError\(\s*(\d{3}),\s*'([a-z_]+)'/g)) raised.add(`${match[1]} ${match[2]}`);
  }
  assert.ok(raised.size >= 15, `found ${raised.size} ServiceErrors in src/`);
  for (const pair of raised) assert.ok(documented.has(pair), `${pair} is raised in src/ but not documented`);
});

/** The answers for one documented response; each is checked against it. */
type Producer = () => Promise<Answer[]>;

/** 36 megapixels of detail: far more than 100 ms to decode (test/engine/worker-pool.test.ts measures the same). */
async function slowJpeg(): Promise<Buffer> {
  const noise = Buffer.from(Array.from({ length: 3 * 64 * 64 }, (_, i) => (i * 7919) & 255));
  return sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).resize(6000, 6000, { kernel: 'nearest' }).jpeg({ quality: 95 }).toBuffer();
}

/** A body that never ends: its Content-Length promises more than is sent, so the server's timeout answers. */
function stalled(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const boundary = 'openapi-stall';
    const req = http.request(`${url}/predict`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': 100_000 },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n`);
  });
}

test('every documented response, each error code apart, is produced by a real request and matches the document', async () => {
  const { auth, unscopedToken: unscoped } = await scopedAuth('openapi-auth');

  const main = await app();
  const noPage = await app({ webDir: tempDir('openapi-no-page') });
  const locked = await app({ auth }, { authHealth: true, authMetrics: true });
  const compat = await app({}, { compat: true });
  const limited = await app({}, { maxUploadBytes: 50_000, requestTimeoutMs: 300 });
  const loading = await app({ ready: new Promise<Ready>(() => undefined) });
  const failed = await app({ ready: Promise.reject(new Error('no model')) });
  const stopping = createApp({ config: appConfig(), logger: memoryLogger(), ready });
  stopping.beginShutdown();
  const stoppingServer = await serve(stopping.koa.callback());
  servers.push(stoppingServer);
  const broken = await app({ ready: { health: ready.health, pipeline: { numClasses: 5, predict: () => Promise.reject(new Error('injected fault')) } } });
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = () => undefined as void;
  const held = new Promise<void>((resolve) => (entered = resolve));
  const gated: Ready['pipeline'] = {
    numClasses: 5,
    predict: async (bytes, topk, options) => {
      entered();
      await gate;
      return ready.pipeline.predict(bytes, topk, options);
    },
  };
  const busy = await app({ ready: { health: ready.health, pipeline: gated } }, { maxInFlight: 1 });
  // The worker pool of the real server, for its decode budget.
  const { dir: poolModel } = writeTinyModel(tempDir('openapi-pool'), { classes: 5 });
  pool = await startWorkerPool({ modelDir: poolModel, workers: 1, device: 'cpu', maxPixels: 36_000_000, honourExif: false, decodeTimeoutMs: 100, workerHeapMb: 512, maxBatch: 4, maxDelayMs: 0, idleCoreMaxBatch: 0, logger: memoryLogger() });
  const budgeted = await app({ ready: { pipeline: pool.pipeline, health: healthInfo(pool.metadata, runtimeHealth(pool.runtime)) } });

  const one = (produce: () => Promise<Answer>): Producer => async () => [await produce()];
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const producers = new Map<string, Producer>();
  const add = (key: string, producer: Producer) => {
    assert.not.ok(producers.has(key), `one producer for ${key}`);
    producers.set(key, producer);
  };

  for (const [route, allowed] of Object.entries(ROUTES)) {
    const wrong = allowed.includes('POST') ? 'GET' : 'POST';
    add(`OPTIONS ${route} 204`, async () => [await send(main, 'OPTIONS', route), await send(locked, 'OPTIONS', route)]);
    add(`${wrong} ${route} 405 method_not_allowed`, async () => [await send(main, wrong, route), await send(locked, wrong, route, { headers: bearer(TEST_API_KEY) })]);
    if (['/predict', '/health', '/metrics'].includes(route)) {
      add(`${wrong} ${route} 401 unauthorized`, one(() => send(locked, wrong, route)));
      add(`${wrong} ${route} 403 forbidden`, one(() => send(locked, wrong, route, { headers: bearer(unscoped) })));
    }
  }
  for (const method of ['GET', 'HEAD']) {
    const codeOf = (code: string) => (method === 'GET' ? ` ${code}` : '');
    for (const route of ['/', '/assets/page.js', '/assets/style.css', '/assets/icon.svg', '/openapi.json']) {
      add(`${method} ${route} 200`, one(() => send(main, method, route)));
      add(`${method} ${route} 304`, one(async () => send(main, method, route, { headers: { 'if-none-match': (await send(main, 'GET', route)).headers.etag } })));
      if (route !== '/openapi.json') add(`${method} ${route} 404${codeOf('not_found')}`, one(() => send(noPage, method, route)));
    }
    add(`${method} /health 200`, one(() => send(main, method, '/health')));
    add(`${method} /health 503`, async () => Promise.all([loading, failed, stoppingServer.url].map((url) => send(url, method, '/health'))));
    add(`${method} /metrics 200`, one(() => send(main, method, '/metrics')));
    for (const route of ['/health', '/metrics']) {
      add(`${method} ${route} 401${codeOf('unauthorized')}`, async () => [await send(locked, method, route), await send(locked, method, route, { headers: bearer('wrong') })]);
      add(`${method} ${route} 403${codeOf('forbidden')}`, one(() => send(locked, method, route, { headers: bearer(unscoped) })));
    }
  }

  const predict = (url: string, body: FormData | Buffer, headers: http.OutgoingHttpHeaders = {}) => send(url, 'POST', '/predict', { body, headers });
  add('POST /predict 200', async () => [
    await predict(main, photo()),
    await predict(main, form([['a.jpg', 'p04-tree.jpg'], ['b.jpg', 'bad/truncated.jpg']])),
    await predict(compat, form([['x.png', 'bad/text.png']])),
    await predict(locked, photo(), bearer(TEST_API_KEY)),
  ]);
  add('POST /predict 400 missing_image', one(() => predict(main, form([], { topk: '2' }))));
  add('POST /predict 400 empty_file', one(() => predict(main, bytesForm('empty.jpg', Buffer.alloc(0)))));
  add('POST /predict 400 bad_topk', async () => [await predict(main, form([['a.jpg', 'p04-tree.jpg']], { topk: '0' })), await send(main, 'POST', '/predict?topk=x', { body: photo() })]);
  add('POST /predict 400 bad_request', one(async () => {
    const f = new FormData();
    f.append('file', new Blob([readFileSync(image('p04-tree.jpg'))]), 'a.jpg');
    return predict(main, f);
  }));
  add('POST /predict 401 unauthorized', async () => [await predict(locked, photo()), await predict(locked, photo(), bearer('wrong'))]);
  add('POST /predict 403 forbidden', one(() => predict(locked, photo(), bearer(unscoped))));
  add('POST /predict 408 request_timeout', one(() => stalled(limited)));
  add('POST /predict 413 file_too_large', async () => [await predict(limited, photo('p10-mountains-large.jpg')), await predict(limited, Buffer.alloc(0), { 'content-length': 10_000_000 })]);
  add('POST /predict 413 image_too_large', one(() => predict(main, photo('bad/bomb.png'))));
  add('POST /predict 415 unsupported_format', one(() => predict(main, photo('bad/text.png'))));
  add('POST /predict 422 corrupt_image', one(() => predict(main, photo('bad/truncated.jpg'))));
  add('POST /predict 422 image_too_complex', one(async () => predict(main, bytesForm('scans.jpg', await manyScanJpeg(3000)))));
  add('POST /predict 422 decode_timeout', one(async () => predict(budgeted, bytesForm('slow.jpg', await slowJpeg()))));
  add('POST /predict 500 internal', one(() => predict(broken, photo())));
  add('POST /predict 503 not_ready', async () => [await predict(loading, photo()), await predict(failed, photo())]);
  add('POST /predict 503 overloaded', one(async () => {
    const first = predict(busy, photo());
    await held;
    const refused = await predict(busy, photo());
    release();
    assert.is((await first).status, 200, 'the held request is served');
    return refused;
  }));

  const documented = documentedResponses();
  assert.equal([...producers.keys()].filter((k) => !documented.has(k)), [], 'requests for responses the document does not have');
  assert.equal([...documented.keys()].filter((k) => !producers.has(k)), [], 'documented responses no request here produces');
  for (const [key, produce] of producers) {
    const answers = await produce();
    answers.forEach((answer, i) => assertConforms(answer, documented.get(key)!, `${key}${answers.length > 1 ? ` [${i}]` : ''}`));
  }
});

test.run();
