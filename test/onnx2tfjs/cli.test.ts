// The converter CLI end to end on a small classifier: files, metadata, parity figure, atomic replace, and every
// user error (unsupported op, failed gate, unwritable output, bad inputs, usage) leaving the old model intact.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tf } from '../helpers/runtime';
import { A, buildModel, Feed, ModelSpec, randConst, runOrt } from './harness';
import { runCli } from '../../tools/onnx2tfjs/cli';
import { SHARD_BYTES } from '../../tools/onnx2tfjs/writer';
import { Model } from '../../src/engine/model';

const CLASSES = 5;
const SIZE = 8;
const ROOT = path.join(__dirname, '..', '..');

/** A classifier shaped like the real export: input [N,3,H,W] -> Conv/Relu/MaxPool/GAP/Flatten/Gemm -> logits. */
function classifier(extraOp?: string): ModelSpec {
  return {
    inputs: [{ name: 'input', shape: ['batch', 3, SIZE, SIZE] }],
    initializers: {
      // Large enough for several 4 MiB shards: 1.1M floats in the head.
      w: randConst([16, 3, 3, 3], 1, 0.5), b: randConst([16], 2), fw: randConst([CLASSES, 16], 3), fb: randConst([CLASSES], 4),
      big: randConst([1100000], 5, 1e-3),
    },
    nodes: [
      { op: 'Conv', inputs: ['input', 'w', 'b'], outputs: ['c'], attrs: { pads: A.ints([1, 1, 1, 1]) } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', inputs: ['r'], outputs: ['g'] },
      { op: 'Flatten', inputs: ['g'], outputs: ['f'] },
      { op: 'Gemm', inputs: ['f', 'fw', 'fb'], outputs: ['l0'], attrs: { transB: A.i(1) } },
      // Adds a negligible slice of `big` so its weight must be shipped.
      { op: 'ReduceSum', inputs: ['big'], outputs: ['bs'], attrs: { keepdims: A.i(0) } },
      { op: extraOp ?? 'Add', inputs: extraOp ? ['l0'] : ['l0', 'bs'], outputs: ['logits'] },
    ],
    outputs: ['logits'],
    opset: 13,
  };
}

const made: string[] = [];
test.after(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface Fixture { dir: string; onnx: string; exportInfo: string; reference: string }

/** Writes model.onnx, export.json and an onnxruntime reference (same file formats as tools/export_onnx.py). */
async function fixture(spec = classifier(), tamper = 0): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'onnx2tfjs-cli-'));
  made.push(dir);
  const bytes = buildModel(spec);
  writeFileSync(path.join(dir, 'model.onnx'), bytes);
  const n = 3;
  const input: Feed = { shape: [n, 3, SIZE, SIZE], data: Float32Array.from({ length: n * 3 * SIZE * SIZE }, (_, i) => Math.sin(i * 0.37)) };
  let logits: Float32Array = new Float32Array(n * CLASSES);
  if (!spec.nodes.some((x) => x.op === 'Hardmax')) logits = (await runOrt(bytes, { input })).logits.data;
  logits[0] += tamper;
  writeFileSync(path.join(dir, 'reference_input.f32'), input.data);
  writeFileSync(path.join(dir, 'reference_logits.f32'), logits);
  writeFileSync(path.join(dir, 'reference.json'), JSON.stringify({ input: { shape: input.shape, layout: 'NCHW', file: 'reference_input.f32' }, logits: { shape: [n, CLASSES], file: 'reference_logits.f32' } }));
  writeFileSync(path.join(dir, 'export.json'), JSON.stringify({
    arch: 'tiny', num_classes: CLASSES, image_size: [SIZE, SIZE], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
    labels: ['a', 'b', 'c', 'd', 'e'], checkpoint: { path: 'best.pth', sha256: 'ab'.repeat(32) }, demo: false, opset: 13,
  }));
  return { dir, onnx: path.join(dir, 'model.onnx'), exportInfo: path.join(dir, 'export.json'), reference: path.join(dir, 'reference.json') };
}

async function cli(f: Fixture, out: string, overrides: string[] = []) {
  const lines: { log: string[]; error: string[] } = { log: [], error: [] };
  const argv = overrides.length ? overrides : [f.onnx, '--export-info', f.exportInfo, '--reference', f.reference, '--out', out];
  const code = await runCli(argv, { log: (l) => lines.log.push(l), error: (l) => lines.error.push(l) });
  return { code, ...lines };
}

/** An existing model folder with a marker, to prove a failed run leaves it alone. */
function oldModel(parent: string): string {
  const out = path.join(parent, 'model_tfjs');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'marker.txt'), 'old model');
  return out;
}

const leftovers = (parent: string) => readdirSync(parent).filter((n) => n.startsWith('.model_tfjs'));

test('converts, prints the parity figure, writes shards <= 4 MiB and metadata the server loads', async () => {
  const f = await fixture();
  const out = oldModel(f.dir);
  const r = await cli(f, out);
  assert.is(r.code, 0, r.error.join('\n'));
  assert.match(r.log[0], /parity max \|logit_tfjs - logit_torch\| = \d\.\d{3}e-?\d+ \(batch 3: .*, batch 1: .*\), on the server's session \d\.\d{3}e-?\d+, <= tolerance \d\.\d{3}e-4/);
  assert.not.ok(existsSync(path.join(out, 'marker.txt')), 'the old folder was replaced');
  assert.equal(leftovers(f.dir), [], 'no staging folder left behind');
  const meta = JSON.parse(readFileSync(path.join(out, 'metadata.json'), 'utf8'));
  assert.equal(
    { schema: meta.schema, arch: meta.arch, input: meta.input, output: meta.output, image_size: meta.image_size, labels: meta.labels, source: meta.source, num_classes: meta.num_classes },
    {
      schema: 1, arch: 'tiny', input: { name: 'input', dtype: 'float32', layout: 'NHWC', shape: [-1, SIZE, SIZE, 3] }, output: { name: 'logits', shape: [-1, CLASSES] },
      image_size: [SIZE, SIZE], labels: ['a', 'b', 'c', 'd', 'e'], source: { checkpoint: 'best.pth', sha256: 'ab'.repeat(32), demo: false }, num_classes: CLASSES,
    },
  );
  assert.match(meta.converter, /^onnx2tfjs \d+\.\d+\.\d+$/);
  const shards = meta.files.filter((x: { path: string }) => x.path.endsWith('.bin'));
  assert.ok(shards.length >= 2, 'several shards');
  for (const file of meta.files as { path: string; bytes: number; sha256: string }[]) {
    const bytes = readFileSync(path.join(out, file.path));
    assert.is(bytes.length, file.bytes);
    assert.is(createHash('sha256').update(bytes).digest('hex'), file.sha256);
    if (file.path.endsWith('.bin')) assert.ok(bytes.length <= SHARD_BYTES, `${file.path} is ${bytes.length} bytes`);
  }
  const modelJson = JSON.parse(readFileSync(path.join(out, 'model.json'), 'utf8'));
  assert.is(modelJson.format, 'graph-model');
  assert.equal(Object.keys(modelJson.signature.inputs), ['input']);
  assert.equal(Object.keys(modelJson.signature.outputs), ['logits']);
  const model = await Model.load(tf, out);
  assert.is(model.numClasses, CLASSES);
  model.dispose();
});

test('a failed parity gate exits 1 with the figure and leaves the old model folder intact', async () => {
  const f = await fixture(classifier(), 0.01);
  const out = oldModel(f.dir);
  const r = await cli(f, out);
  assert.is(r.code, 1);
  assert.match(r.error.join('\n'), /^onnx2tfjs: error: parity gate failed: max \|logit_tfjs - logit_torch\| = 1\.0\d\de-2 > tolerance \d\.\d{3}e-4; .*model_tfjs was left unchanged$/);
  assert.equal(readdirSync(out), ['marker.txt']);
  assert.equal(leftovers(f.dir), []);
});

test('an unsupported op exits 1 naming op, node and opset; the old model stays', async () => {
  const f = await fixture(classifier('Hardmax'));
  const out = oldModel(f.dir);
  const r = await cli(f, out);
  assert.is(r.code, 1);
  assert.is(r.error.length, 1);
  assert.match(r.error[0], /^onnx2tfjs: error: unsupported ONNX op "Hardmax" \(node "Hardmax_6", opset 13\)/);
  assert.equal(readdirSync(out), ['marker.txt']);
});

test('an unwritable output folder exits 1 with a clear line', async () => {
  const f = await fixture();
  const r = await cli(f, path.join(f.onnx, 'model_tfjs'));
  assert.is(r.code, 1);
  assert.match(r.error[0], /^onnx2tfjs: error: cannot write output folder .*model\.onnx\/model_tfjs: .*model\.onnx is not a folder$/);
});

test('missing or malformed inputs exit 1 with the file named', async () => {
  const f = await fixture();
  const out = path.join(f.dir, 'out');
  const missing = await cli(f, out, [path.join(f.dir, 'nope.onnx'), '--export-info', f.exportInfo, '--reference', f.reference, '--out', out]);
  assert.match(missing.error[0], /cannot read ONNX model .*nope\.onnx: ENOENT/);
  writeFileSync(path.join(f.dir, 'bad.onnx'), 'not protobuf');
  const bad = await cli(f, out, [path.join(f.dir, 'bad.onnx'), '--export-info', f.exportInfo, '--reference', f.reference, '--out', out]);
  assert.match(bad.error[0], /not an ONNX model/);
  writeFileSync(f.exportInfo, JSON.stringify({ arch: 'tiny' }));
  const info = await cli(f, out);
  assert.match(info.error[0], /export info .*export\.json is invalid: num_classes must be a positive integer/);
  for (const r of [missing, bad, info]) assert.is(r.code, 1);
  assert.not.ok(existsSync(out));
});

test('usage errors exit 2 with the usage line (also as a real process)', async () => {
  const f = await fixture();
  const r = await cli(f, '', [f.onnx, '--reference', f.reference]);
  assert.is(r.code, 2);
  assert.match(r.error[0], /missing --export-info, --out\nusage: /);
  const p = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'tools/onnx2tfjs/cli.ts', '--bogus'], { cwd: ROOT, encoding: 'utf8' });
  assert.is(p.status, 2);
  assert.match(p.stderr, /Unknown option '--bogus'[\s\S]*usage: tsx tools\/onnx2tfjs\/cli.ts/);
});

test.run();
