// Loads the one native TensorFlow binding of this process (tfjs-node or tfjs-node-gpu) and reports what it runs on.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Tensor, Tensor3D } from '@tensorflow/tfjs-node';
import type { NodeJSKernelBackend } from '@tensorflow/tfjs-node/dist/nodejs_kernel_backend';
import { convolutionKernels } from './tf-ops';

/** The tfjs-node namespace; tfjs-node-gpu exposes the same API. Import this type, never the package. */
export type Tf = typeof import('@tensorflow/tfjs-node');
export type DeviceChoice = 'auto' | 'cpu' | 'gpu';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['auto', 'cpu', 'gpu'];

export interface RuntimeInfo {
  /** npm package of the loaded binding. */
  binding: string;
  /** tfjs backend name; 'tensorflow' for both native bindings. */
  backend: string;
  /** Where the binding places kernels. */
  device: 'cpu' | 'gpu';
  /** TensorFlow device kinds in use, kernels' device first (the binding exposes kinds, not device names). */
  devices: string[];
  /** Version of the loaded libtensorflow. */
  tfVersion: string;
  tfjsVersion: string;
  /**
   * Thread pool sizes given to TensorFlow (option, else environment, else the measured defaults). Inter-op
   * `SESSION_RUNS_IN_CALLER` (-1, TensorFlow's convention): a session runs its ops in the thread that calls it.
   */
  intraOpThreads: number;
  interOpThreads: number;
  /** Whether TensorFlow's oneDNN CPU kernels are on (TF_ENABLE_ONEDNN_OPTS; off unless set, see docs/runtime.md). */
  oneDnn: boolean;
  /**
   * What runs the model's convolutions: PackedConv2D's kernels ('avx512', 'avx2', 'portable' when CONV_KERNELS asks for
   * it), or 'tensorflow' (a GPU, or a CPU without vector kernels for ours; docs/runtime.md).
   */
  convolutions: 'avx512' | 'avx2' | 'portable' | 'tensorflow';
}

export interface Runtime {
  tf: Tf;
  info: RuntimeInfo;
}

export interface RuntimeOptions {
  device: DeviceChoice;
  intraOpThreads?: number;
  interOpThreads?: number;
}

const BINDINGS = { cpu: '@tensorflow/tfjs-node', gpu: '@tensorflow/tfjs-node-gpu' } as const;
const SETUP_TARGET = { cpu: 'make setup', gpu: 'make setup-gpu' } as const;
// TensorFlow reads these when the binding creates its eager context, i.e. while the package loads.
const INTRA_ENV = 'TF_NUM_INTRAOP_THREADS';
const INTER_ENV = 'TF_NUM_INTEROP_THREADS';
// Measured on the 2-core target with the converted ResNet18, one image per prediction: one thread inside an op gives
// lower latency and CPU than TensorFlow's one-per-core default, and equal batch-8 time (docs/runtime.md).
const DEFAULT_INTRA_OP_THREADS = 1;
/**
 * TensorFlow's value for the inter-op pool that makes a session run every op in the calling thread, not in the pool.
 * The default: each engine thread runs its own batches, so handing them to a pool only adds two thread wake-ups per
 * run (measured: docs/runtime.md). Eager ops run in the calling thread whatever this says.
 */
export const SESSION_RUNS_IN_CALLER = -1;
// Measured on the 2-core target: oneDNN off costs less CPU per prediction at equal or better latency.
const ONEDNN_ENV = 'TF_ENABLE_ONEDNN_OPTS';

let current: Runtime | null = null;

/**
 * The values of the tensor `make` returns, with every tensor it made disposed. Not `tf.tidy(() => t.dataSync())`:
 * tidy walks whatever its function returns looking for tensors, element by element for a typed array (2.6 ms for
 * one 64x64x3 image).
 */
export function readOut<T extends Float32Array | Int32Array>(tf: Tf, make: () => Tensor): T {
  const out = tf.tidy(make);
  try {
    return out.dataSync() as T;
  } finally {
    out.dispose();
  }
}

/**
 * tfjs-node's backend (the CPU and GPU bindings alike), for what its public API does not offer (pinned tfjs-node
 * version; tested): its decoders without the int32 cast that tf.node.decode* adds, uint8 tensors from bytes, and
 * TensorFlow ops that tfjs does not expose, run by name.
 */
export interface NativeBackend {
  /** Whether the binding places kernels on a GPU. */
  isUsingGpuDevice: boolean;
  binding: {
    TF_UINT8: number;
    TF_INT32: number;
    TF_ATTR_TYPE: number;
    TF_ATTR_INT: number;
    TF_ATTR_STRING: number;
    createTensor(shape: number[], dtype: number, data: Uint8Array): number;
  };
  createOutputTensor(metadata: { id: number; shape: number[]; dtype: number }): Tensor3D;
  executeSingleOutput(name: string, attrs: { name: string; type: number; value: number | number[] | string }[], inputs: Tensor[]): Tensor;
  decodeJpeg(bytes: Uint8Array, channels: number, ratio: number, fancyUpscaling: boolean, tryRecoverTruncated: boolean,
    acceptableFraction: number, dctMethod: string): Tensor3D;
  decodePng(bytes: Uint8Array, channels: number): Tensor3D;
  decodeBmp(bytes: Uint8Array, channels: number): Tensor3D;
  runSavedModel(sessionId: number, inputs: Tensor[], inputInfos: { name: string; tfDtype: string }[], outputs: string[]): Tensor[];
}

export const nativeBackend = (tf: Tf): NativeBackend => tf.backend() as unknown as NativeBackend;

export type SavedModel = Awaited<ReturnType<Tf['node']['loadSavedModel']>>;

/**
 * Runs a loaded SavedModel's session for the tensors named `outputs`, feeding tensors by name: predict() feeds and
 * fetches only the signature's. Float32 feeds only. The caller disposes the outputs.
 */
export function runSessionOutputs(tf: Tf, model: SavedModel, feeds: Record<string, Tensor>, outputs: string[]): Tensor[] {
  const { sessionId } = model as unknown as { sessionId: number };
  const names = Object.keys(feeds);
  for (const name of names) {
    if (feeds[name].dtype !== 'float32') throw new TypeError(`feed ${name} is ${feeds[name].dtype}; runSessionOutputs feeds float32`);
  }
  return nativeBackend(tf).runSavedModel(sessionId, names.map((n) => feeds[n]), names.map((name) => ({ name, tfDtype: 'DT_FLOAT' })), outputs);
}

/** What loading will do: the binding, and the thread pools and oneDNN setting TensorFlow will be given. */
export interface RuntimePlan {
  kind: 'cpu' | 'gpu';
  intraOpThreads: number;
  interOpThreads: number;
  oneDnn: boolean;
}

/**
 * Chooses the binding ('auto': the GPU one when it is built and sees a CUDA device, probed in a child process),
 * checks that its addon is built, and sets TensorFlow's variables in this process's environment, without loading
 * any binding. Worker threads started afterwards see the same environment and load the planned binding.
 */
export function prepareRuntime(opts: RuntimeOptions): RuntimePlan {
  if (!DEVICE_CHOICES.includes(opts.device)) {
    throw new RangeError(`device must be one of ${DEVICE_CHOICES.join(', ')}, got ${JSON.stringify(opts.device)}`);
  }
  const intra = poolSize(INTRA_POOL, opts.intraOpThreads);
  const inter = poolSize(INTER_POOL, opts.interOpThreads);
  const oneDnn = oneDnnFromEnv();
  let kind: 'cpu' | 'gpu' = 'cpu';
  if (opts.device === 'gpu') {
    const why = gpuUnavailableReason();
    if (why !== null) {
      throw new Error(`device 'gpu' requested but ${why}; choose device cpu or auto (--device, DEVICE) to run on the CPU`);
    }
    kind = 'gpu';
  } else if (opts.device === 'auto' && gpuUnavailableReason() === null) {
    kind = 'gpu';
  }
  const missing = addonMissing(kind);
  if (missing !== null) throw new Error(missing);
  process.env[INTRA_ENV] = String(intra);
  process.env[INTER_ENV] = String(inter);
  process.env[ONEDNN_ENV] = oneDnn ? '1' : '0';
  // TensorFlow's INFO lines (CPU feature notes) are noise in a service log; warnings and errors still show.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  return { kind, intraOpThreads: intra, interOpThreads: inter, oneDnn };
}

/**
 * Loads `@tensorflow/tfjs-node` ('cpu'), `@tensorflow/tfjs-node-gpu` ('gpu'), or for 'auto' the GPU binding when it
 * is built and sees a CUDA device, else the CPU one. The GPU check runs in a child process so that a failed check
 * never leaves a second binding in this one. A later call returns the same runtime when compatible, else throws.
 */
export function loadRuntime(opts: RuntimeOptions): Runtime {
  if (current !== null) {
    if (!DEVICE_CHOICES.includes(opts.device)) {
      throw new RangeError(`device must be one of ${DEVICE_CHOICES.join(', ')}, got ${JSON.stringify(opts.device)}`);
    }
    poolSize(INTRA_POOL, opts.intraOpThreads);
    poolSize(INTER_POOL, opts.interOpThreads);
    return reuse(current, opts);
  }
  for (const binding of Object.values(BINDINGS)) {
    if (require.cache[safeResolve(binding) ?? ''] !== undefined) {
      throw new Error(`${binding} was loaded outside loadRuntime; one TensorFlow binding per process, ` +
        'so load it only through src/runtime.ts');
    }
  }
  const { kind, intraOpThreads: intra, interOpThreads: inter, oneDnn } = prepareRuntime(opts);
  // The one run-time load of a binding in the project (docs/architecture.md).
  const tf = require(BINDINGS[kind]) as Tf;
  const backend = tf.backend() as NodeJSKernelBackend;
  const onGpu = backend.isUsingGpuDevice;
  if (kind === 'gpu' && !onGpu) {
    throw new Error(`device 'gpu' requested but ${BINDINGS.gpu} found no CUDA device when loaded in this process`);
  }
  current = {
    tf,
    info: {
      binding: BINDINGS[kind],
      backend: tf.getBackend(),
      device: onGpu ? 'gpu' : 'cpu',
      devices: onGpu ? ['GPU', 'CPU'] : ['CPU'],
      tfVersion: backend.binding.TF_Version,
      tfjsVersion: tf.version.tfjs,
      intraOpThreads: intra,
      interOpThreads: inter,
      oneDnn,
      convolutions: convolutionsOn(onGpu ? 'gpu' : 'cpu'),
    },
  };
  return current;
}

/** What runs a session's convolutions on this device (sessions pack them where the CPU has vector kernels). */
export function convolutionsOn(device: 'cpu' | 'gpu'): RuntimeInfo['convolutions'] {
  const { vector, running } = convolutionKernels();
  return device === 'gpu' || vector === null ? 'tensorflow' : running;
}

function reuse(runtime: Runtime, opts: RuntimeOptions): Runtime {
  const { info } = runtime;
  const conflicts: string[] = [];
  if (opts.device !== 'auto' && opts.device !== info.device) {
    conflicts.push(`device '${opts.device}' (loaded: ${info.binding} on ${info.device})`);
  }
  if (opts.intraOpThreads !== undefined && opts.intraOpThreads !== info.intraOpThreads) {
    conflicts.push(`intraOpThreads ${opts.intraOpThreads} (loaded: ${info.intraOpThreads})`);
  }
  if (opts.interOpThreads !== undefined && opts.interOpThreads !== info.interOpThreads) {
    conflicts.push(`interOpThreads ${opts.interOpThreads} (loaded: ${info.interOpThreads})`);
  }
  if (conflicts.length > 0) {
    throw new Error(`TensorFlow is already loaded in this process and cannot change: ${conflicts.join('; ')}. ` +
      'One binding per process: start a new process for other settings');
  }
  return runtime;
}

interface PoolSpec {
  option: string;
  env: string;
  fallback: number;
  min: number;
  expected: string;
}

const INTRA_POOL: PoolSpec = { option: 'intraOpThreads', env: INTRA_ENV, fallback: DEFAULT_INTRA_OP_THREADS, min: 1, expected: 'a positive integer' };
const INTER_POOL: PoolSpec = {
  option: 'interOpThreads',
  env: INTER_ENV,
  fallback: SESSION_RUNS_IN_CALLER,
  min: SESSION_RUNS_IN_CALLER,
  expected: `${SESSION_RUNS_IN_CALLER} (sessions run in the calling thread), 0 or a positive integer`,
};

/** An explicit option wins; otherwise a value already in the environment is honoured; else the measured default. */
function poolSize(spec: PoolSpec, value: number | undefined): number {
  const fromEnv = process.env[spec.env];
  if (value === undefined && (fromEnv === undefined || fromEnv === '')) return spec.fallback;
  const count = value ?? Number(fromEnv);
  if (!Number.isInteger(count) || count < spec.min) {
    const [name, given] = value === undefined ? [spec.env, JSON.stringify(fromEnv)] : [spec.option, String(value)];
    throw new RangeError(`${name} must be ${spec.expected}, got ${given}`);
  }
  return count;
}

/** TensorFlow reads the variable as a boolean (0/1/true/false); unset means off here. */
function oneDnnFromEnv(): boolean {
  const value = (process.env[ONEDNN_ENV] ?? '0').toLowerCase();
  if (value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new RangeError(`${ONEDNN_ENV} must be 0, 1, true or false, got ${JSON.stringify(process.env[ONEDNN_ENV])}`);
}

function safeResolve(id: string): string | null {
  try {
    return require.resolve(id);
  } catch {
    return null;
  }
}

/** Path where the package's index.js will look for its native addon (node-pre-gyp's module_path). */
function addonPath(kind: 'cpu' | 'gpu'): string | null {
  const pkgJson = safeResolve(`${BINDINGS[kind]}/package.json`);
  if (pkgJson === null) return null;
  const preGyp = require(require.resolve('@mapbox/node-pre-gyp', { paths: [pkgJson] })) as {
    find(packageJsonPath: string): string;
  };
  return preGyp.find(pkgJson);
}

function addonMissing(kind: 'cpu' | 'gpu'): string | null {
  const addon = addonPath(kind);
  if (addon === null) return `${BINDINGS[kind]} is not installed; run \`${SETUP_TARGET[kind]}\``;
  if (!existsSync(addon)) {
    return `${BINDINGS[kind]} has no native addon at ${addon}; run \`${SETUP_TARGET[kind]}\` to build it`;
  }
  return null;
}

/** Null when the GPU binding is built and sees a CUDA device; else why not. Loads it in a child process only. */
function gpuUnavailableReason(): string | null {
  const missing = addonMissing('gpu');
  if (missing !== null) return missing;
  const probe = `const b = require(${JSON.stringify(BINDINGS.gpu)}).backend();` +
    'process.stdout.write(String(b.isUsingGpuDevice));';
  const child = spawnSync(process.execPath, ['-e', probe], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '0' },
  });
  if (child.error !== undefined) return `probing ${BINDINGS.gpu} failed: ${child.error.message}`;
  if (child.status !== 0) return `${BINDINGS.gpu} failed to load: ${gpuLog(child.stderr)}`;
  if (child.stdout.trim() === 'true') return null;
  // TensorFlow logs why it skipped the GPU: missing CUDA libraries, no driver, CUDA_VISIBLE_DEVICES.
  return `TensorFlow's CUDA build (${BINDINGS.gpu}) found no CUDA device (${gpuLog(child.stderr)})`;
}

/** The lines of TensorFlow's startup log that explain a GPU problem, else its last lines. */
function gpuLog(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const relevant = lines.filter((l) => /gpu|cuda|cudnn|driver/i.test(l));
  return (relevant.length > 0 ? relevant : lines).slice(-3).join(' | ') || 'no log output';
}
