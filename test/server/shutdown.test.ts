// Shutdown of the server process: SIGTERM drains (health 503 "stopping" while it still accepts and serves), then
// closes the listener and answers every request it holds, with no connection reset; SIGINT skips the drain.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rawRequest, request, tempDir, writeTinyModel } from '../helpers/app';
import { photoPaths } from '../helpers/fixtures';
import { spawnLogging, type LoggingProcess } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const DRAIN_MS = 2000;
const PHOTOS = photoPaths().map((f) => readFileSync(f));

function start(args: string[]): LoggingProcess {
  const { dir } = writeTinyModel(tempDir('shutdown-model'));
  return spawnLogging(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'src/main.ts'), '--device', 'cpu', '--port', '0', '--model-dir', dir, ...args], {
    cwd: ROOT,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  });
}

async function withServer(args: string[], body: (server: LoggingProcess, url: string) => Promise<void>): Promise<void> {
  const server = start(args);
  try {
    const { url } = (await server.logged('listening (model loading)')) as { url: string };
    await server.logged('ready');
    await body(server, url);
  } finally {
    await server.kill();
  }
}

/** POSTs a photo on a fresh connection, the whole body at once. */
const upload = (url: string, bytes: Buffer) => rawRequest(`${url}/predict`, 'POST', bytes);

test('SIGTERM with 40 uploads in flight: drain (health 503 stopping, still serving), then every one answered, none reset, exit 0', async () => {
  await withServer(['--shutdown-drain-ms', String(DRAIN_MS)], async (server, url) => {
    const uploads = Array.from({ length: 40 }, (_, i) => upload(url, PHOTOS[i % PHOTOS.length]));
    let answered = 0;
    for (const u of uploads) void u.reply.then(() => (answered += 1));
    // Connected means accepted by the kernel: some may still wait in the listen backlog when the signal lands.
    await Promise.all(uploads.map((u) => u.connected));
    server.child.kill('SIGTERM');
    const signalled = Date.now();
    assert.ok(answered < uploads.length, 'uploads were in flight at SIGTERM');

    const draining = await server.logged('draining: health reports stopping, new requests are still served');
    assert.equal([draining.signal, draining.drain_ms], ['SIGTERM', DRAIN_MS]);
    const health = await request(`${url}/health`);
    assert.is(health.status, 503);
    assert.is((health.body as { status: string }).status, 'stopping');
    const late = await upload(url, PHOTOS[0]).reply;
    assert.equal('status' in late ? late.status : late, 200, 'a request arriving during the drain is served');

    const replies = await Promise.all(uploads.map((u) => u.reply));
    const failed = replies.filter((r) => 'error' in r || r.status !== 200);
    assert.equal(failed, [], `every upload is answered 200 (${replies.length - failed.length} of ${replies.length})`);
    for (const reply of replies) assert.is((JSON.parse((reply as { body: string }).body) as { success: boolean }).success, true);

    await server.logged('shutting down: finishing accepted requests');
    assert.ok(Date.now() - signalled >= DRAIN_MS - 100, 'the listener stays open for the drain');
    const refused = await upload(url, PHOTOS[0]).reply;
    assert.equal(refused, { error: 'ECONNREFUSED' }, 'after the drain the listener is closed');
    assert.is(await server.exited, 0, server.output());
    assert.is((await server.logged('stopped')).clean, true);
  });
});

test('SIGINT (a terminal\'s Ctrl-C) skips the drain: the listener closes at once, the request in flight is answered, exit 0', async () => {
  await withServer(['--shutdown-drain-ms', '60000'], async (server, url) => {
    const inFlight = upload(url, PHOTOS[9]);
    await inFlight.connected;
    server.child.kill('SIGINT');
    const stopping = await server.logged('shutting down: finishing accepted requests');
    assert.is(stopping.signal, 'SIGINT');
    assert.equal(await inFlight.reply.then((r) => ('status' in r ? r.status : r)), 200);
    assert.is(await server.exited, 0, server.output());
    assert.not.match(server.output(), 'draining');
  });
});

test.run();
