// The converted classifier: Model.load validates model_tfjs/ against metadata.json, loads and warms it; predict runs it.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import type { GraphModel, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { Tf } from './runtime';

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

export class Model {
  readonly metadata: Readonly<ModelMetadata>;
  readonly dir: string;
  private readonly tf: Tf;
  private graph: GraphModel | undefined;

  private constructor(tf: Tf, graph: GraphModel, metadata: ModelMetadata, dir: string) {
    this.tf = tf;
    this.graph = graph;
    this.metadata = metadata;
    this.dir = dir;
  }

  /**
   * Reads `dir/metadata.json`, checks every listed file (size and sha256), loads exactly the verified bytes as a
   * graph model, checks its input and output against the metadata, and runs one warm-up batch.
   */
  static async load(tf: Tf, dir: string): Promise<Model> {
    const metadataPath = path.join(dir, 'metadata.json');
    const metadata = validateMetadata(JSON.parse(await readText(metadataPath)) as unknown, metadataPath);
    const files = new Map<string, Buffer>();
    for (const entry of metadata.files) files.set(entry.path, await readVerified(dir, entry));

    const modelJsonPath = path.join(dir, 'model.json');
    const modelJson = files.get('model.json');
    if (!modelJson) throw new ModelLoadError(`${metadataPath} does not list model.json.`);
    const artifacts = parseModelJson(modelJson, modelJsonPath);
    const weightBuffers: Buffer[] = [];
    for (const group of artifacts.weightsManifest) {
      for (const shard of group.paths) {
        const bytes = files.get(shard);
        if (!bytes) throw new ModelLoadError(`${modelJsonPath} names weight file ${shard}, which ${metadataPath} does not list.`);
        weightBuffers.push(bytes);
      }
    }
    const weightData = concatToArrayBuffer(weightBuffers);
    const weightSpecs = artifacts.weightsManifest.flatMap((group) => group.weights);

    let graph: GraphModel;
    try {
      graph = await tf.loadGraphModel(
        tf.io.fromMemory({ modelTopology: artifacts.modelTopology, format: artifacts.format, signature: artifacts.signature, weightSpecs, weightData }),
      );
    } catch (err) {
      throw new ModelLoadError(`TensorFlow.js could not load ${modelJsonPath}: ${(err as Error).message}.`, { cause: err });
    }
    const model = new Model(tf, graph, metadata, dir);
    try {
      model.checkSignature(modelJsonPath);
      model.warmUp(modelJsonPath);
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
    const graph = this.graph;
    if (!graph) throw new Error('Model.predict called after dispose()');
    const { height, width } = this.inputSize;
    const [n, h, w, c] = batch.shape;
    if (batch.dtype !== 'float32') throw new TypeError(`Model.predict expects a float32 batch, got ${batch.dtype}`);
    if (batch.rank !== 4 || h !== height || w !== width || c !== 3 || n < 1) {
      throw new RangeError(`Model.predict expects a batch [N, ${height}, ${width}, 3], got [${batch.shape.join(', ')}]`);
    }
    const { input, output } = this.metadata;
    return this.tf.tidy(() => graph.execute({ [input.name]: batch }, output.name) as Tensor2D);
  }

  dispose(): void {
    this.graph?.dispose();
    this.graph = undefined;
  }

  private checkSignature(modelJsonPath: string): void {
    const graph = this.graph as GraphModel;
    const { input, output } = this.metadata;
    if (graph.inputNodes.length !== 1 || graph.inputNodes[0] !== input.name) {
      throw new ModelLoadError(`${modelJsonPath} has inputs [${graph.inputNodes.join(', ')}]; metadata.json expects one input "${input.name}".`);
    }
    if (!graph.outputNodes.includes(output.name)) {
      throw new ModelLoadError(`${modelJsonPath} has outputs [${graph.outputNodes.join(', ')}]; metadata.json expects "${output.name}".`);
    }
    const declared = graph.inputs[0]?.shape;
    const expected = input.shape;
    const fits = declared && declared.length === 4 && declared.every((d, i) => d === -1 || d === null || i === 0 || d === expected[i]);
    if (!fits) {
      throw new ModelLoadError(`${modelJsonPath} declares input shape [${declared?.join(', ') ?? '?'}]; metadata.json says [${expected.join(', ')}].`);
    }
  }

  /** Runs a zero batch once so the first request does not pay for kernel setup, and checks the output shape. */
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
  modelTopology: object;
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
  if (json.format !== 'graph-model' || typeof json.modelTopology !== 'object' || !Array.isArray(json.weightsManifest)) {
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

