// Hostile uploads against the server process: a body over the byte limit is answered 413 when it crosses the limit
// (or at once from its Content-Length) and its connection closed; a stalled body gets a JSON 408 at the timeout.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FORM_ALLOWANCE_BYTES } from '../../src/http/routes/predict';
import { tempDir, writeTinyModel } from '../helpers/app';
import { image } from '../helpers/fixtures';
import { spawnLogging, type LoggingProcess } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const MiB = 1024 * 1024;
const LIMIT = 2 * MiB;
const TIMEOUT_MS = 1500;
const BOUNDARY = 'limits-boundary-5d2e';
const HEAD = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`);
const TAIL = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
const FORM = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };

const TOO_LARGE = { success: false, error: { code: 'file_too_large', message: `The upload is larger than the limit of ${LIMIT} bytes (MAX_UPLOAD_BYTES); send a smaller file.` } };

let server: LoggingProcess;
let url: string;

test.before(async () => {
  const { dir } = writeTinyModel(tempDir('limits-model'));
  server = spawnLogging(
    process.execPath,
    ['-r', 'tsx/cjs', path.join(ROOT, 'src/main.ts'), '--device', 'cpu', '--port', '0', '--model-dir', dir, '--max-upload-bytes', String(LIMIT), '--request-timeout-ms', String(TIMEOUT_MS)],
    { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } },
  );
  ({ url } = (await server.logged('listening (model loading)')) as { url: string });
  await server.logged('ready');
});

test.after(async () => {
  await server.kill();
});

interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** ms from the request's start to the end of the answer */
  ms: number;
  /** body bytes the client had written when the answer came */
  sentAtAnswer: number;
  /** whether the server sent 100 Continue */
  continued: boolean;
  /** resolves once the connection is closed: ms from the start, and the body bytes written by then */
  closed: Promise<{ ms: number; sent: number }>;
}

/**
 * POSTs /predict on a connection of its own, writing `parts` one every `intervalMs` from the start (or from
 * 100 Continue with `Expect`), and keeps writing after an answer, as a client that does not listen would.
 * Without a content-length header the body goes chunked; parts left out of `parts` are a stall.
 */
function slowPost(headers: http.OutgoingHttpHeaders, parts: Buffer[], intervalMs: number, end = true): Promise<Exchange> {
  const start = Date.now();
  let sent = 0;
  let continued = false;
  const req = http.request(`${url}/predict`, { method: 'POST', agent: false, headers: { ...FORM, ...headers } });
  // The server closing the connection under a client still writing ends its writes with EPIPE or ECONNRESET.
  req.on('error', () => undefined);
  const closed = new Promise<{ ms: number; sent: number }>((resolve) => req.on('socket', (socket) => socket.on('close', () => resolve({ ms: Date.now() - start, sent }))));
  const write = (i: number) => {
    if (req.destroyed) return;
    if (i === parts.length) {
      if (end) req.end();
      return;
    }
    req.write(parts[i]);
    sent += parts[i].length;
    setTimeout(() => write(i + 1), intervalMs);
  };
  if (headers.expect) {
    req.on('continue', () => {
      continued = true;
      write(0);
    });
    req.flushHeaders();
  } else if (parts.length === 0) {
    req.flushHeaders();
  } else {
    write(0);
  }
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      const sentAtAnswer = sent;
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - start, sentAtAnswer, continued, closed }));
      res.on('error', reject);
    });
    void closed.then(() => setTimeout(() => reject(new Error(`the connection closed without an answer after ${sent} bytes`)), 100));
  });
}

const mebibytes = (n: number, fill = 0xab) => Array.from({ length: n }, () => Buffer.alloc(MiB, fill));

test('a chunked upload streamed slowly is answered 413 as soon as the file crosses the limit, and its connection closed', async () => {
  const parts = [HEAD, ...mebibytes(32), TAIL];
  const total = parts.reduce((n, p) => n + p.length, 0);
  const reply = await slowPost({}, parts, 50);
  assert.is(reply.status, 413, reply.body);
  assert.equal(JSON.parse(reply.body), TOO_LARGE);
  assert.is(reply.headers.connection, 'close');
  // The file crosses 2 MiB in the third mebibyte; one more may be on its way.
  assert.ok(reply.sentAtAnswer <= HEAD.length + 4 * MiB, `answered after ${reply.sentAtAnswer} of ${total} bytes`);
  const closed = await reply.closed;
  assert.ok(closed.sent < total / 2, `the connection closed after ${closed.sent} of ${total} bytes`);
  assert.ok(closed.ms - reply.ms < 1000, `closed ${closed.ms - reply.ms} ms after the answer`);
});

test('a body over the limit that is not the file (a chunked preamble) is answered 413 at the limit plus the form allowance', async () => {
  const parts = [...mebibytes(16, 0x2e), HEAD, Buffer.from('x'), TAIL];
  const reply = await slowPost({}, parts, 50);
  assert.is(reply.status, 413, reply.body);
  assert.equal(JSON.parse(reply.body), TOO_LARGE);
  assert.is(reply.headers.connection, 'close');
  assert.ok(reply.sentAtAnswer <= LIMIT + FORM_ALLOWANCE_BYTES + 2 * MiB, `answered after ${reply.sentAtAnswer} bytes`);
  assert.ok((await reply.closed).sent < 8 * MiB, 'the connection closed long before the body was sent');
});

test('a Content-Length over the limit is answered 413 before any byte of the body, and the connection closed', async () => {
  const reply = await slowPost({ 'content-length': 10 * MiB }, [], 0, false);
  assert.is(reply.status, 413, reply.body);
  assert.equal(JSON.parse(reply.body), TOO_LARGE);
  assert.is(reply.headers.connection, 'close');
  assert.is(reply.sentAtAnswer, 0);
  assert.ok(reply.ms < 1000, `answered after ${reply.ms} ms`);
  const closed = await reply.closed;
  assert.ok(closed.ms - reply.ms < 1000, `closed ${closed.ms - reply.ms} ms after the answer`);
});

test('Expect: 100-continue: an upload declared too large is refused without 100 Continue; one within the limit continues and is served', async () => {
  const refused = await slowPost({ 'content-length': 10 * MiB, expect: '100-continue' }, mebibytes(10), 0);
  assert.is(refused.status, 413, refused.body);
  assert.is(refused.continued, false, 'no 100 Continue for a refused upload');
  assert.is(refused.sentAtAnswer, 0);

  const body = Buffer.concat([HEAD, readFileSync(image('p04-tree.jpg')), TAIL]);
  const served = await slowPost({ 'content-length': body.length, expect: '100-continue' }, [body], 0);
  assert.is(served.continued, true);
  assert.is(served.status, 200, served.body);
  assert.is((JSON.parse(served.body) as { success: boolean }).success, true);
});

test('a body shorter than its Content-Length, then a stall: JSON 408 request_timeout at the timeout, connection closed', async () => {
  const body = Buffer.concat([HEAD, readFileSync(image('p04-tree.jpg')), TAIL]);
  const reply = await slowPost({ 'content-length': body.length }, [body.subarray(0, body.length >> 1)], 0, false);
  assert.is(reply.status, 408, reply.body);
  assert.equal(JSON.parse(reply.body), {
    success: false,
    error: {
      code: 'request_timeout',
      message: `The request body did not arrive within ${TIMEOUT_MS} ms (REQUEST_TIMEOUT_MS): send the whole body without pausing, with a Content-Length that matches it; on a slow link send a smaller file.`,
    },
  });
  assert.is(reply.headers.connection, 'close');
  assert.ok(reply.ms >= TIMEOUT_MS && reply.ms < TIMEOUT_MS + 1000, `answered after ${reply.ms} ms`);
  const closed = await reply.closed;
  assert.ok(closed.ms - reply.ms < 1000, `closed ${closed.ms - reply.ms} ms after the answer`);
});

test('a slow but steady upload that completes within the timeout is served', async () => {
  const body = Buffer.concat([HEAD, readFileSync(image('p10-mountains-large.jpg')), TAIL]);
  assert.ok(body.length < LIMIT);
  const step = Math.ceil(body.length / 10);
  const parts = Array.from({ length: 10 }, (_, i) => body.subarray(i * step, (i + 1) * step));
  const reply = await slowPost({ 'content-length': body.length }, parts, 100);
  assert.is(reply.status, 200, reply.body);
  assert.is((JSON.parse(reply.body) as { success: boolean }).success, true);
  assert.ok(reply.ms >= 900, `the upload took ${reply.ms} ms`);
});

test('after the refused and timed-out uploads the server logged no error', () => {
  assert.not.match(server.output(), '"level":"error"');
});

test.run();
