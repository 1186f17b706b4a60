// The parity gate: run a converted graph model on the PyTorch reference batch and compare logits.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-node';
import type { Model } from '../../src/engine/model';
import type { Tf } from '../../src/runtime';

/** reference.json with its raw float32 files loaded (docs/architecture.md). */
export interface Reference {
  /** NCHW float32 [N, C, H, W]. */
  inputShape: number[];
  input: Float32Array;
  /** [N, classes]. */
  logitsShape: number[];
  logits: Float32Array;
}

export interface ParityResult {
  /** max |logit_tfjs - logit_torch| over the full batch and over the first sample alone. */
  maxAbsDiff: number;
  byBatch: { batch: number; maxAbsDiff: number }[];
  /** 1e-4 * max(1, max |logit_torch|) */
  tolerance: number;
  ok: boolean;
}

function readF32(file: string, count: number, what: string): Float32Array {
  const buf = readFileSync(file);
  if (buf.byteLength !== count * 4) throw new RangeError(`${what} ${file} has ${buf.byteLength} bytes, expected ${count * 4} (${count} float32)`);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** Reads reference.json and the .f32 files it names (paths relative to it). */
export function readReference(file: string): Reference {
  const j = JSON.parse(readFileSync(file, 'utf8')) as {
    input: { shape: number[]; layout: string; file: string };
    logits: { shape: number[]; file: string };
  };
  if (j.input?.layout !== 'NCHW' || j.input.shape?.length !== 4) throw new RangeError(`${file}: input must be NCHW [N, C, H, W]`);
  if (j.logits?.shape?.length !== 2 || j.logits.shape[0] !== j.input.shape[0]) throw new RangeError(`${file}: logits must be [N, classes] with the input's N`);
  const dir = path.dirname(file);
  const count = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return {
    inputShape: j.input.shape,
    input: readF32(path.join(dir, j.input.file), count(j.input.shape), 'reference input'),
    logitsShape: j.logits.shape,
    logits: readF32(path.join(dir, j.logits.file), count(j.logits.shape), 'reference logits'),
  };
}

/** What the gate runs: a graph model's execute, or the server's session (sessionParityModel). */
export interface ParityModel {
  execute(inputs: Record<string, Tensor>, output: string): Tensor | Tensor[];
}

/** The server's path, one TensorFlow session per batch (src/engine/model.ts), as a ParityModel. */
export function sessionParityModel(model: Model): ParityModel {
  return { execute: (inputs) => model.predict(Object.values(inputs)[0] as Tensor4D) };
}

/**
 * Runs `model` (input key `inputKey`, NHWC) on the reference batch and on its first sample alone and compares
 * with PyTorch's logits. Leaves no tensors behind.
 */
export function checkParity(tf: Tf, model: ParityModel, ref: Reference, inputKey = 'input', outputKey = 'logits'): ParityResult {
  const [n, classes] = ref.logitsShape;
  const maxLogit = ref.logits.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  const tolerance = 1e-4 * Math.max(1, maxLogit);
  const byBatch = [n, 1].filter((b, i) => i === 0 || b !== n).map((batch) => {
    const got = tf.tidy(() => {
      const nchw = tf.tensor4d(ref.input.subarray(0, (ref.input.length / n) * batch), [batch, ...ref.inputShape.slice(1)] as [number, number, number, number]);
      const out = model.execute({ [inputKey]: tf.transpose(nchw, [0, 2, 3, 1]) }, outputKey) as Tensor;
      return out.dataSync() as Float32Array;
    });
    if (got.length !== batch * classes) throw new RangeError(`the converted model answers ${got.length / batch} values per sample, the reference has ${classes}`);
    let maxAbsDiff = 0;
    for (let i = 0; i < got.length; i++) {
      const d = Math.abs(got[i] - ref.logits[i]);
      maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
    }
    return { batch, maxAbsDiff };
  });
  const maxAbsDiff = Math.max(...byBatch.map((b) => b.maxAbsDiff));
  return { maxAbsDiff, byBatch, tolerance, ok: maxAbsDiff <= tolerance };
}
