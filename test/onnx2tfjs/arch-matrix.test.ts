// Architecture matrix: seeded torchvision classifiers through ONNX and the converter must pass the parity gate
// (batch 3 and batch 1) at 64x64 and 224x224. Exports are cached under .cache/onnx2tfjs/ keyed by arch, size,
// opset, the fixture script's content and the tool versions (test/helpers/cache.ts), so only the first run pays for PyTorch.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheKey, PYTHON } from '../helpers/cache';
import { tf } from '../helpers/runtime';
import { loadConverted, loadSession } from './harness';
import { convertOnnx } from '../../tools/onnx2tfjs/converter';
import { checkParity, readReference } from '../../tools/onnx2tfjs/parity';
import { readUnsupportedArchs } from '../../tools/onnx2tfjs/coverage';

const SCRIPT = path.join(__dirname, 'export-torchvision.py');
const CACHE = path.join(__dirname, '..', '..', '.cache', 'onnx2tfjs');

/** The coverage bar: each at 64x64 and 224x224. */
const ARCHS = [
  'resnet18', 'resnet34', 'resnet50', 'mobilenet_v2', 'mobilenet_v3_small', 'mobilenet_v3_large', 'efficientnet_b0',
  'densenet121', 'vgg11_bn', 'squeezenet1_1', 'shufflenet_v2_x1_0', 'regnet_y_400mf', 'googlenet', 'alexnet', 'convnext_tiny',
];
const SIZES = [64, 224];
/**
 * Beyond the bar: other families of the installed torchvision (inception_v3 at its own 299, ViT at the 224 it is
 * built for, Swin at both sizes), and ConvNeXt at opset 17 where its LayerNorm is a LayerNormalization node.
 */
const EXTRA: { arch: string; size: number; opset: number }[] = [
  { arch: 'convnext_tiny', size: 64, opset: 17 },
  ...['squeezenet1_0', 'mnasnet0_5', 'shufflenet_v2_x0_5', 'regnet_x_400mf', 'efficientnet_b1', 'resnext50_32x4d'].map((arch) => ({ arch, size: 64, opset: 14 })),
  { arch: 'inception_v3', size: 299, opset: 14 },
  { arch: 'vit_b_16', size: 224, opset: 14 },
  { arch: 'swin_t', size: 64, opset: 14 },
  { arch: 'swin_t', size: 224, opset: 14 },
];


/** The cached export folder, created by the fixture script on a miss (written to a temp name, then renamed). */
function exportFor(arch: string, size: number, opset: number): string {
  const dir = path.join(CACHE, `${arch}-${size}-op${opset}-${cacheKey({ files: [SCRIPT] })}`);
  if (existsSync(path.join(dir, 'reference.json'))) return dir;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(PYTHON, [SCRIPT, '--arch', arch, '--size', String(size), '--opset', String(opset), '--out', tmp], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`export of ${arch} at ${size} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
  renameSync(tmp, dir);
  return dir;
}

const unsupported = readUnsupportedArchs();
const planned = [...ARCHS.flatMap((arch) => SIZES.map((size) => ({ arch, size, opset: 14 }))), ...EXTRA];
const excluded = (c: { arch: string; size: number }) => unsupported.some((u) => u.arch === c.arch && u.sizes.includes(c.size));
const cases = planned.filter((c) => !excluded(c));

for (const { arch, size, opset } of cases) {
  test(`${arch} ${size}x${size} opset ${opset}: parity gate on batch 3 and batch 1`, async () => {
    const dir = exportFor(arch, size, opset);
    const t0 = Date.now();
    const m = convertOnnx(readFileSync(path.join(dir, 'model.onnx')), { nhwcInputs: ['input'], rename: { input: 'input', logits: 'logits' } });
    const convertMs = Date.now() - t0;
    const reference = readReference(path.join(dir, 'reference.json'));
    const g = await loadConverted(m);
    const before = tf.memory().numTensors;
    const r = checkParity(tf, g, reference);
    assert.is(tf.memory().numTensors, before, 'parity run leaked tensors');
    g.dispose();
    // The same gate on the path the server runs: the whole graph as one TensorFlow session.
    const session = await loadSession(m);
    let s: ReturnType<typeof checkParity>;
    try {
      s = checkParity(tf, session, reference);
    } finally {
      session.dispose();
    }
    assert.ok(r.tolerance > 1e-4, `${arch}: the reference logits are degenerate (max |logit| <= 1), the gate would be blind`);
    const diffs = (p: typeof r) => p.byBatch.map((b) => `b${b.batch} ${b.maxAbsDiff.toExponential(2)}`).join(', ');
    console.log(`  ${arch} ${size}x${size} op${opset}: max |diff| ${diffs(r)}, session ${diffs(s)}, tolerance ${r.tolerance.toExponential(2)}, converted in ${convertMs} ms`);
    assert.ok(r.ok, `${arch} ${size}: max |logit_tfjs - logit_torch| ${r.maxAbsDiff} > ${r.tolerance}`);
    assert.ok(s.ok, `${arch} ${size}: on the server's session, max |logit - logit_torch| ${s.maxAbsDiff} > ${s.tolerance}`);
  });
}

test('planned cases left out are exactly those unsupported-archs.json lists, each with a reason', () => {
  for (const u of unsupported) {
    assert.ok(u.reason.length > 20, `${u.arch} needs a reason`);
    console.log(`  excluded: ${u.arch} at ${u.sizes.join(', ')}: ${u.reason}`);
  }
  const left = planned.filter(excluded).map((c) => `${c.arch}@${c.size}`);
  assert.equal(left, ['vgg11_bn@64', 'alexnet@64']);
});

test.run();
