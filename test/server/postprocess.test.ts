// Postprocess: softmax + top-k against a float64 reference, labels, k bounds, no tensor left behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { topPredictions } from '../../src/engine/postprocess';
import { tf } from '../helpers/runtime';

function referenceTopk(logits: number[], k: number): { index: number; p: number }[] {
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps
    .map((e, index) => ({ index, p: e / sum }))
    .sort((a, b) => b.p - a.p || a.index - b.index)
    .slice(0, k);
}

test('top-k labels and softmax probabilities match a float64 reference', () => {
  const logits = Array.from({ length: 102 }, (_, i) => Math.sin(i * 12.9898) * 8);
  const labels = logits.map((_, i) => String(i));
  const before = tf.memory().numTensors;
  const got = topPredictions(tf, Float32Array.from(logits), 3, labels);
  assert.is(tf.memory().numTensors, before, 'no tensor left behind');
  const want = referenceTopk(Array.from(Float32Array.from(logits)), 3);
  assert.equal(got.map((p) => p.label), want.map((w) => String(w.index)));
  got.forEach((p, i) => assert.ok(Math.abs(p.probability - want[i].p) < 1e-6, `probability ${i}: ${p.probability} vs ${want[i].p}`));
  assert.ok(got[0].probability >= got[1].probability && got[1].probability >= got[2].probability, 'sorted descending');
});

test('labels come from the given names; k above the class count is lowered to it', () => {
  const got = topPredictions(tf, Float32Array.from([0, 2, 1]), 10, ['daisy', 'rose', 'tulip']);
  assert.equal(got.map((p) => p.label), ['rose', 'tulip', 'daisy']);
  const sum = got.reduce((s, p) => s + p.probability, 0);
  assert.ok(Math.abs(sum - 1) < 1e-6, `the full distribution sums to 1, got ${sum}`);
});

test('equal logits keep the lower class index first', () => {
  const got = topPredictions(tf, Float32Array.from([1, 5, 5, 5]), 2, ['a', 'b', 'c', 'd']);
  assert.equal(got.map((p) => p.label), ['b', 'c']);
});

test('probabilities are full-precision float32 values, not rounded', () => {
  const [top] = topPredictions(tf, Float32Array.from([0.3, 0.1]), 1, ['x', 'y']);
  const want = Math.fround(1 / (1 + Math.exp(-0.2)));
  assert.ok(Math.abs(top.probability - want) < 1e-7);
  assert.is(top.probability, Math.fround(top.probability), 'exactly a float32 value');
  assert.ok(String(top.probability).length > 8, `not rounded: ${top.probability}`);
});

test('bad k and mismatched labels are programming errors', () => {
  assert.throws(() => topPredictions(tf, Float32Array.from([1, 2]), 0, ['a', 'b']), /k must be an integer >= 1, got 0/);
  assert.throws(() => topPredictions(tf, Float32Array.from([1, 2]), 1.5, ['a', 'b']), /k must be an integer/);
  assert.throws(() => topPredictions(tf, Float32Array.from([1, 2]), 1, ['a']), /2 logits but 1 labels/);
});

test.run();
