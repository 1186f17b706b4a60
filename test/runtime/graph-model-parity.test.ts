// The native backend runs a graph model like the pure-JS CPU backend of @tensorflow/tfjs does (same model, same input).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tf } from '../helpers/runtime';
import { INPUT_SHAPE, NUM_CLASSES, seeded, tinyGraphModel } from '../helpers/tiny-graph-model';

const BATCH = 4;

/** Loads the model on `backend`, runs it, and returns the logits; restores the native backend afterwards. */
async function logitsOn(backend: string): Promise<Float32Array> {
  assert.ok(await tf.setBackend(backend), `backend ${backend} must initialise`);
  // IS_TEST silences the pure-JS backend's "install the node backend" banner.
  const isTest = tf.env().getBool('IS_TEST');
  tf.env().set('IS_TEST', true);
  try {
    const model = await tf.loadGraphModel(tf.io.fromMemory(tinyGraphModel()));
    const input = tf.tensor4d(seeded(BATCH * 16 * 16 * 3, 42, 2), [BATCH, ...INPUT_SHAPE]);
    const out = model.execute({ input }, 'logits') as import('@tensorflow/tfjs-node').Tensor;
    assert.equal(out.shape, [BATCH, NUM_CLASSES]);
    const values = out.dataSync() as Float32Array;
    tf.dispose([input, out]);
    model.dispose();
    return values;
  } finally {
    tf.env().set('IS_TEST', isTest);
    await tf.setBackend('tensorflow');
  }
}

test('a graph model gives the same logits on the native and the pure-JS CPU backend', async () => {
  const before = tf.memory().numTensors;
  const native = await logitsOn('tensorflow');
  // tfjs-node re-exports @tensorflow/tfjs, so its 'cpu' backend is the pure-JS kernels of the same engine.
  const pureJs = await logitsOn('cpu');
  assert.is(tf.memory().numTensors, before, 'no tensor left behind on either backend');
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < pureJs.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(native[i] - pureJs[i]));
    maxRef = Math.max(maxRef, Math.abs(pureJs[i]));
  }
  assert.ok(maxRef > 0.1, 'the model must produce non-trivial logits');
  assert.ok(maxDiff <= 1e-5 * maxRef, `max abs diff ${maxDiff} exceeds 1e-5 x max |logit| ${maxRef}`);
});

test.after(async () => {
  assert.is(tf.getBackend(), 'tensorflow');
});

test.run();
