// The predict CLI as a process against a live server on an ephemeral port: table, JSON, errors, exit codes.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../../src/http/app';
import type { Model } from '../../src/engine/model';
import { loadPipeline } from '../../src/engine/pipeline';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import { appConfig, memoryLogger, postImage, serve, tempDir, writeTinyModel } from '../helpers/app';
import { IMAGES } from '../helpers/fixtures';
import { info, tf } from '../helpers/runtime';

const ROOT = path.join(__dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/predict.ts');
const SQUIRREL = path.join(IMAGES, 'p02-squirrel.jpg');
const CANDIES = path.join(IMAGES, 'p17-candies.png');

let model: Model;
let server: Awaited<ReturnType<typeof serve>>;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function predict(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

type Predictions = { label: string; probability: number }[];

async function serverPredictions(file: string, topk = 3): Promise<Predictions> {
  const reply = await postImage(server.url, readFileSync(file), { fields: { topk: String(topk) } });
  return (reply.body as { predictions: Predictions }).predictions;
}

test.before(async () => {
  const { dir } = writeTinyModel(tempDir('cli-model'), { classes: 5, labels: ['daisy', 'rose', 'tulip', 'sunflower', 'dandelion'] });
  const loaded = await loadPipeline(tf, dir, { maxPixels: 36_000_000, honourExif: false });
  model = loaded.model;
  const ready = { pipeline: loaded.pipeline, health: healthInfo(model.metadata, runtimeHealth(info)) };
  const app = createApp({ config: appConfig({ maxUploadBytes: 4 * 1024 * 1024 }), logger: memoryLogger(), ready });
  server = await serve(app.koa.callback());
});

test.after(async () => {
  await server.close();
  model.dispose();
});

test('prints a table per file with the server predictions, exit 0', async () => {
  const run = await predict(['--url', server.url, '--file', SQUIRREL, '--file', CANDIES]);
  assert.is(run.code, 0, run.stderr);
  const expected: string[] = [];
  for (const file of [SQUIRREL, CANDIES]) {
    const predictions = await serverPredictions(file);
    const width = Math.max(5, ...predictions.map((p) => p.label.length));
    expected.push(file, `  rank  ${'label'.padEnd(width)}  probability`);
    predictions.forEach((p, i) => expected.push(`  ${String(i + 1).padStart(4)}  ${p.label.padEnd(width)}  ${p.probability.toFixed(4)}`));
  }
  assert.is(run.stdout, `${expected.join('\n')}\n`);
  assert.is(run.stderr, '');
});

test('--json prints one object per file with full-precision probabilities; --topk is passed on', async () => {
  const run = await predict(['--url', `${server.url}/`, '--file', SQUIRREL, '--json', '--topk', '5']);
  assert.is(run.code, 0, run.stderr);
  assert.equal(JSON.parse(run.stdout), { file: SQUIRREL, success: true, predictions: await serverPredictions(SQUIRREL, 5) });
});

test('a file the server refuses: its message and code on stderr, exit 1, the other files still printed', async () => {
  const text = path.join(IMAGES, 'bad/text.png');
  // Both files go in one request; the refused one gets its own error item.
  const run = await predict(['--url', server.url, '--file', text, '--file', SQUIRREL]);
  assert.is(run.code, 1);
  assert.is(run.stderr, `predict: ${text}: The upload is not an image the service can read; send a JPEG, PNG, GIF, BMP, WebP or TIFF file. [unsupported_format]\n`);
  const alone = await predict(['--url', server.url, '--file', text]);
  assert.is(alone.stderr, `predict: ${text}: The upload is not an image the service can read; send a JPEG, PNG, GIF, BMP, WebP or TIFF file. (HTTP 415) [unsupported_format]\n`);
  assert.match(run.stdout, `${SQUIRREL}\n  rank  label`);
  const tooMany = await predict(['--url', server.url, '--file', SQUIRREL, '--topk', '9']);
  assert.is(tooMany.code, 1);
  assert.match(tooMany.stderr, 'topk must be one integer from 1 to 5 (the class count), got "9". (HTTP 400) [bad_topk]');
});

test('a missing file and an unreachable server are clear errors, exit 1', async () => {
  const missing = await predict(['--url', server.url, '--file', '/nonexistent/x.jpg', '--json']);
  assert.is(missing.code, 1);
  assert.equal(JSON.parse(missing.stdout), { file: '/nonexistent/x.jpg', success: false, error: { code: 'file_unreadable', message: 'cannot read /nonexistent/x.jpg (ENOENT)' } });

  const closed = await serve((_req, res) => res.end());
  const url = closed.url;
  await closed.close();
  const down = await predict(['--url', url, '--file', SQUIRREL]);
  assert.is(down.code, 1);
  assert.is(down.stderr, `predict: cannot reach the server at ${url}/predict (ECONNREFUSED); is it running? Start it with \`make serve\` or pass --url.\n`);
});

test('usage errors exit 2 with the usage; --help exits 0', async () => {
  const none = await predict([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, 'predict: no --file given\nUsage: predict --file img.jpg');
  const topk = await predict(['--file', SQUIRREL, '--topk', 'all']);
  assert.is(topk.code, 2);
  assert.match(topk.stderr, 'predict: --topk must be a positive integer, got "all"');
  const url = await predict(['--file', SQUIRREL, '--url', 'localhost:5012']);
  assert.is(url.code, 2);
  assert.match(url.stderr, '--url must be an http(s) URL');
  const help = await predict(['--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, 'Usage: predict --file img.jpg [--file more.jpg ...] [--url http://localhost:5012]');
});

test.run();
