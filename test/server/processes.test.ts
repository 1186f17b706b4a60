// Several service processes on one port (--workers, src/cluster.ts): each answers for itself, a process killed
// outright is replaced while the other keeps serving, and SIGTERM to the primary drains every process and exits 0.
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rawRequest, tempDir, writeTinyModel } from '../helpers/app';
import { photoPaths } from '../helpers/fixtures';
import { spawnLogging, type LoggingProcess } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const DRAIN_MS = 1500;
const PHOTOS = photoPaths().map((f) => readFileSync(f));

type Line = Record<string, unknown>;

function start(args: string[]): LoggingProcess {
  return spawnLogging(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'src/main.ts'), '--device', 'cpu', '--port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  });
}

function lines(server: LoggingProcess, msg: string): Line[] {
  return server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.msg === msg);
}

/** Waits until the server has logged `msg` `count` times; fails with its output if it exits first. */
async function loggedTimes(server: LoggingProcess, msg: string, count: number, timeoutMs = 120_000): Promise<Line[]> {
  let exited = false;
  void server.exited.then(() => (exited = true));
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline && !exited; await sleep(50)) {
    const found = lines(server, msg);
    if (found.length >= count) return found;
  }
  throw new Error(`"${msg}" not logged ${count} times (${exited ? 'the process exited' : 'timed out'}):\n${server.output()}`);
}

const send = rawRequest;

interface Health {
  status: string;
  process: { pid: number; worker: number };
  engine: { threads: number };
  runtime: { inter_op_threads: number };
}

async function health(url: string): Promise<Health> {
  const reply = await send(`${url}/health`, 'GET').reply;
  if (!('status' in reply) || reply.status !== 200) throw new Error(`/health: ${JSON.stringify(reply)}`);
  return JSON.parse(reply.body) as Health;
}

/** The processes that answer /health over `tries` fresh connections, by pid. */
async function answering(url: string, tries: number): Promise<Map<number, Health>> {
  const seen = new Map<number, Health>();
  for (let i = 0; i < tries; i++) {
    const h = await health(url);
    seen.set(h.process.pid, h);
  }
  return seen;
}

async function predictOk(url: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const reply = await send(`${url}/predict`, 'POST', PHOTOS[i % PHOTOS.length]).reply;
    assert.equal('status' in reply ? reply.status : reply, 200, `request ${i + 1} of ${count}`);
  }
}

test('--workers 2: two processes answer with their share of the cores; one killed is replaced while the other serves; SIGTERM drains both, exit 0', async () => {
  const { dir } = writeTinyModel(tempDir('processes-model'));
  const server = start(['--workers', '2', '--model-dir', dir, '--shutdown-drain-ms', String(DRAIN_MS)]);
  try {
    const [listening] = await loggedTimes(server, 'listening', 2);
    const url = listening.url as string;
    await loggedTimes(server, 'worker process serving', 2);

    const first = await answering(url, 6);
    const pids = [...first.keys()];
    assert.is(pids.length, 2, `two processes answer /health: ${pids.join(', ')}`);
    assert.not.ok(pids.includes(server.child.pid!), 'the primary serves nothing itself');
    const share = Math.max(1, Math.floor(os.availableParallelism() / 2));
    for (const h of first.values()) {
      assert.equal([h.engine.threads, h.runtime.inter_op_threads], [share, -1], `each process runs ${share} engine threads, each running its own sessions`);
    }
    for (const l of lines(server, 'ready')) assert.ok(typeof l.pid === 'number' && typeof l.worker === 'number', 'log lines say which process wrote them');

    const [victim, survivor] = pids;
    process.kill(victim, 'SIGKILL');
    const died = await server.logged('worker process exited; starting a replacement');
    assert.equal([died.worker_pid, died.signal], [victim, 'SIGKILL']);
    // While the replacement loads, the survivor answers everything.
    await predictOk(url, 10);
    await loggedTimes(server, 'worker process serving', 3);
    const after = [...(await answering(url, 6)).keys()].sort();
    assert.is(after.length, 2, 'two processes answer again');
    assert.ok(after.includes(survivor) && !after.includes(victim), `the survivor and a new process answer: ${after.join(', ')}`);
    await predictOk(url, 6);

    const uploads = Array.from({ length: 24 }, (_, i) => send(`${url}/predict`, 'POST', PHOTOS[i % PHOTOS.length]));
    await Promise.all(uploads.map((u) => u.connected));
    server.child.kill('SIGTERM');
    await loggedTimes(server, 'draining: health reports stopping, new requests are still served', 2);
    const stopping = await send(`${url}/health`, 'GET').reply;
    assert.equal('status' in stopping ? [stopping.status, (JSON.parse(stopping.body) as { status: string }).status] : stopping, [503, 'stopping']);
    const late = await send(`${url}/predict`, 'POST', PHOTOS[0]).reply;
    assert.equal('status' in late ? late.status : late, 200, 'a request arriving during the drain is served');
    const replies = await Promise.all(uploads.map((u) => u.reply));
    const failed = replies.filter((r) => !('status' in r) || r.status !== 200);
    assert.equal(failed, [], `every upload in flight at SIGTERM is answered 200 (${replies.length - failed.length} of ${replies.length})`);

    assert.is(await server.exited, 0, server.output());
    assert.is(lines(server, 'stopped').filter((l) => l.clean === true).length, 2, 'both processes stopped cleanly');
    assert.equal(lines(server, 'all worker processes exited').map((l) => l.code), [0]);
    console.log(`  processes: pids ${pids.join(', ')}; ${victim} killed, replaced by ${after.find((p) => p !== survivor)}; ${replies.length} uploads in flight at SIGTERM, all 200`);
  } finally {
    await server.kill();
  }
});

test('--workers 2 with no model: each process says why, the primary stops and exits 1', async () => {
  const dir = tempDir('processes-no-model');
  const server = start(['--workers', '2', '--model-dir', dir]);
  try {
    assert.is(await server.exited, 1, server.output());
    assert.match(server.output(), `startup failed: Cannot read ${path.join(dir, 'metadata.json')} (ENOENT). Run \`make convert\``);
    assert.equal(lines(server, 'worker process failed at startup (its log says why); stopping the others').length, 1);
    assert.equal(lines(server, 'all worker processes exited').map((l) => l.code), [1]);
  } finally {
    await server.kill();
  }
});

test.run();
