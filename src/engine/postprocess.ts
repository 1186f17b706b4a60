// Postprocess stage: one image's logits -> softmax -> tf.topk -> [{label, probability}], as plain data.
import type { Tensor1D } from '@tensorflow/tfjs-node';
import type { Tf } from '../runtime';

/** One entry of the answer: probability is the float32 softmax value as a JS number, not rounded. */
export interface Prediction {
  label: string;
  probability: number;
}

/**
 * Top-k classes of one image. `logits` holds the C pre-softmax scores (float32), `labels` the C class names.
 * k is lowered to C when larger; it must be an integer >= 1. Ties keep the lower class index first (tf.topk).
 */
export function topPredictions(tf: Tf, logits: Float32Array, k: number, labels: readonly string[]): Prediction[] {
  if (labels.length !== logits.length) {
    throw new RangeError(`topPredictions: ${logits.length} logits but ${labels.length} labels`);
  }
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`topPredictions: k must be an integer >= 1, got ${k}`);
  const count = Math.min(k, logits.length);
  const [values, indices] = tf.tidy(() => {
    const { values, indices } = tf.topk(tf.softmax(tf.tensor1d(logits, 'float32')) as Tensor1D, count, true);
    return [values.dataSync() as Float32Array, indices.dataSync() as Int32Array];
  });
  return Array.from(indices, (index, i) => ({ label: labels[index], probability: values[i] }));
}
