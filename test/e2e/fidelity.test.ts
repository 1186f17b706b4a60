// End to end over HTTP against the original demo's PyTorch path, same checkpoint: top-3 labels and probabilities.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { postImage } from '../helpers/app';
import { IMAGES } from '../helpers/fixtures';
import { assertTop3, serveDemoModel, type Prediction } from './demo-reference';

const PHOTOS = readdirSync(IMAGES).filter((f) => /^p\d+.*\.(jpg|png)$/.test(f)).sort().map((f) => path.join(IMAGES, f));

test('every photo: top-3 labels and probabilities equal PyTorch on the same checkpoint', async () => {
  assert.ok(PHOTOS.length >= 35, `expected the 35 photos in ${IMAGES}, found ${PHOTOS.length}`);
  const server = await serveDemoModel();
  let worst = 0;
  const distinctTop1 = new Set<string>();
  const tensors = { before: 0, after: 0 };
  try {
    const reference = server.reference(PHOTOS);
    // Two at once, so that both workers have run (and reported their tensors) before the count is taken.
    await Promise.all(PHOTOS.slice(0, 2).map((file) => postImage(server.url, readFileSync(file))));
    tensors.before = server.tensors();
    for (const [i, file] of PHOTOS.entries()) {
      const name = path.basename(file);
      const reply = await postImage(server.url, readFileSync(file), { filename: name });
      assert.is(reply.status, 200, `${name}: ${JSON.stringify(reply.body)}`);
      const got = (reply.body as { predictions: Prediction[] }).predictions;
      worst = Math.max(worst, assertTop3(got, reference[i], name));
      distinctTop1.add(got[0].label);
    }
    tensors.after = server.tensors();
  } finally {
    await server.close();
  }
  // The session holds the weights outside tfjs: between batches a worker holds no tensor at all.
  assert.equal([tensors.before, tensors.after], [0, 0], 'no tensor left behind by a request');
  // The comparison is only meaningful if the model's answers differ between photos.
  assert.ok(distinctTop1.size >= 5, `the demo model gave only ${distinctTop1.size} distinct top-1 labels`);
  console.log(`  e2e: ${PHOTOS.length} photos, top-3 labels equal, max |p - p_torch| = ${worst.toExponential(2)}`);
});

test.run();
