// The server on the real converted demo ResNet18 (102 classes, 64x64): health, predictions, topk bounds, no leaks.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { postImage, request } from '../helpers/app';
import { image } from '../helpers/fixtures';
import { assertTop3, serveDemoModel, type DemoServer } from '../e2e/demo-reference';

let server: DemoServer;

test.before(async () => {
  server = await serveDemoModel();
});

test.after(async () => {
  await server.close();
});

test('health reports the demo ResNet18 as converted', async () => {
  const reply = await request(`${server.url}/health`);
  assert.is(reply.status, 200);
  const body = reply.body as { status: string; model: Record<string, unknown> };
  assert.is(body.status, 'ok');
  assert.equal(
    { ...body.model, checkpoint_sha256: undefined },
    { name: 'best.pth', arch: 'resnet18', classes: 102, input_size: [64, 64], labels: 'indices', demo: true, checkpoint_sha256: undefined },
  );
  assert.match(String(body.model.checkpoint_sha256), /^[0-9a-f]{64}$/);
  assert.equal((reply.body as { engine: unknown }).engine, { threads: 2, tensors: 0 }, 'the engine: two threads holding no tensor');
});

test('/predict answers as PyTorch does on the same checkpoint, for photos of every kind, without keeping tensors', async () => {
  const names = ['p01-sunset.jpg', 'p10-mountains-large.jpg', 'p19-coins.png', 'formats/rgba.png', 'formats/single.gif', 'formats/lossy.webp'];
  const reference = server.reference(names.map(image));
  // Two at once, so that both workers have run (and reported their tensors) before the count is taken.
  const warm = await Promise.all(names.slice(0, 2).map((name) => postImage(server.url, readFileSync(image(name)))));
  assert.equal(warm.map((w) => w.status), [200, 200]);
  const before = server.tensors();
  for (const [i, name] of names.entries()) {
    const reply = await postImage(server.url, readFileSync(image(name)));
    assert.is(reply.status, 200, name);
    const { predictions } = reply.body as { predictions: { label: string; probability: number }[] };
    assertTop3(predictions, reference[i], name);
    assert.ok(predictions.every((p) => /^(\d|[1-9]\d|10[01])$/.test(p.label)), `${name}: labels are class indices 0..101`);
  }
  assert.equal([before, server.tensors()], [0, 0], 'no tensor kept across requests (the session holds the weights outside tfjs)');
});

test('topk up to the 102 classes; 103 is 400 bad_topk', async () => {
  const bytes = readFileSync(image('p04-tree.jpg'));
  const all = await postImage(server.url, bytes, { fields: { topk: '102' } });
  assert.is(all.status, 200);
  const { predictions } = all.body as { predictions: { label: string; probability: number }[] };
  assert.is(predictions.length, 102);
  assert.is(new Set(predictions.map((p) => p.label)).size, 102);
  const sum = predictions.reduce((s, p) => s + p.probability, 0);
  assert.ok(Math.abs(sum - 1) < 1e-4, `the full softmax sums to 1, got ${sum}`);
  const over = await postImage(server.url, bytes, { fields: { topk: '103' } });
  assert.is(over.status, 400);
  assert.is((over.body as { error: { code: string } }).error.code, 'bad_topk');
});

test.run();
