// Batching never changes an answer: every photo posted alone (its convolutions shared with the helper thread while
// the other worker idles), then all at once (batched across the workers), gets byte-identical JSON from the server on
// the real demo ResNet18.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { helperUnits } from '../../src/tf-ops';
import { postImage } from '../helpers/app';
import { IMAGES } from '../helpers/fixtures';
import { serveDemoModel } from './demo-reference';

const PHOTOS = readdirSync(IMAGES).filter((f) => /^p\d+.*\.(jpg|png)$/.test(f)).sort().map((f) => path.join(IMAGES, f));

test('every photo answers the same alone and in a batch of concurrent requests', async () => {
  assert.ok(PHOTOS.length >= 35, `expected the 35 photos in ${IMAGES}, found ${PHOTOS.length}`);
  const server = await serveDemoModel();
  try {
    const bytes = PHOTOS.map((file) => readFileSync(file));
    const alone: unknown[] = [];
    const units = helperUnits();
    for (const b of bytes) alone.push((await postImage(server.url, b)).body);
    assert.ok(helperUnits() > units, 'the lone requests shared their convolutions with the helper thread');
    // All at once, twice over: the two workers take batches of whatever is queued.
    const together = await Promise.all([...bytes, ...bytes].map((b) => postImage(server.url, b)));
    together.forEach((reply, i) => {
      const name = path.basename(PHOTOS[i % bytes.length]);
      assert.is(reply.status, 200, name);
      assert.equal(reply.body, alone[i % bytes.length], `${name}: the batched answer equals the lone one`);
    });
    assert.is(together.length, 2 * PHOTOS.length);
  } finally {
    await server.close();
  }
});

test.run();
