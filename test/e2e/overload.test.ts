// Overload with a low in-flight limit: 128 clients against a limit of 16 on the real engine. Every request is
// either answered in full or refused with 503 overloaded and Retry-After, and the refusals come fast (before the
// upload is read), far sooner than a served request; the served answers are the ones a lone request gets.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { convertedDemoModel, postImage } from '../helpers/app';
import { IMAGES } from '../helpers/fixtures';
import { serveMallocEnv, serveNodeFlags, spawnLogging } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');

const PHOTOS = readdirSync(IMAGES).filter((f) => /^p\d+.*\.(jpg|png)$/.test(f)).sort().slice(0, 8).map((f) => readFileSync(path.join(IMAGES, f)));
const CLIENTS = 128;
const ROUNDS = 3;

const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))];
const median = (values: number[]) => quantile(values, 0.5);

test(`${CLIENTS} clients against --max-in-flight 16: 200 or a fast 503 overloaded, nothing else`, async () => {
  // A server process of its own, as deployed: the clients' event loop here must not delay its answers.
  const process_ = spawnLogging(process.execPath, [...serveNodeFlags(), '-r', 'tsx/cjs', path.join(ROOT, 'src/main.ts'), '--device', 'cpu', '--port', '0',
    '--model-dir', convertedDemoModel(), '--max-in-flight', '16'], { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...serveMallocEnv() } });
  try {
    const { url } = (await process_.logged('listening (model loading)')) as { url: string };
    await process_.logged('ready');
    const server = { url };
    const alone: unknown[] = [];
    for (const bytes of PHOTOS) alone.push((await postImage(server.url, bytes)).body);
    const served: number[] = [];
    const refused: number[] = [];
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        for (let round = 0; round < ROUNDS; round++) {
          const which = (client + round) % PHOTOS.length;
          const started = performance.now();
          const reply = await postImage(server.url, PHOTOS[which]);
          const ms = performance.now() - started;
          if (reply.status === 200) {
            assert.equal(reply.body, alone[which], 'a served request gets the lone answer');
            served.push(ms);
          } else {
            assert.is(reply.status, 503, JSON.stringify(reply.body));
            assert.is((reply.body as { error: { code: string } }).error.code, 'overloaded');
            assert.is(reply.headers.get('retry-after'), '1');
            refused.push(ms);
          }
        }
      }),
    );
    // The server's own time per request, from its log lines: the clients' times here also hold this process's
    // 128 connections and uploads competing for the same two cores.
    const logged = process_.output().split('\n').filter((l) => l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as { path: string; status: number; ms: number; upload_bytes?: number });
    const lines = (status: number) => logged.filter((l) => l.path === '/predict' && l.status === status);
    const serverMs = (status: number) => lines(status).map((l) => l.ms);
    process.stdout.write(`\n${served.length} served (client median ${median(served).toFixed(0)} ms, server median ${median(serverMs(200)).toFixed(1)} ms), ` +
      `${refused.length} refused (client median ${median(refused).toFixed(0)} ms, server p90 ${quantile(serverMs(503), 0.9).toFixed(1)} ms, p99 ${quantile(serverMs(503), 0.99).toFixed(1)} ms)\n`);
    assert.is(served.length + refused.length, CLIENTS * ROUNDS);
    assert.ok(served.length >= 16 && refused.length > 0, 'both outcomes occur');
    assert.is(serverMs(503).length, refused.length, 'every refusal logged');
    assert.ok(lines(503).every((l) => l.upload_bytes === undefined) && lines(200).every((l) => l.upload_bytes! > 0), 'a refusal reads no upload');
    // A refusal is a few microtasks: p90 0.2-0.3 ms against a served median of 180-300 ms here. The last percent
    // waits for a core (two engine threads and this process's 128 clients share two) and measured 1-16 ms, which is
    // no property of the server: a fast machine's served median (73 ms in CI) came within a tenth of it.
    assert.ok(quantile(serverMs(503), 0.9) * 10 < median(serverMs(200)), 'the server refuses in a small fraction of a served request\'s time');
  } finally {
    await process_.kill();
  }
});

test.run();
