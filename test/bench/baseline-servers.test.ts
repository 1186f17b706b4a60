// Smoke test of the benchmark's baselines: the Flask replica and the onnxruntime-node server answer as the original did;
// the ceiling's servers answer as they claim to.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadUploads, post, type Upload } from '../../bench/load';
import { freePort, ServerProcess } from '../../bench/server-process';
import { convertedDemoModel } from '../helpers/app';
import { image } from '../helpers/fixtures';
import { tf } from '../helpers/runtime';
import { Model } from '../../src/engine/model';
import { createPipeline, createStages } from '../../src/engine/pipeline';

const ROOT = path.resolve(__dirname, '../..');
const PHOTO = image('p01-sunset.jpg');
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

interface Running {
  server: ServerProcess;
  url: URL;
}

interface Fixture {
  upload: Upload;
  flask: Running;
  ort: Running;
}

const test = suite('bench baselines');
let fixture: Promise<Fixture> | undefined;
const started: ServerProcess[] = [];
const tmpDirs: string[] = [];

async function start(command: string, args: string[], name: string, dir: string, upload: Upload): Promise<Running> {
  const port = await freePort();
  const url = new URL(`http://127.0.0.1:${port}/predict`);
  const server = ServerProcess.start({ command, args: [...args, '--port', String(port)], logFile: path.join(dir, `${name}.log`) });
  started.push(server);
  await server.waitReady(async () => (await post(url, upload, new http.Agent())).status === 200, 60);
  return { server, url };
}

/** Raw POST without a file, to see what each server says to a request that forgot the `image` field. */
async function postWithoutImage(url: URL): Promise<{ status: number; json: unknown }> {
  const response = await fetch(url, { method: 'POST', body: new FormData() });
  return { status: response.status, json: await response.json() };
}

/** The original's exact answer: `{success: true, predictions: [3 x {label: "<index>", probability}]}`, sorted. */
function assertOriginalShape(json: unknown): { label: string; probability: number }[] {
  const answer = json as { success: unknown; predictions: { label: string; probability: number }[] };
  assert.equal(Object.keys(answer).sort(), ['predictions', 'success']);
  assert.is(answer.success, true);
  assert.is(answer.predictions.length, 3);
  for (const p of answer.predictions) {
    assert.equal(Object.keys(p).sort(), ['label', 'probability']);
    assert.match(p.label, /^\d+$/);
    assert.ok(Number(p.label) < 102, `label ${p.label} is not a class index of the 102-class head`);
    assert.ok(p.probability > 0 && p.probability <= 1, `probability ${p.probability} outside (0, 1]`);
  }
  const probabilities = answer.predictions.map((p) => p.probability);
  assert.equal(probabilities, [...probabilities].sort((a, b) => b - a), 'predictions are not in descending order');
  return answer.predictions;
}

/**
 * Model files and both servers, made once on first use. Not in test.before: uvu 0.5 swallows an error thrown
 * there and still exits 0, while an error thrown inside a test fails the run.
 */
function setUp(): Promise<Fixture> {
  fixture ??= (async () => {
    try {
      execFileSync(PYTHON, ['-c', 'import flask'], { stdio: 'ignore' });
    } catch {
      throw new Error(`Flask is missing from ${PYTHON}: run \`make .cache/stamps/flask\` (installs Debian's python3-flask)`);
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
    tmpDirs.push(dir);
    execFileSync(PYTHON, [path.join(ROOT, 'bench/fixture_model.py'), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    const [upload] = await loadUploads([PHOTO]);
    const [flask, ort] = await Promise.all([
      start(PYTHON, [path.join(ROOT, 'bench/flask_server.py'), '--checkpoint', path.join(dir, 'best.pth')], 'flask', dir, upload),
      start(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'bench/ort-server.ts'), '--model', path.join(dir, 'model.onnx')], 'ort', dir, upload),
    ]);
    return { upload, flask, ort };
  })();
  return fixture;
}

test.after(async () => {
  await Promise.all(started.map((server) => server.stop()));
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

test('both answer a photo with the original JSON shape and the same top-1 class of the same weights', async () => {
  const { flask: flaskServer, ort: ortServer, upload } = await setUp();
  const answers = [];
  for (const running of [flaskServer, ortServer]) {
    const response = await fetch(running.url, {
      method: 'POST',
      headers: { 'content-type': upload.contentType },
      body: upload.body,
    });
    assert.is(response.status, 200);
    answers.push(assertOriginalShape(await response.json()));
  }
  const [flask, ort] = answers;
  assert.is(ort[0].label, flask[0].label);
  assert.ok(Math.abs(ort[0].probability - flask[0].probability) < 0.01, `top-1 ${ort[0].probability} vs ${flask[0].probability}`);
});

test('a request without an image: Flask replica answers {"success": false} as the original, ort a 400 that says why', async () => {
  const servers = await setUp();
  const flask = await postWithoutImage(servers.flask.url);
  assert.is(flask.status, 200);
  assert.equal(flask.json, { success: false });
  const ort = await postWithoutImage(servers.ort.url);
  assert.is(ort.status, 400);
  assert.match((ort.json as { error: { message: string } }).error.message, /multipart\/form-data field "image"/);
});

test('ort refuses bytes that are no image with a 415 that says why', async () => {
  const { ort } = await setUp();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  tmpDirs.push(dir);
  writeFileSync(path.join(dir, 'notes.jpg'), 'not an image at all');
  const [upload] = await loadUploads([path.join(dir, 'notes.jpg')]);
  const answer = await fetch(ort.url, { method: 'POST', headers: { 'content-type': upload.contentType }, body: upload.body });
  assert.is(answer.status, 415);
  assert.match(((await answer.json()) as { error: { message: string } }).error.message, /cannot decode the image .*send a JPEG/);
});

test('the HTTP stage of the ceiling answers any upload at once with its constant top-3, in the original shape', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  tmpDirs.push(dir);
  writeFileSync(path.join(dir, 'notes.jpg'), 'not an image at all');
  const uploads = await loadUploads([PHOTO, path.join(dir, 'notes.jpg')]);
  const stage = await start(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'bench/http-stage.ts')], 'http-stage', dir, uploads[0]);
  for (const upload of uploads) {
    const answer = await fetch(stage.url, { method: 'POST', headers: { 'content-type': upload.contentType }, body: upload.body });
    assert.is(answer.status, 200, upload.name);
    assert.equal(assertOriginalShape(await answer.json()).map((p) => p.label), ['0', '1', '2'], 'never decoded');
  }
  assert.is((await postWithoutImage(stage.url)).status, 400, 'the upload is still required');
});

test("the ceiling's inline server answers with exactly our pipeline's top-3, and refuses bytes that are no image", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  tmpDirs.push(dir);
  writeFileSync(path.join(dir, 'notes.jpg'), 'not an image at all');
  const photos = [PHOTO, image('p05-raccoon.png')];
  const uploads = await loadUploads([...photos, path.join(dir, 'notes.jpg')]);
  const modelDir = convertedDemoModel();
  const inline = await start(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'bench/inline-server.ts'), '--model-dir', modelDir], 'inline', dir, uploads[0]);
  const model = await Model.load(tf, modelDir);
  const pipeline = createPipeline(createStages(tf, model, { maxPixels: 36_000_000, honourExif: true }));
  try {
    for (const [i, upload] of uploads.slice(0, photos.length).entries()) {
      const answer = await fetch(inline.url, { method: 'POST', headers: { 'content-type': upload.contentType }, body: upload.body });
      assert.is(answer.status, 200, upload.name);
      const ours = await pipeline.predict(new Uint8Array(readFileSync(photos[i])), 3);
      assert.equal(assertOriginalShape(await answer.json()), ours.predictions, upload.name);
    }
  } finally {
    model.dispose();
  }
  const refused = await fetch(inline.url, { method: 'POST', headers: { 'content-type': uploads[2].contentType }, body: uploads[2].body });
  assert.is(refused.status, 415);
  assert.match(((await refused.json()) as { error: { message: string } }).error.message, /cannot decode the image .*send a JPEG/);
});

test.run();
