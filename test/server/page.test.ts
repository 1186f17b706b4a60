// GET / and its assets over HTTP: the built files with their Content-Types, a strict Content-Security-Policy the page
// keeps to, revalidation by ETag, nothing outside the allow-list (no path traversal), open with auth on, and a clear
// 404 (and a startup warning) from a server without the built page.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../../src/http/app';
import { createAuthenticator } from '../../src/http/auth';
import { CONTENT_SECURITY_POLICY, PAGE_PATHS, WEB_DIR } from '../../src/http/routes/page';
import type { AppDeps, Ready } from '../../src/http/state';
import { appConfig, memoryLogger, request, serve, tempDir } from '../helpers/app';
import { buildPage } from '../helpers/page';

const ROOT = path.join(__dirname, '../..');
/** A model is not needed for the page: the app is served while "loading". */
const loading = new Promise<Ready>(() => undefined);

async function withApp(deps: Partial<AppDeps>, body: (url: string, logger: ReturnType<typeof memoryLogger>) => Promise<void>): Promise<void> {
  const logger = memoryLogger();
  const app = createApp({ config: appConfig(), logger, ready: loading, ...deps });
  const server = await serve(app.koa.callback());
  try {
    await body(server.url, logger);
  } finally {
    await server.close();
  }
}

/**
 * GET with the path and headers sent exactly as written: fetch resolves dot segments first, and adds
 * `Cache-Control: no-cache` to a conditional request, which asks the server not to answer 304.
 */
function rawGet(url: string, target: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { path: target, headers, agent: false });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.before(() => buildPage());

test('the build is served from dist/web/, each file with its type, the CSP, no-cache and an ETag; 304 while current', async () => {
  assert.is(WEB_DIR, path.join(ROOT, 'dist/web'));
  const types: Record<string, string> = {
    '/': 'text/html; charset=utf-8',
    '/assets/page.js': 'text/javascript; charset=utf-8',
    '/assets/style.css': 'text/css; charset=utf-8',
    '/assets/icon.svg': 'image/svg+xml',
  };
  assert.equal([...PAGE_PATHS].sort(), Object.keys(types).sort());
  await withApp({}, async (url) => {
    for (const [urlPath, type] of Object.entries(types)) {
      const response = await fetch(`${url}${urlPath}`);
      assert.is(response.status, 200, urlPath);
      assert.is(response.headers.get('content-type'), type, urlPath);
      assert.is(response.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, urlPath);
      assert.is(response.headers.get('x-content-type-options'), 'nosniff');
      assert.is(response.headers.get('cache-control'), 'no-cache');
      const file = path.join(WEB_DIR, urlPath === '/' ? 'index.html' : urlPath);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(readFileSync(file)), `${urlPath} is ${file}`);
      const etag = response.headers.get('etag') ?? '';
      assert.match(etag, /^"[\w-]{22}"$/);
      const again = await rawGet(url, urlPath, { 'If-None-Match': etag });
      assert.is(again.status, 304, `${urlPath} revalidated`);
      assert.is(again.body, '');
      assert.is((await rawGet(url, urlPath, { 'If-None-Match': '"other"' })).status, 200, `${urlPath}: another version is sent whole`);
      const head = await fetch(`${url}${urlPath}`, { method: 'HEAD' });
      assert.is(head.status, 200);
      assert.is(head.headers.get('content-length'), String(readFileSync(file).length));
    }
    const post = await request(`${url}/`, { method: 'POST' });
    assert.is(post.status, 405);
    assert.is(post.headers.get('allow'), 'GET, HEAD');
  });
});

test('the page keeps to its CSP: no inline script, style or handler, and it loads only files the server lists', () => {
  const html = readFileSync(path.join(WEB_DIR, 'index.html'), 'utf8');
  assert.not.match(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script has a src');
  assert.not.match(html, /\sstyle=|<style|\son[a-z]+=/i, 'no inline style or event handler');
  const links = [...html.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(links.length >= 4, `links: ${links.join(', ')}`);
  for (const link of links) assert.ok([...PAGE_PATHS, '/openapi.json'].includes(`/${link}`), `${link} is served`);
  assert.not.match(readFileSync(path.join(WEB_DIR, 'assets/page.js'), 'utf8'), /\b(eval|innerHTML|new Function)\b/, 'no code or markup from strings');
  const apiDoc = readFileSync(path.join(ROOT, 'docs/api.md'), 'utf8').replace(/\s+/g, ' ');
  assert.ok(apiDoc.includes(`Content-Security-Policy: ${CONTENT_SECURITY_POLICY}`), 'docs/api.md quotes the policy');
});

test('nothing outside the allow-list: traversal, other files of the build and of the project are 404 JSON', async () => {
  await withApp({}, async (url) => {
    const index = readFileSync(path.join(WEB_DIR, 'index.html'), 'utf8');
    for (const target of ['/index.html', '/assets/', '/assets/page.ts', '/assets/../package.json', '/assets/%2e%2e/%2e%2e/package.json', '/..%2fpackage.json', '/assets/page.js/..', '//etc/passwd', '/dist/web/index.html', '/src/web/page.ts']) {
      const answer = await rawGet(url, target);
      assert.is(answer.status, 404, target);
      const body = JSON.parse(answer.body) as { error: { code: string } };
      assert.is(body.error.code, 'not_found', target);
      assert.not.ok(answer.body.includes('"version"') || answer.body.includes(index.slice(0, 40)), `${target} leaks no file`);
    }
  });
});

test('with auth on, the page, its assets and /openapi.json stay open; the API does not', async () => {
  const auth = createAuthenticator({
    apiKeys: 'page-key-0001', apiKeysFile: undefined, jwtSecretFile: undefined, jwtPublicKeyFile: undefined, jwksFile: undefined,
    jwtIssuer: undefined, jwtAudience: undefined, jwtScope: undefined,
  });
  await withApp({ auth }, async (url) => {
    for (const urlPath of [...PAGE_PATHS, '/openapi.json']) assert.is((await fetch(`${url}${urlPath}`)).status, 200, urlPath);
    assert.is((await fetch(`${url}/predict`, { method: 'POST' })).status, 401);
    assert.is((await fetch(`${url}/metrics`)).status, 200, '/metrics keeps its own setting');
  });
});

test('a server without the built page: every page path is 404 with what to run, the API works, and startup warns', async () => {
  const empty = tempDir('page-missing');
  await withApp({ webDir: empty }, async (url, logger) => {
    for (const urlPath of PAGE_PATHS) {
      const answer = await request(`${url}${urlPath}`);
      assert.is(answer.status, 404, urlPath);
      assert.equal(answer.body, {
        success: false,
        error: { code: 'not_found', message: 'The web page is not built into this server (its index.html is missing): run `make build` or `npm run build`; the API works without it.' },
      });
    }
    assert.is((await request(`${url}/health`)).status, 503, 'the API answers as usual (here: still loading)');
    assert.equal(
      logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg),
      [`the web page is not built (${path.join(empty, 'index.html')} is missing): GET / answers 404; \`make build\` builds it`],
    );
  });
});

test.run();
