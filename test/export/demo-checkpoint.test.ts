// tools/demo_checkpoint.py: reproducible bytes, the original demo's format, predictions that vary by image.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { IMAGES } from '../helpers/fixtures';

const ROOT = path.resolve(__dirname, '../..');
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const DEMO = path.join(ROOT, 'tools/demo_checkpoint.py');
const run = promisify(execFile);

// Loads the checkpoint as the original server did and ranks classes for each photo (PIL resize, ImageNet norm).
const INSPECT = `
import json, sys
import numpy as np, torch
from PIL import Image
from torch import nn
from torchvision import models
checkpoint = torch.load(sys.argv[1], weights_only=True)
model = models.resnet18()
model.fc = nn.Sequential(nn.Linear(512, 102))
model.load_state_dict(checkpoint['state_dict'])
model.eval()
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
batch = [((np.asarray(Image.open(f).convert('RGB').resize((64, 64), Image.BILINEAR)) / 255 - mean) / std).transpose(2, 0, 1)
         for f in sys.argv[2:]]
with torch.no_grad():
    logits = model(torch.tensor(np.stack(batch), dtype=torch.float32))
print(json.dumps({'keys': list(checkpoint), 'head': {k: list(v.shape) for k, v in checkpoint['state_dict'].items() if k.startswith('fc')},
                  'top3': logits.topk(3).indices.tolist(), 'top1_probability': logits.softmax(1).max(1).values.tolist()}))
`;

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

const test = suite<{ dir: string; checkpoint: string }>('demo checkpoint', { dir: '', checkpoint: '' });

// One checkpoint for the tests that read it, so each test stands alone in any order.
test.before(async (ctx) => {
  ctx.dir = mkdtempSync(path.join(os.tmpdir(), 'demo-checkpoint-'));
  ctx.checkpoint = path.join(ctx.dir, 'shared', 'best.pth');
  await run(PYTHON, [DEMO, '--out', ctx.checkpoint]);
});

test.after((ctx) => {
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('two runs write the same bytes, whatever the file is called', async (ctx) => {
  const first = path.join(ctx.dir, 'a', 'best.pth');
  const second = path.join(ctx.dir, 'b', 'other-name.pth');
  const { stdout } = await run(PYTHON, [DEMO, '--out', first]);
  assert.match(stdout, /UNTRAINED DEMO MODEL/);
  await run(PYTHON, [DEMO, '--out', second]);
  assert.is(sha256(second), sha256(first));
  assert.is(sha256(first), sha256(ctx.checkpoint));
  assert.equal(readdirSync(path.join(ctx.dir, 'a')), ['best.pth'], 'no temporary file left behind');
});

test("the original demo's format, and top-3 predictions that differ between photos", async (ctx) => {
  const checkpoint = ctx.checkpoint;
  const photos = readdirSync(IMAGES).filter((f) => /^p\d\d-.*\.(jpg|png)$/.test(f)).slice(0, 12);
  assert.is(photos.length, 12);
  const { stdout } = await run(PYTHON, ['-c', INSPECT, checkpoint, ...photos.map((f) => path.join(IMAGES, f))]);
  const report = JSON.parse(stdout) as { keys: string[]; head: Record<string, number[]>; top3: number[][]; top1_probability: number[] };
  assert.equal(report.keys, ['state_dict']);
  assert.equal(report.head, { 'fc.0.weight': [102, 512], 'fc.0.bias': [102] });
  const top1 = new Set(report.top3.map((t) => t[0]));
  const top3 = new Set(report.top3.map((t) => t.join(',')));
  assert.ok(top1.size >= 6, `only ${top1.size} distinct top-1 classes over 12 photos`);
  assert.ok(top3.size >= 10, `only ${top3.size} distinct top-3 rankings over 12 photos`);
  // Confident enough that a ranking is not decided by float noise: well above uniform (1/102).
  assert.ok(Math.min(...report.top1_probability) > 0.03, `top-1 probabilities ${report.top1_probability}`);
});

test('an output path that cannot be created is one line on stderr and exit status 1', async (ctx) => {
  const blocker = ctx.checkpoint;
  const failure = await run(PYTHON, [DEMO, '--out', path.join(blocker, 'best.pth')]).then(
    () => undefined,
    (e: { code: number; stderr: string }) => e,
  );
  if (failure === undefined) return assert.unreachable('demo_checkpoint.py succeeded');
  assert.is(failure.code, 1);
  assert.match(failure.stderr, /^demo_checkpoint: error: cannot write .*shared\/best\.pth\/best\.pth: File exists \(.*shared\/best\.pth\)\n$/);
});

test.run();
