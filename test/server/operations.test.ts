// Production operations of the app in-process: several images per request, request ids and log lines (no secret
// ever logged), Prometheus metrics, API-key and JWT auth, CORS.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../../src/http/app';
import { createAuthenticator, AuthConfigError, type AuthConfig } from '../../src/http/auth';
import type { AppConfig, AppDeps, Ready } from '../../src/http/state';
import type { Model } from '../../src/engine/model';
import { loadPipeline } from '../../src/engine/pipeline';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import { appConfig, memoryLogger, postImage, serve, tempDir, writeTinyModel } from '../helpers/app';
import { IMAGES } from '../helpers/fixtures';
import { info, tf } from '../helpers/runtime';

const photo = (name: string) => readFileSync(path.join(IMAGES, name));
const NO_AUTH: AuthConfig = {
  apiKeys: undefined, apiKeysFile: undefined, jwtSecretFile: undefined, jwtPublicKeyFile: undefined, jwksFile: undefined,
  jwtIssuer: undefined, jwtAudience: undefined, jwtScope: undefined,
};
const SECRET = 'k'.repeat(40);
const API_KEY = 'test-api-key-7d1f0c9a';

let model: Model;
let ready: Ready;

test.before(async () => {
  const tiny = writeTinyModel(tempDir('ops-model'), { classes: 5, height: 8, width: 8 });
  const loaded = await loadPipeline(tf, tiny.dir, { maxPixels: 36_000_000, honourExif: false });
  model = loaded.model;
  ready = { pipeline: loaded.pipeline, health: healthInfo(model.metadata, runtimeHealth(info)) };
});

test.after(() => model.dispose());

async function withApp(config: Partial<AppConfig>, deps: Partial<AppDeps>, body: (url: string, logger: ReturnType<typeof memoryLogger>) => Promise<void>): Promise<void> {
  const logger = memoryLogger();
  const app = createApp({ config: appConfig(config), logger, ready, ...deps });
  const server = await serve(app.koa.callback());
  try {
    await body(server.url, logger);
  } finally {
    await server.close();
  }
}

/** POSTs several files in field "image" with optional headers; the JSON answer. */
async function postFiles(url: string, files: [string, Uint8Array][], headers: Record<string, string> = {}) {
  const form = new FormData();
  for (const [name, bytes] of files) form.append('image', new Blob([bytes]), name);
  const response = await fetch(`${url}/predict`, { method: 'POST', body: form, headers });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

test('several images in one request: an item per file in order, a bad one with its own error; one image keeps the original body', async () => {
  await withApp({ maxFiles: 4 }, {}, async (url, logger) => {
    const single = await postImage(url, photo('p04-tree.jpg'));
    assert.equal(Object.keys(single.body as object), ['success', 'predictions']);
    const alone = await postImage(url, photo('p02-squirrel.jpg'));
    const reply = await postFiles(url, [['tree.jpg', photo('p04-tree.jpg')], ['broken.jpg', photo('bad/truncated.jpg')], ['squirrel.jpg', photo('p02-squirrel.jpg')]]);
    assert.is(reply.status, 200);
    const { predictions } = single.body as { predictions: unknown };
    const broken = await postImage(url, photo('bad/truncated.jpg'));
    assert.equal(reply.body, {
      success: true,
      results: [
        { filename: 'tree.jpg', predictions },
        { filename: 'broken.jpg', error: (broken.body as { error: unknown }).error },
        { filename: 'squirrel.jpg', predictions: (alone.body as { predictions: unknown }).predictions },
      ],
    });
    const line = logger.lines.filter((l) => l.msg === 'request').at(-2)!.fields;
    assert.equal((line.images as { image: string }[]).map((i) => i.image), ['jpeg 380x254', 'jpeg 535x426']);
    const tooMany = await postFiles(url, Array.from({ length: 5 }, (_, i) => [`p${i}.jpg`, photo('p04-tree.jpg')] as [string, Uint8Array]));
    assert.is(tooMany.status, 400);
    assert.equal(tooMany.body, { success: false, error: { code: 'bad_request', message: 'The form holds more than 4 files (MAX_FILES): send at most 4 pictures per request, all in field "image".' } });
  });
});

test('request ids: the client\'s echoed, else a new UUID; one log line per request with what it did', async () => {
  await withApp({}, {}, async (url, logger) => {
    const bytes = photo('p04-tree.jpg');
    const given = await fetch(`${url}/health`, { headers: { 'X-Request-Id': 'abc-123.x:y' } });
    assert.is(given.headers.get('x-request-id'), 'abc-123.x:y');
    const fresh = await fetch(`${url}/health`);
    assert.match(fresh.headers.get('x-request-id') ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const unsafe = await fetch(`${url}/health`, { headers: { 'X-Request-Id': 'a b<script>' } });
    assert.not.equal(unsafe.headers.get('x-request-id'), 'a b<script>');
    const form = new FormData();
    form.append('image', new Blob([bytes]), 'tree.jpg');
    await fetch(`${url}/predict`, { method: 'POST', body: form, headers: { 'X-Request-Id': 'req-42' } });
    await fetch(`${url}/predict`, { method: 'POST', body: new FormData(), headers: { 'X-Request-Id': 'req-43' } });
    const lines = logger.lines.filter((l) => l.msg === 'request');
    const ok = lines.find((l) => l.fields.request_id === 'req-42')!.fields;
    assert.equal({ ...ok, ms: undefined, infer_ms: undefined }, {
      request_id: 'req-42', method: 'POST', path: '/predict', status: 200, ms: undefined, upload_bytes: bytes.length,
      image: 'jpeg 380x254', batch_size: 1, queue_ms: undefined, infer_ms: undefined,
    });
    assert.type(ok.ms, 'number');
    assert.type(ok.infer_ms, 'number');
    const failed = lines.find((l) => l.fields.request_id === 'req-43')!.fields;
    assert.equal([failed.status, failed.error_code], [400, 'missing_image']);
  });
});

test('no secret is ever logged: tokens, keys and JWTs, accepted or refused', async () => {
  const jwt = await new SignJWT({ scope: 'predict' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
  const secretFile = path.join(tempDir('ops-secret'), 'secret');
  writeFileSync(secretFile, SECRET);
  const auth = createAuthenticator({ ...NO_AUTH, apiKeys: API_KEY, jwtSecretFile: secretFile });
  for (const deps of [{}, { auth }]) {
    await withApp({}, deps, async (url, logger) => {
      for (const token of [API_KEY, jwt, 'wrong-token-value-0000']) {
        await postFiles(url, [['tree.jpg', photo('p04-tree.jpg')]], { Authorization: `Bearer ${token}` });
        await fetch(`${url}/nowhere`, { headers: { Authorization: `Bearer ${token}` } });
      }
      const text = JSON.stringify(logger.lines);
      assert.ok(logger.lines.length >= 6);
      for (const secret of [API_KEY, jwt, 'wrong-token-value-0000', SECRET]) assert.not.ok(text.includes(secret), 'a secret in the log');
    });
  }
});

/** The Prometheus text format, parsed strictly enough to catch a malformed line: samples by name and label set. */
function parseMetrics(text: string): { types: Map<string, string>; samples: { name: string; labels: string; value: number }[] } {
  const types = new Map<string, string>();
  const samples: { name: string; labels: string; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    else if (line.startsWith('# HELP ')) continue;
    else {
      // NaN: prom-client writes "Nan" (the event loop's mean lag before any sample); Prometheus reads values with Go's
      // ParseFloat, which takes either spelling.
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|Nan|\+Inf|-Inf)$/.exec(line);
      assert.ok(sample, `a well-formed sample line: ${line}`);
      samples.push({ name: sample[1], labels: sample[2] ?? '', value: Number(sample[3]) });
    }
  }
  return { types, samples };
}

test('GET /metrics: Prometheus text with requests, latency, queue wait, inference, batch sizes, in-flight, the model and the process', async () => {
  await withApp({}, {}, async (url) => {
    for (let i = 0; i < 3; i++) await postImage(url, photo('p04-tree.jpg'));
    await postImage(url, photo('bad/truncated.jpg'));
    const response = await fetch(`${url}/metrics`);
    assert.is(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', 'text/plain; version=0.0.4');
    const { types, samples } = parseMetrics(await response.text());
    const value = (name: string, labels: string) => samples.find((s) => s.name === name && s.labels === labels)?.value;
    assert.is(value('http_requests_total', '{method="POST",route="/predict",status="200"}'), 3);
    assert.is(value('http_requests_total', '{method="POST",route="/predict",status="422"}'), 1);
    assert.is(value('http_request_duration_seconds_count', '{method="POST",route="/predict"}'), 4);
    assert.is(value('predict_batch_size_count', ''), 3);
    assert.is(value('predict_inference_seconds_count', ''), 3);
    assert.is(value('http_requests_in_flight', ''), 0);
    const sha = model.metadata.source.sha256;
    assert.ok(samples.some((s) => s.name === 'model_info' && s.labels.includes(`sha256="${sha}"`) && s.labels.includes('device="cpu"') && s.value === 1), 'model_info');
    assert.ok(samples.some((s) => s.name === 'process_cpu_user_seconds_total'), 'default process metrics');
    for (const [name, type] of [['http_requests_total', 'counter'], ['http_request_duration_seconds', 'histogram'], ['predict_queue_wait_seconds', 'histogram'],
      ['predict_inference_seconds', 'histogram'], ['predict_batch_size', 'histogram'], ['http_requests_in_flight', 'gauge'], ['model_info', 'gauge']]) {
      assert.is(types.get(name), type, name);
    }
    // Conventions: snake_case, counters end in _total, durations in _seconds.
    for (const [name, type] of types) {
      assert.match(name, /^[a-z][a-z0-9_]*$/, name);
      if (type === 'counter') assert.ok(name.endsWith('_total'), `${name} is a counter`);
    }
  });
});

async function keyFiles() {
  const dir = tempDir('ops-keys');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(dir, 'rsa.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' }] }));
  writeFileSync(path.join(dir, 'secret'), SECRET);
  writeFileSync(path.join(dir, 'keys'), `# operators\n${API_KEY}\n\nsecond-key-0000\n`);
  return { dir, rsa, ec };
}

test('auth: API keys from env and file; HS256, RS256 and ES256 JWTs with exp, nbf, iss, aud and scope; 401 and 403 as JSON', async () => {
  const { dir, rsa, ec } = await keyFiles();
  const claims = { iss: 'https://issuer.test', aud: 'flowers' };
  const hs = (payload: object, edit: (j: SignJWT) => SignJWT = (j) => j) =>
    edit(new SignJWT({ ...claims, ...payload }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m')).sign(new TextEncoder().encode(SECRET));
  const cases: { auth: Partial<AuthConfig>; tokens: [string | undefined, number, string?][] }[] = [
    {
      auth: { apiKeysFile: path.join(dir, 'keys') },
      tokens: [[API_KEY, 200], ['second-key-0000', 200], [undefined, 401, 'requires a token'], ['nope', 401, 'not a valid API key']],
    },
    {
      auth: { jwtSecretFile: path.join(dir, 'secret'), jwtIssuer: claims.iss, jwtAudience: claims.aud, jwtScope: 'predict' },
      tokens: [
        [await hs({ scope: 'read predict' }), 200],
        [await hs({ scp: ['predict'] }), 200],
        [await hs({ scope: 'read' }), 403, 'lacks the scope "predict"'],
        [await hs({ scope: 'predict' }, (j) => j.setExpirationTime(Math.floor(Date.now() / 1000) - 60)), 401, '"exp" claim'],
        [await hs({ scope: 'predict' }, (j) => j.setNotBefore('10m')), 401, '"nbf" claim'],
        [await hs({ scope: 'predict', iss: 'https://other.test' }), 401, '"iss" claim'],
        [await hs({ scope: 'predict', aud: 'other' }), 401, '"aud" claim'],
        [await new SignJWT({ ...claims, scope: 'predict' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(40))), 401, 'signature'],
      ],
    },
    {
      auth: { jwtPublicKeyFile: path.join(dir, 'rsa.pem') },
      tokens: [
        [await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(rsa.privateKey), 200],
        [await hs({}), 401, 'neither a valid API key nor a valid JWT'],
      ],
    },
    {
      auth: { jwksFile: path.join(dir, 'jwks.json') },
      tokens: [[await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).setExpirationTime('5m').sign(ec.privateKey), 200]],
    },
  ];
  for (const { auth: settings, tokens } of cases) {
    const auth = createAuthenticator({ ...NO_AUTH, ...settings });
    await withApp({}, { auth }, async (url) => {
      for (const [token, status, message] of tokens) {
        const reply = await postFiles(url, [['tree.jpg', photo('p04-tree.jpg')]], token ? { Authorization: `Bearer ${token}` } : {});
        const what = `${JSON.stringify(settings)} token ${token?.slice(0, 12)}`;
        assert.is(reply.status, status, `${what}: ${JSON.stringify(reply.body)}`);
        if (status === 200) continue;
        const error = reply.body.error as { code: string; message: string };
        assert.is(error.code, status === 401 ? 'unauthorized' : 'forbidden', what);
        assert.match(error.message, message!, what);
        assert.match(reply.headers.get('www-authenticate') ?? '', status === 403 ? 'error="insufficient_scope"' : token ? 'error="invalid_token"' : /^Bearer realm=/, what);
      }
      // Probes and scrapers need no token by default.
      assert.is((await fetch(`${url}/health`)).status, 200);
      assert.is((await fetch(`${url}/metrics`)).status, 200);
    });
  }
  const auth = createAuthenticator({ ...NO_AUTH, apiKeys: API_KEY });
  await withApp({ authHealth: true, authMetrics: true }, { auth }, async (url) => {
    assert.is((await fetch(`${url}/health`)).status, 401);
    assert.is((await fetch(`${url}/metrics`)).status, 401);
    assert.is((await fetch(`${url}/health`, { headers: { Authorization: `Bearer ${API_KEY}` } })).status, 200);
  });
  assert.is(createAuthenticator(NO_AUTH), undefined, 'off by default');
});

test('auth set-up mistakes stop the start with a message naming the fix', () => {
  const dir = tempDir('ops-bad-auth');
  writeFileSync(path.join(dir, 'short'), 'tooshort');
  writeFileSync(path.join(dir, 'empty'), '# nothing\n');
  for (const [settings, message] of [
    [{ apiKeysFile: path.join(dir, 'missing') }, /Cannot read the API keys file .*missing: ENOENT/],
    [{ apiKeysFile: path.join(dir, 'empty') }, /none was found/],
    [{ jwtSecretFile: path.join(dir, 'short') }, /8 characters; HS256 needs at least 32/],
    [{ jwtPublicKeyFile: path.join(dir, 'short') }, /is not a PEM public key/],
    [{ jwksFile: path.join(dir, 'short') }, /is not a JSON Web Key Set/],
    [{ jwtScope: 'predict' }, /need a key to verify tokens with/],
  ] as [Partial<AuthConfig>, RegExp][]) {
    assert.throws(() => createAuthenticator({ ...NO_AUTH, ...settings }), (e: unknown) => e instanceof AuthConfigError && message.test(e.message), JSON.stringify(settings));
  }
});

test('CORS: off by default; for configured origins preflights are answered and answers carry the headers a page needs', async () => {
  await withApp({}, {}, async (url) => {
    const plain = await fetch(`${url}/health`, { headers: { Origin: 'https://app.test' } });
    assert.is(plain.headers.get('access-control-allow-origin'), null);
  });
  const auth = createAuthenticator({ ...NO_AUTH, apiKeys: API_KEY });
  await withApp({ corsOrigins: 'https://app.test, https://other.test' }, { auth }, async (url) => {
    const preflight = await fetch(`${url}/predict`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.test', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
    });
    assert.is(preflight.status, 204, 'preflight answered without a token');
    assert.is(preflight.headers.get('access-control-allow-origin'), 'https://app.test');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', 'POST');
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', 'Authorization');
    const denied = await fetch(`${url}/predict`, { method: 'OPTIONS', headers: { Origin: 'https://evil.test', 'Access-Control-Request-Method': 'POST' } });
    assert.is(denied.headers.get('access-control-allow-origin'), null);
    // An error answer is readable by the page too: origin allowed, request id and WWW-Authenticate exposed.
    const refused = await postFiles(url, [['tree.jpg', photo('p04-tree.jpg')]], { Origin: 'https://other.test' });
    assert.is(refused.status, 401);
    assert.is(refused.headers.get('access-control-allow-origin'), 'https://other.test');
    assert.match(refused.headers.get('access-control-expose-headers') ?? '', /X-Request-Id.*WWW-Authenticate/);
  });
  await withApp({ corsOrigins: '*' }, {}, async (url) => {
    const any = await fetch(`${url}/health`, { headers: { Origin: 'https://anywhere.test' } });
    assert.is(any.headers.get('access-control-allow-origin'), '*');
  });
});

test.run();
