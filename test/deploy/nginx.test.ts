// deploy/nginx/nginx.conf for real: Debian's nginx, run with the shipped file (ports and paths substituted) in front
// of two service processes on loopback; a closed-loop load during which one process is killed outright, and no
// client sees an error. nginx comes from `make test` ($(STAMPS)/nginx in the Makefile).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closedLoop, loadUploads, summarize } from '../../bench/load';
import { freePort } from '../../bench/server-process';
import { tempDir, writeTinyModel } from '../helpers/app';
import { IMAGES, photoPaths } from '../helpers/fixtures';
import { spawnLogging, type LoggingProcess } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const SHIPPED = path.join(ROOT, 'deploy/nginx/nginx.conf');
const CLIENTS = 24;
const LOAD_SECONDS = 10;
const KILL_AFTER_MS = 4000;

function nginxBinary(): string {
  const found = ['/usr/sbin/nginx', ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'nginx'))].find((f) => existsSync(f));
  if (found === undefined) {
    throw new Error("nginx is not installed: `make test` installs Debian's nginx first (the $(STAMPS)/nginx step of the Makefile); or run `apt-get install nginx` and run this test again");
  }
  return found;
}

/** The shipped configuration with this test's ports, and its pid, logs and temp files under `prefix`. */
function generatedConfig(prefix: string, port: number, upstreams: [number, number]): string {
  const substitutions: [string, string][] = [
    ['listen 80;', `listen 127.0.0.1:${port};`],
    ['127.0.0.1:5012', `127.0.0.1:${upstreams[0]}`],
    ['127.0.0.1:5013', `127.0.0.1:${upstreams[1]}`],
    ['pid /run/nginx.pid;', `pid ${prefix}/nginx.pid;`],
    ['error_log /var/log/nginx/error.log warn;', 'error_log stderr warn;'],
    ['/var/log/nginx/', `${prefix}/`],
    ['/var/lib/nginx/', `${prefix}/`],
  ];
  let config = readFileSync(SHIPPED, 'utf8');
  for (const [from, to] of substitutions) {
    assert.ok(config.includes(from), `deploy/nginx/nginx.conf no longer contains "${from}": update this test's substitutions`);
    config = config.replaceAll(from, to);
  }
  return config;
}

function startService(modelDir: string, port: number): LoggingProcess {
  return spawnLogging(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'src/main.ts'), '--device', 'cpu', '--threads', '1', '--port', String(port), '--model-dir', modelDir], {
    cwd: ROOT,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  });
}

interface Setup {
  url: string;
  prefix: string;
  services: LoggingProcess[];
  ports: [number, number];
  nginx: LoggingProcess;
}

let setup: Setup | undefined;
const running: LoggingProcess[] = [];

test.before(async () => {
  const binary = nginxBinary();
  const { dir } = writeTinyModel(tempDir('nginx-model'));
  const ports: [number, number] = [await freePort(), await freePort()];
  const services = ports.map((port) => startService(dir, port));
  running.push(...services);
  await Promise.all(services.map((s) => s.logged('ready')));

  // Its own folder, readable by nginx's worker user (www-data when the test runs as root).
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'torch-serve-nginx-'));
  chmodSync(prefix, 0o755);
  const port = await freePort();
  writeFileSync(path.join(prefix, 'nginx.conf'), generatedConfig(prefix, port, ports));
  const nginx = spawnLogging(binary, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;']);
  running.push(nginx);
  const url = `http://127.0.0.1:${port}`;
  let exited: number | null | undefined;
  void nginx.exited.then((code) => (exited = code));
  for (const deadline = Date.now() + 20_000; ; await sleep(100)) {
    if (exited !== undefined) throw new Error(`nginx exited (${exited}) at startup:\n${nginx.output()}`);
    if (Date.now() > deadline) throw new Error(`nginx did not answer within 20 s:\n${nginx.output()}`);
    const status = await fetch(`${url}/health`).then((r) => r.status, () => 0);
    if (status === 200) break;
  }
  setup = { url, prefix, services, ports, nginx };
});

test.after(async () => {
  for (const p of running.reverse()) await p.kill();
  if (setup) rmSync(setup.prefix, { recursive: true, force: true });
});

/** Sends headers only (no body) and resolves with the answer nginx gives to them. */
function headersOnly(url: string, headers: http.OutgoingHttpHeaders): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false, headers });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

test('through nginx: X-Request-Id passed on (nginx makes one when the client sent none); an upload over the limit gets the JSON 413', async () => {
  const { url } = setup!;
  const photo = readFileSync(path.join(IMAGES, 'p04-tree.jpg'));
  const form = new FormData();
  form.append('image', new Blob([photo]), 'p04-tree.jpg');
  const mine = await fetch(`${url}/predict`, { method: 'POST', body: form, headers: { 'x-request-id': 'client-7.a' } });
  assert.equal([mine.status, mine.headers.get('x-request-id')], [200, 'client-7.a']);
  const theirs = await fetch(`${url}/predict`, { method: 'POST', body: form });
  assert.is(theirs.status, 200);
  assert.match(String(theirs.headers.get('x-request-id')), /^[0-9a-f]{32}$/, "nginx's $request_id, which the service kept");

  const limit = 20 * 1024 * 1024 + 64 * 1024;
  const over = await headersOnly(`${url}/predict`, { 'content-type': 'multipart/form-data; boundary=x', 'content-length': limit + 1 });
  assert.is(over.status, 413);
  assert.is((JSON.parse(over.body) as { error: { code: string } }).error.code, 'file_too_large');
  // At the limit nginx passes the upload on; a file of more than 20 MiB is then the service's own 413.
  const body = Buffer.alloc(limit, 0x20);
  const atLimit = await fetch(`${url}/predict`, { method: 'POST', body, headers: { 'content-type': 'multipart/form-data; boundary=x' } });
  assert.not.equal(atLimit.status, 413, 'a body of exactly 20 MiB + 64 KiB is not refused by nginx');
});

test(`${CLIENTS} clients for ${LOAD_SECONDS} s through nginx, one service process SIGKILLed after ${KILL_AFTER_MS / 1000} s: no client-visible error`, async () => {
  const { url, prefix, services, ports } = setup!;
  const uploads = await loadUploads(photoPaths());
  const victim = services[1];
  let killedAt = 0;
  const started = Date.now();
  const timer = setTimeout(() => {
    victim.child.kill('SIGKILL');
    killedAt = Date.now() - started;
  }, KILL_AFTER_MS);
  const sample = await closedLoop(new URL(`${url}/predict`), uploads, { concurrency: CLIENTS, requests: Number.MAX_SAFE_INTEGER, maxSeconds: LOAD_SECONDS, offset: 0 });
  clearTimeout(timer);
  const result = summarize(CLIENTS, [sample]);
  assert.is(await victim.exited, null, 'the victim was killed by the signal');

  const log = readFileSync(path.join(prefix, 'torch-serve.access.log'), 'utf8').split('\n').filter((l) => l.includes('"POST /predict'));
  const upstreams = log.map((l) => / upstream=(.*?) upstream_status=/.exec(l)?.[1] ?? '');
  const victimAddress = `127.0.0.1:${ports[1]}`;
  const retried = upstreams.filter((u) => u.includes(', ')).length;
  const servedByVictim = upstreams.filter((u) => u === victimAddress).length;
  console.log(
    `  nginx: ${result.requests} requests at ${CLIENTS} clients in ${result.seconds.toFixed(1)} s (${result.throughput.toFixed(1)}/s, p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms), ` +
      `${result.errors} client-visible errors; the killed process (at ${(killedAt / 1000).toFixed(1)} s) had answered ${servedByVictim}, ${retried} requests were retried on the other`,
  );
  assert.is(result.errors, 0, `client-visible errors, the first: ${result.firstError}`);
  assert.ok(killedAt > 0, 'the process was killed during the load');
  assert.ok(result.requests >= 100, `enough requests to mean something: ${result.requests}`);
  assert.ok(servedByVictim > 0, 'nginx balanced over both processes before the kill');
  assert.ok(retried > 0, 'the failover path was taken (requests retried on the surviving process)');
});

test.run();
