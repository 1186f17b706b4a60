// The server process (src/main.ts): startup errors, and SIGTERM finishing every accepted request before exit 0.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serve, tempDir, writeTinyModel } from '../helpers/app';
import { image } from '../helpers/fixtures';
import { spawnLogging, type LoggingProcess } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const MAIN = path.join(ROOT, 'src/main.ts');

function start(args: string[], env: NodeJS.ProcessEnv = {}): LoggingProcess {
  return spawnLogging(process.execPath, ['-r', 'tsx/cjs', MAIN, '--device', 'cpu', ...args], {
    cwd: ROOT,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env },
  });
}

/** Runs `body` with the server process, which is killed afterwards if the body failed before it exited. */
async function withServer(args: string[], body: (server: LoggingProcess) => Promise<void>): Promise<void> {
  const server = start(args);
  try {
    await body(server);
  } finally {
    await server.kill();
  }
}

/** POSTs a file with a raw http.request (one connection each), resolving with status and body. */
function post(url: string, bytes: Buffer): Promise<{ status: number; body: string }> {
  const boundary = 'test-boundary-7f3a';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const body = Buffer.concat([head, bytes, tail]);
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/predict`, { method: 'POST', agent: false, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('SIGTERM: stops accepting, answers every accepted request, disposes and exits 0', async () => {
  const { dir } = writeTinyModel(tempDir('main-model'));
  await withServer(['--port', '0', '--model-dir', dir], async (server) => {
    const { url } = (await server.logged('listening (model loading)')) as { url: string };
    await server.logged('ready');
    const bytes = readFileSync(image('p10-mountains-large.jpg'));
    const replies = Array.from({ length: 5 }, () => post(url, bytes));
    // Once one is answered, all five connections have been accepted; the rest are still queued or running.
    let done = 0;
    replies.forEach((reply) => reply.then(() => (done += 1), () => undefined));
    await Promise.race(replies);
    server.child.kill('SIGTERM');
    const inFlight = replies.length - done;
    await server.logged('shutting down: finishing accepted requests');
    const late = await post(url, bytes).then(
      () => 'answered',
      (err: NodeJS.ErrnoException) => err.code,
    );
    // Refused, or reset when the kernel had queued the connection before the listening socket closed: either way
    // the request is never taken in.
    assert.ok(late === 'ECONNREFUSED' || late === 'ECONNRESET', `no new connection after SIGTERM, got ${late}`);
    assert.ok(inFlight > 0, 'some requests were still in flight at SIGTERM');
    const answered = await Promise.all(replies);
    for (const reply of answered) {
      assert.is(reply.status, 200);
      assert.is((JSON.parse(reply.body) as { success: boolean }).success, true);
    }
    assert.is(await server.exited, 0, server.output());
    assert.is((await server.logged('stopped')).clean, true);
  });
});

/** Starts a multipart upload and sends only its first half; `finish` sends the rest and resolves with the answer. */
function stalledUpload(url: string, bytes: Buffer) {
  const boundary = 'test-boundary-9c1e';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n`);
  const body = Buffer.concat([head, bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const half = Math.floor(body.length / 2);
  let sent = () => undefined as void;
  const firstHalfSent = new Promise<void>((resolve) => (sent = resolve));
  const req = http.request(`${url}/predict`, { method: 'POST', agent: false, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
  });
  answer.catch(() => undefined);
  req.write(body.subarray(0, half), () => sent());
  return {
    firstHalfSent,
    answer,
    finish() {
      req.end(body.subarray(half));
      return answer;
    },
  };
}

test('SIGTERM while a request is still uploading: a second signal is noted, the request completes, exit 0', async () => {
  const { dir } = writeTinyModel(tempDir('main-model'));
  await withServer(['--port', '0', '--model-dir', dir], async (server) => {
    const { url } = (await server.logged('listening (model loading)')) as { url: string };
    await server.logged('ready');
    const upload = stalledUpload(url, readFileSync(image('p04-tree.jpg')));
    await upload.firstHalfSent;
    server.child.kill('SIGTERM');
    await server.logged('shutting down: finishing accepted requests');
    server.child.kill('SIGTERM');
    await server.logged('already shutting down; waiting for accepted requests to finish');
    const reply = await upload.finish();
    assert.is(reply.status, 200, reply.body);
    assert.is(await server.exited, 0, server.output());
  });
});

test('SIGTERM when the grace period runs out: the stalled upload is cut, the exit code is 1', async () => {
  const { dir } = writeTinyModel(tempDir('main-model'));
  await withServer(['--port', '0', '--model-dir', dir, '--shutdown-grace-ms', '500'], async (server) => {
    const { url } = (await server.logged('listening (model loading)')) as { url: string };
    await server.logged('ready');
    const upload = stalledUpload(url, readFileSync(image('p04-tree.jpg')));
    await upload.firstHalfSent;
    server.child.kill('SIGTERM');
    const over = await server.logged('shutdown grace period over: closing the remaining connections');
    assert.is(over.grace_ms, 500);
    await upload.answer.then(
      (reply) => assert.unreachable(`the cut upload got an answer: ${reply.status}`),
      (err: NodeJS.ErrnoException) => assert.ok(['ECONNRESET', 'EPIPE'].includes(String(err.code)) || /socket hang up/.test(err.message), String(err)),
    );
    assert.is(await server.exited, 1, server.output());
    assert.is((await server.logged('stopped')).clean, false);
  });
});

test('SIGTERM during the model load: the load finishes, the server stops cleanly without serving', async () => {
  const { dir } = writeTinyModel(tempDir('main-model'));
  // metadata.json becomes a FIFO: the load cannot finish until the test writes it, so the signal lands mid-load.
  const metadata = readFileSync(path.join(dir, 'metadata.json'));
  rmSync(path.join(dir, 'metadata.json'));
  execFileSync('mkfifo', [path.join(dir, 'metadata.json')]);
  await withServer(['--port', '0', '--model-dir', dir], async (server) => {
    await server.logged('listening (model loading)');
    server.child.kill('SIGTERM');
    writeFileSync(path.join(dir, 'metadata.json'), metadata);
    await server.logged('ready');
    await server.logged('shutting down: finishing accepted requests');
    assert.is(await server.exited, 0, server.output());
    assert.is((await server.logged('stopped')).clean, true);
  });
});

test('a missing model is a startup error naming the file and make convert', async () => {
  const dir = tempDir('no-model');
  const server = start(['--port', '0', '--model-dir', dir]);
  assert.is(await server.exited, 1);
  assert.match(server.output(), `startup failed: Cannot read ${path.join(dir, 'metadata.json')} (ENOENT). Run \`make convert\``);
});

test('a build without the resize op\'s C addon is a startup error naming it and make build', async () => {
  // The compiled server in a folder of its own, whose dist/ lacks native/.
  const root = tempDir('no-addon');
  cpSync(path.join(ROOT, 'dist/src'), path.join(root, 'dist/src'), { recursive: true });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
  const { dir } = writeTinyModel(tempDir('main-model'));
  const server = spawnLogging(process.execPath, [path.join(root, 'dist/src/main.js'), '--port', '0', '--model-dir', dir]);
  assert.is(await server.exited, 1);
  assert.match(server.output(), `startup failed: ${path.join(root, 'dist/native/resample.node')} is missing: \`make build\` compiles it`);
});

test('a bad option exits 2 with the usage; a port in use exits 1 saying so', async () => {
  const bad = start(['--port', 'http']);
  assert.is(await bad.exited, 2);
  assert.match(bad.output(), 'Invalid value "http" for --port: expected an integer from 0 to 65535.');
  assert.match(bad.output(), 'Usage: node dist/src/main.js [options]');

  const taken = await serve((_req, res) => res.end());
  try {
    const port = new URL(taken.url).port;
    const { dir } = writeTinyModel(tempDir('main-model'));
    const clash = start(['--port', port, '--model-dir', dir]);
    assert.is(await clash.exited, 1);
    assert.match(clash.output(), `startup failed: port ${port} is in use: stop the other server or choose another port (--port / PORT).`);
  } finally {
    await taken.close();
  }
});

test.run();
