// The container image for real (Dockerfile, docs/deploy.md): `make image` builds it, or reuses podman's layer cache;
// a container on a read-only root serves the web page and answers a photo from test/fixtures/images as the server on
// this machine does with the same model, runs as its non-root user, passes its own HEALTHCHECK and exits cleanly on SIGTERM; a model mounted
// over the baked one is served instead. podman, runc and debootstrap come from `make test` ($(STAMPS)/podman in the
// Makefile); the tests are skipped, with the reason printed, only where podman cannot run at all.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort } from '../../bench/server-process';
import { postImage, request } from '../helpers/app';
import { serveMallocEnv, serveNodeFlags, spawnLogging } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const PHOTO = readFileSync(path.join(ROOT, 'test/fixtures/images/p29-marigold.jpg'));
const CONTAINER_PORT = 5012;
const NON_ROOT_UID = '10001';
// Model load and warm-up, with room for a machine busy with other tests.
const READY_WITHIN_MS = 180_000;

/** IMAGE, PODMAN and PODMAN_ULIMITS as `make image` uses them. */
function imageVars(): Record<string, string> {
  const out = spawnSync('make', ['-s', '--no-print-directory', 'image-vars'], { cwd: ROOT, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`make image-vars failed: ${out.stderr}`);
  return Object.fromEntries(out.stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

const VARS = imageVars();
const PODMAN = VARS.PODMAN.split(/\s+/);
const ULIMITS = VARS.PODMAN_ULIMITS.split(/\s+/);

function whyPodmanCannotRun(): string | undefined {
  const info = spawnSync(PODMAN[0], [...PODMAN.slice(1), 'info'], { encoding: 'utf8' });
  if (info.error) return `${PODMAN[0]} cannot be started (${info.error.message}); \`make test\` installs it`;
  if (info.status !== 0) return `\`podman info\` fails here: ${info.stderr.trim().split('\n').pop()}`;
  return undefined;
}

interface Run {
  code: number | null;
  output: string;
}

/** Runs a command to its end without blocking the event loop, so that the runner's time limit still applies. */
function run(command: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const podman = (...args: string[]) => run([...PODMAN, ...args]);

async function podmanOk(...args: string[]): Promise<string> {
  const result = await podman(...args);
  assert.is(result.code, 0, `podman ${args.join(' ')} exited ${result.code}:\n${result.output}`);
  // Without systemd podman cannot schedule the HEALTHCHECK's timer and says so on stderr; the check itself runs.
  return result.output
    .split('\n')
    .filter((line) => !line.includes('systemd connection'))
    .join('\n');
}

/** Starts the image detached; `extra` goes before the image name. */
async function startContainer(name: string, port: number, extra: string[] = []): Promise<string> {
  await podmanOk('run', '--detach', '--name', name, ...ULIMITS, '--read-only', '--tmpfs', '/tmp', '--publish', `127.0.0.1:${port}:${CONTAINER_PORT}`, ...extra, VARS.IMAGE);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_WITHIN_MS;
  for (;;) {
    const health = await request(`${url}/health`).catch(() => undefined);
    if (health?.status === 200) return url;
    const state = (await podmanOk('inspect', '--format', '{{.State.Status}}', name)).trim();
    if (state !== 'running' || Date.now() > deadline) {
      assert.unreachable(`container ${name} is ${state}, /health ${health?.status ?? 'unreachable'}; its log:\n${(await podman('logs', name)).output}`);
    }
    await sleep(500);
  }
}

interface Prediction {
  label: string;
  probability: number;
}

async function predict(url: string): Promise<Prediction[]> {
  const reply = await postImage(url, PHOTO, { filename: 'p29-marigold.jpg' });
  assert.is(reply.status, 200, JSON.stringify(reply.body));
  const body = reply.body as { success: boolean; predictions: Prediction[] };
  assert.is(body.success, true);
  return body.predictions;
}

/** The same top-3 labels in the same order, and the same probabilities within float noise. */
function assertSameAnswer(actual: Prediction[], expected: Prediction[], what: string): void {
  assert.equal(actual.map((p) => p.label), expected.map((p) => p.label), `${what}: labels`);
  actual.forEach((p, i) => assert.ok(Math.abs(p.probability - expected[i].probability) < 1e-6, `${what}: ${p.probability} vs ${expected[i].probability}`));
}

/** The server on this machine, as `make serve` runs it. */
async function hostAnswer(modelDir: string): Promise<Prediction[]> {
  const port = await freePort();
  const server = spawnLogging(process.execPath, [...serveNodeFlags(), '-r', 'tsx/cjs', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...serveMallocEnv(), MODEL_DIR: modelDir, PORT: String(port), DEVICE: 'cpu', TF_CPP_MIN_LOG_LEVEL: '2' },
  });
  try {
    await server.logged('ready');
    return await predict(`http://127.0.0.1:${port}`);
  } finally {
    await server.kill();
  }
}

// Readable by the image's user, for the mounted model.
const work = mkdtempSync(path.join(os.tmpdir(), 'container-test-'));
chmodSync(work, 0o755);
const baked = path.join(work, 'baked');
let bakedAnswer: Prediction[] | undefined;

const cannotRun = whyPodmanCannotRun();
const maybe = cannotRun === undefined ? test : test.skip;
if (cannotRun !== undefined) console.log(`  container: skipped, podman cannot run here: ${cannotRun}`);

maybe('make image builds the image (or reuses its cached layers) with its runtime settings', async () => {
  const started = Date.now();
  const build = await run(['make', '--no-print-directory', 'image']);
  assert.is(build.code, 0, `make image exited ${build.code}:\n${build.output.slice(-8000)}`);
  const [image] = JSON.parse(await podmanOk('image', 'inspect', VARS.IMAGE)) as {
    Size: number;
    Config: { User: string; Env: string[]; Cmd: string[]; ExposedPorts: Record<string, unknown>; StopSignal: string };
    Healthcheck?: { Test: string[] };
  }[];
  const env = image.Config.Env;
  assert.ok(env.includes('HOST=0.0.0.0'), `the image listens beyond loopback: ${env.join(' ')}`);
  for (const [name, value] of Object.entries(serveMallocEnv())) assert.ok(env.includes(`${name}=${value}`), `the image sets make serve's ${name}=${value}`);
  assert.equal(image.Config.Cmd, ['node', ...serveNodeFlags(), 'dist/src/main.js'], "the image starts node with make serve's flags");
  assert.ok(`${CONTAINER_PORT}/tcp` in image.Config.ExposedPorts, 'EXPOSE 5012');
  assert.is(image.Config.StopSignal, 'SIGTERM');
  assert.is(image.Config.User, `${NON_ROOT_UID}:${NON_ROOT_UID}`);
  assert.equal(image.Healthcheck?.Test, ['CMD', 'node', 'deploy/container/healthcheck.js'], 'HEALTHCHECK is defined (podman keeps it with --format docker)');
  console.log(`  container: make image took ${((Date.now() - started) / 1000).toFixed(0)} s; ${VARS.IMAGE} is ${(image.Size / 2 ** 20).toFixed(0)} MiB`);
});

maybe('the container answers a photo as this machine does, as non-root on a read-only root, and stops cleanly on SIGTERM', async () => {
  const name = `torch-serve-node-test-${process.pid}`;
  try {
    const url = await startContainer(name, await freePort());
    const health = (await request(`${url}/health`)).body as { status: string; runtime: { backend: string; device: string } };
    assert.is(health.status, 'ok');
    assert.is(health.runtime.backend, 'tensorflow');
    // The web page and the API's description ship in the image.
    const page = await fetch(`${url}/`);
    assert.is(page.status, 200, 'the image serves the page at /');
    assert.is(await page.text(), readFileSync(path.join(ROOT, 'src/web/index.html'), 'utf8'));
    assert.is((await fetch(`${url}/assets/page.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.is((await fetch(`${url}/openapi.json`)).status, 200);
    const answer = await predict(url);
    console.log(`  container: p29-marigold.jpg -> ${JSON.stringify(answer)}`);
    assert.is(answer.length, 3);
    assert.ok(answer.every((p, i) => typeof p.label === 'string' && p.probability > 0 && p.probability <= 1 && (i === 0 || p.probability <= answer[i - 1].probability)), JSON.stringify(answer));

    // The same model on this machine's server: the same answer to float noise (the image's libtensorflow is
    // stripped and its Node is another build).
    await podmanOk('cp', `${name}:/app/model_tfjs`, baked);
    assertSameAnswer(answer, await hostAnswer(baked), 'container vs this machine');
    bakedAnswer = answer;

    assert.is((await podmanOk('exec', name, 'id', '-u')).trim(), NON_ROOT_UID, 'the server runs as the image user');
    assert.match(await podmanOk('exec', name, 'cat', '/proc/1/status'), new RegExp(`^Uid:\\s+${NON_ROOT_UID}\\s`, 'm'), 'PID 1 (node) is not root');
    const check = await podman('healthcheck', 'run', name);
    assert.is(check.code, 0, `the image's HEALTHCHECK fails on a ready server:\n${check.output}`);

    const stopping = Date.now();
    await podmanOk('stop', '--time', '60', name);
    const seconds = (Date.now() - stopping) / 1000;
    const [state] = JSON.parse(await podmanOk('inspect', name)) as { State: { ExitCode: number } }[];
    const log = (await podman('logs', name)).output;
    assert.is(state.State.ExitCode, 0, `exit code after SIGTERM; log:\n${log}`);
    assert.ok(seconds < 60, `stopped by SIGTERM within podman's timeout, not killed (${seconds} s)`);
    assert.match(log, /"msg":"stopped"/, 'the server logged its clean stop');
    console.log(`  container: ready, answered, stopped on SIGTERM with exit 0 in ${seconds.toFixed(1)} s (the drain included)`);
  } finally {
    await podman('rm', '--force', name);
  }
});

maybe('a model mounted read-only over /app/model_tfjs is served instead of the baked one', async () => {
  assert.ok(bakedAnswer, 'the previous test copied the baked model out');
  // The baked model with class names: answers carrying them come from the mounted copy.
  const mounted = path.join(work, 'mounted');
  cpSync(baked, mounted, { recursive: true });
  const metadataFile = path.join(mounted, 'metadata.json');
  const metadata = JSON.parse(readFileSync(metadataFile, 'utf8')) as { num_classes: number; labels: string[] | null };
  metadata.labels = Array.from({ length: metadata.num_classes }, (_, i) => `mounted-${i}`);
  writeFileSync(metadataFile, JSON.stringify(metadata));
  const name = `torch-serve-node-test-mount-${process.pid}`;
  try {
    const url = await startContainer(name, await freePort(), ['--volume', `${mounted}:/app/model_tfjs:ro`]);
    const expected = bakedAnswer.map((p) => ({ ...p, label: `mounted-${p.label}` }));
    assertSameAnswer(await predict(url), expected, 'mounted model');
  } finally {
    await podman('rm', '--force', name);
  }
});

test.after(() => rmSync(work, { recursive: true, force: true }));

test.run();
