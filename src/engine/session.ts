// The session files a worker loads (saved_model.pb, and its variables' values as raw bytes with a JSON index), and
// the loaded session with every variable assigned, ready to predict.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs-node';
import { runSessionOutputs, type SavedModel, type Tf } from '../runtime';
import { registerOp } from '../tf-ops';
import { SIGNATURE_KEY, TAGS } from './saved-model';
import { ASSIGN_VARIABLES, initialValueName, type SessionModel } from './session-graph';

const VARIABLES_INDEX = 'variables.json';
const VARIABLES_DATA = 'variables.bin';

interface VariableEntry {
  name: string;
  shape: number[];
  offset: number;
  bytes: number;
}

/** Writes `model` into the folder `dir` (existing, empty). */
export function writeSession(dir: string, model: SessionModel): void {
  writeFileSync(path.join(dir, 'saved_model.pb'), model.savedModel);
  let offset = 0;
  const index: VariableEntry[] = model.variables.map(({ name, dtype, shape, bytes }) => {
    // Only float32 weights become variables (session-graph.ts); offsets stay multiples of 4 for Float32Array views.
    if (dtype !== 'DT_FLOAT') throw new Error(`variable ${name} is ${dtype}; session files hold float32 variables`);
    const entry = { name, shape, offset, bytes: bytes.byteLength };
    offset += bytes.byteLength;
    return entry;
  });
  writeFileSync(path.join(dir, VARIABLES_INDEX), JSON.stringify(index));
  writeFileSync(path.join(dir, VARIABLES_DATA), Buffer.concat(model.variables.map((v) => v.bytes)));
}

/** Loads the session in `dir` (written by writeSession) and assigns its variables; the caller disposes it. */
export async function openSession(tf: Tf, dir: string): Promise<SavedModel> {
  // The graph may hold PackedConv2D nodes (session-graph.ts); TensorFlow must know the op to load it.
  registerOp('PackedConv2D');
  const session = await tf.node.loadSavedModel(dir, TAGS, SIGNATURE_KEY);
  try {
    const index = JSON.parse(readFileSync(path.join(dir, VARIABLES_INDEX), 'utf8')) as VariableEntry[];
    if (index.length > 0) {
      const data = readFileSync(path.join(dir, VARIABLES_DATA));
      // A Float32Array view needs a 4-byte aligned start; Node may hand back a file's bytes at any offset.
      const buffer = data.byteOffset % 4 === 0 ? data : new Uint8Array(data);
      const feeds: Record<string, Tensor> = {};
      try {
        for (const { name, shape, offset, bytes } of index) {
          feeds[initialValueName(name)] = tf.tensor(new Float32Array(buffer.buffer, buffer.byteOffset + offset, bytes / 4), shape, 'float32');
        }
        tf.dispose(runSessionOutputs(tf, session, feeds, [ASSIGN_VARIABLES]));
      } finally {
        tf.dispose(Object.values(feeds));
      }
    }
  } catch (err) {
    session.dispose();
    throw err;
  }
  return session;
}
