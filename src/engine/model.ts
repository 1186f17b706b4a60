// The converted classifier: readModelFolder validates model_tfjs/ against metadata.json (no TensorFlow needed);
// Model.load runs it as one TensorFlow session (session-graph.ts), warmed up; predict runs a batch.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import type { Tensor, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { convolutionsOn, nativeBackend, type SavedModel, type Tf } from '../runtime';
import { openSession, writeSession } from './session';
import { sessionModel, type GraphModelArtifacts, type SessionModel, type SessionOptions } from './session-graph';

/** metadata.json as written by `make convert` (docs/architecture.md). */
export interface ModelMetadata {
  schema: 1;
  converter: string;
  arch: string;
  input: { name: string; dtype: 'float32'; layout: 'NHWC'; shape: [number, number, number, 3] };
  output: { name: string; shape: [number, number] };
  /** [height, width] */
  image_size: [number, number];
  mean: [number, number, number];
  std: [number, number, number];
  num_classes: number;
  labels: string[] | null;
  source: { checkpoint: string; sha256: string; demo: boolean };
  files: { path: string; bytes: number; sha256: string }[];
}

/** A missing, corrupt or inconsistent model folder; the message names the file and the fix. */
export class ModelLoadError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(`${message} Run \`make convert\` to (re)build the model, or point MODEL_DIR at a converted one.`, options);
    this.name = 'ModelLoadError';
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

/** A verified model folder: its metadata and the graph model's parts, ready to become a session. */
export interface ModelFolder {
  dir: string;
  metadata: ModelMetadata;
  artifacts: GraphModelArtifacts;
}

/**
 * Reads `dir/metadata.json`, checks every listed file (size and sha256) and parses model.json and its weights:
 * everything but TensorFlow, so the server's main thread can check a folder before any worker loads it.
 */
export async function readModelFolder(dir: string): Promise<ModelFolder> {
  const metadataPath = path.join(dir, 'metadata.json');
  const metadata = validateMetadata(parseJson(await readText(metadataPath), metadataPath), metadataPath);
  const files = new Map<string, Buffer>();
  for (const entry of metadata.files) files.set(entry.path, await readVerified(dir, entry));

  const modelJsonPath = path.join(dir, 'model.json');
  const modelJson = files.get('model.json');
  if (!modelJson) throw new ModelLoadError(`${metadataPath} does not list model.json.`);
  const json = parseModelJson(modelJson, modelJsonPath);
  const weightBuffers: Buffer[] = [];
  for (const group of json.weightsManifest) {
    for (const shard of group.paths) {
      const bytes = files.get(shard);
      if (!bytes) throw new ModelLoadError(`${modelJsonPath} names weight file ${shard}, which ${metadataPath} does not list.`);
      weightBuffers.push(bytes);
    }
  }
  const nodes = json.modelTopology.node;
  const has = (name: string, op?: string) => nodes.some((n) => n.name === name && (op === undefined || n.op === op));
  const inputs = nodes.filter((n) => n.op === 'Placeholder').map((n) => n.name);
  if (inputs.length !== 1 || inputs[0] !== metadata.input.name) {
    throw new ModelLoadError(`${modelJsonPath} has inputs [${inputs.join(', ')}]; metadata.json expects one input "${metadata.input.name}".`);
  }
  if (!has(metadata.output.name)) {
    throw new ModelLoadError(`${modelJsonPath} has no node "${metadata.output.name}", the output metadata.json names.`);
  }
  const declared = nodes.find((n) => n.op === 'Placeholder')?.attr?.shape?.shape?.dim?.map((d) => Number(d.size));
  const expected = metadata.input.shape;
  if (!declared || declared.length !== 4 || !declared.every((d, i) => d === -1 || i === 0 || d === expected[i])) {
    throw new ModelLoadError(`${modelJsonPath} declares input shape [${declared?.join(', ') ?? '?'}]; metadata.json says [${expected.join(', ')}].`);
  }
  const artifacts: GraphModelArtifacts = {
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
    weightData: concatToArrayBuffer(weightBuffers),
  };
  return { dir, metadata, artifacts };
}

/**
 * How a session on this device is written: convolutions packed on a CPU with vector kernels for them, TensorFlow's
 * own elsewhere (cuDNN on a GPU).
 */
export const sessionOptions = (device: 'cpu' | 'gpu'): SessionOptions => ({ packedConvolutions: convolutionsOn(device) !== 'tensorflow' });

/**
 * Writes the folder's graph as session files (session.ts) into a new temporary folder and returns it; the caller
 * removes it once every session that needs it is loaded.
 */
export function writeSessionModel(folder: ModelFolder, options: SessionOptions): string {
  const { metadata } = folder;
  let model: SessionModel;
  try {
    model = sessionModel(folder.artifacts, { input: { name: metadata.input.name, shape: metadata.input.shape }, output: { name: metadata.output.name, shape: metadata.output.shape } }, options);
  } catch (err) {
    throw new ModelLoadError(`${path.join(folder.dir, 'model.json')} cannot become a TensorFlow graph: ${(err as Error).message}.`, { cause: err });
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'torch-serve-node-session-'));
  writeSession(dir, model);
  return dir;
}

export class Model {
  readonly metadata: Readonly<ModelMetadata>;
  readonly dir: string;
  private readonly tf: Tf;
  private session: SavedModel | undefined;

  private constructor(tf: Tf, session: SavedModel, metadata: ModelMetadata, dir: string) {
    this.tf = tf;
    this.session = session;
    this.metadata = metadata;
    this.dir = dir;
  }

  /**
   * Reads and verifies `dir` (readModelFolder), loads it as a TensorFlow session written for the binding's device
   * (sessionOptions) and runs one warm-up batch.
   */
  static async load(tf: Tf, dir: string): Promise<Model> {
    const folder = await readModelFolder(dir);
    const sessionDir = writeSessionModel(folder, sessionOptions(nativeBackend(tf).isUsingGpuDevice ? 'gpu' : 'cpu'));
    try {
      return await Model.fromSession(tf, folder.metadata, dir, sessionDir);
    } finally {
      rmSync(sessionDir, { recursive: true, force: true });
    }
  }

  /** Loads the session files writeSessionModel wrote for the folder `dir` (whose metadata is given), and warms it. */
  static async fromSession(tf: Tf, metadata: ModelMetadata, dir: string, sessionDir: string): Promise<Model> {
    let session: SavedModel;
    try {
      session = await openSession(tf, sessionDir);
    } catch (err) {
      throw new ModelLoadError(`TensorFlow could not load the graph of ${path.join(dir, 'model.json')}: ${(err as Error).message}.`, { cause: err });
    }
    const model = new Model(tf, session, metadata, dir);
    try {
      model.warmUp(path.join(dir, 'model.json'));
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  }

  /** Input height and width in pixels. */
  get inputSize(): { height: number; width: number } {
    return { height: this.metadata.image_size[0], width: this.metadata.image_size[1] };
  }

  get numClasses(): number {
    return this.metadata.num_classes;
  }

  /** Class names by index: the metadata's labels, or the index as a string when it has none. */
  get labels(): readonly string[] {
    return this.metadata.labels ?? Array.from({ length: this.numClasses }, (_, i) => String(i));
  }

  /** Logits (pre-softmax) float32 [N, C] for a normalised float32 NHWC batch [N, H, W, 3]; the caller disposes. */
  predict(batch: Tensor4D): Tensor2D {
    const session = this.session;
    if (!session) throw new Error('Model.predict called after dispose()');
    const { height, width } = this.inputSize;
    const [n, h, w, c] = batch.shape;
    if (batch.dtype !== 'float32') throw new TypeError(`Model.predict expects a float32 batch, got ${batch.dtype}`);
    if (batch.rank !== 4 || h !== height || w !== width || c !== 3 || n < 1) {
      throw new RangeError(`Model.predict expects a batch [N, ${height}, ${width}, 3], got [${batch.shape.join(', ')}]`);
    }
    // One session run: TensorFlow executes the whole graph for the batch.
    return session.predict(batch) as Tensor as Tensor2D;
  }

  dispose(): void {
    this.session?.dispose();
    this.session = undefined;
  }

  /** Runs a zero batch once so the first request does not pay for graph setup, and checks the output. */
  private warmUp(modelJsonPath: string): void {
    const { height, width } = this.inputSize;
    const logits = this.tf.tidy(() => this.predict(this.tf.zeros([1, height, width, 3], 'float32') as Tensor4D));
    try {
      const [n, c] = logits.shape;
      if (logits.rank !== 2 || n !== 1 || c !== this.numClasses) {
        throw new ModelLoadError(`${modelJsonPath} answers shape [${logits.shape.join(', ')}] for one image; metadata.json expects [1, ${this.numClasses}].`);
      }
      if (!(logits.dataSync() as Float32Array).every(Number.isFinite)) {
        throw new ModelLoadError(`${modelJsonPath} answers non-finite logits for a zero image: the weights are corrupt.`);
      }
    } finally {
      logits.dispose();
    }
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ModelLoadError(`${file} is not valid JSON (${(err as Error).message}).`, { cause: err });
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ModelLoadError(`Cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`, { cause: err });
  }
}

async function readVerified(dir: string, entry: ModelMetadata['files'][number]): Promise<Buffer> {
  const file = path.join(dir, entry.path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new ModelLoadError(`Model file ${file} listed in metadata.json cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`, { cause: err });
  }
  if (bytes.length !== entry.bytes) {
    throw new ModelLoadError(`Model file ${file} has ${bytes.length} bytes; metadata.json says ${entry.bytes} (truncated or replaced).`);
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== entry.sha256) {
    throw new ModelLoadError(`Model file ${file} has sha256 ${digest}; metadata.json says ${entry.sha256} (corrupt or replaced).`);
  }
  return bytes;
}

interface GraphModelJson {
  format: string;
  modelTopology: GraphModelArtifacts['modelTopology'];
  signature?: object;
  weightsManifest: { paths: string[]; weights: io.WeightsManifestEntry[] }[];
}

function parseModelJson(bytes: Buffer, file: string): GraphModelJson {
  let json: Partial<GraphModelJson>;
  try {
    json = JSON.parse(bytes.toString('utf8')) as Partial<GraphModelJson>;
  } catch (err) {
    throw new ModelLoadError(`${file} is not valid JSON (${(err as Error).message}).`, { cause: err });
  }
  if (json.format !== 'graph-model' || !Array.isArray(json.modelTopology?.node) || !Array.isArray(json.weightsManifest)) {
    throw new ModelLoadError(`${file} is not a TF.js graph model (format "graph-model" with modelTopology and weightsManifest).`);
  }
  return json as GraphModelJson;
}

function concatToArrayBuffer(buffers: Buffer[]): ArrayBuffer {
  const total = buffers.reduce((sum, b) => sum + b.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const b of buffers) {
    out.set(b, offset);
    offset += b.length;
  }
  return out.buffer;
}

/** Checks the fields the server relies on; every failure names the field and the file. */
export function validateMetadata(value: unknown, file: string): ModelMetadata {
  const fail = (what: string): never => {
    throw new ModelLoadError(`${file} is invalid: ${what}.`);
  };
  const m = (typeof value === 'object' && value !== null ? value : fail('not a JSON object')) as Record<string, unknown>;
  if (m.schema !== 1) fail(`schema is ${JSON.stringify(m.schema)}, this server reads schema 1`);
  const isInt = (v: unknown, min: number): v is number => Number.isInteger(v) && (v as number) >= min;
  const numbers = (v: unknown, n: number): boolean => Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));

  if (!isInt(m.num_classes, 1)) fail('num_classes must be an integer >= 1');
  const classes = m.num_classes as number;
  const size = m.image_size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => isInt(d, 1))) fail('image_size must be [height, width]');
  const [height, width] = size as [number, number];
  if (!numbers(m.mean, 3)) fail('mean must be 3 numbers');
  if (!numbers(m.std, 3) || !(m.std as number[]).every((s) => s > 0)) fail('std must be 3 positive numbers');

  const input = (m.input ?? {}) as Record<string, unknown>;
  if (typeof input.name !== 'string' || input.name === '') fail('input.name must be a string');
  if (input.dtype !== 'float32' || input.layout !== 'NHWC') fail('input must be float32 NHWC');
  const shape = input.shape as unknown[];
  if (!Array.isArray(shape) || shape.length !== 4 || shape[1] !== height || shape[2] !== width || shape[3] !== 3) {
    fail(`input.shape must be [-1, ${height}, ${width}, 3] to match image_size`);
  }
  const output = (m.output ?? {}) as Record<string, unknown>;
  if (typeof output.name !== 'string' || output.name === '') fail('output.name must be a string');
  if (!Array.isArray(output.shape) || output.shape.length !== 2 || output.shape[1] !== classes) fail(`output.shape must be [-1, ${classes}] to match num_classes`);

  if (m.labels !== null && !(Array.isArray(m.labels) && m.labels.length === classes && m.labels.every((l) => typeof l === 'string'))) {
    fail(`labels must be null or ${classes} strings`);
  }
  if (!Array.isArray(m.files) || m.files.length === 0) fail('files must list model.json and its weight shards');
  for (const entry of m.files as Record<string, unknown>[]) {
    const p = entry?.path;
    // Plain file names only: metadata must not make the server read outside its model folder.
    if (typeof p !== 'string' || p === '' || path.basename(p) !== p || p === '..' || p === '.') fail(`files has an invalid path ${JSON.stringify(p)}`);
    if (!isInt(entry.bytes, 0)) fail(`files entry ${String(p)} needs an integer "bytes"`);
    if (typeof entry.sha256 !== 'string' || !SHA256.test(entry.sha256)) fail(`files entry ${String(p)} needs a hex "sha256"`);
  }
  if (typeof m.arch !== 'string') fail('arch must be a string');
  const source = (m.source ?? {}) as Record<string, unknown>;
  if (typeof source.checkpoint !== 'string' || typeof source.sha256 !== 'string' || typeof source.demo !== 'boolean') {
    fail('source must be {checkpoint, sha256, demo}');
  }
  return m as unknown as ModelMetadata;
}

