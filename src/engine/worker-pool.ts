// The server's engine: worker threads that each hold a TensorFlow session of the model, fed batches by one Batcher.
// The main thread keeps only HTTP, admission and the queue, so it answers /health at once under any load.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
// libvips (sharp) stays loaded for the life of the process: unloading it when a worker thread exits can crash.
import 'sharp';
import { describe, ServiceError } from '../errors';
import { leavesMemoryBehind, ownArrayBuffer, tooSlow } from '../image/decode';
import type { Logger } from '../logger';
import { IdleRelease, releaseFreedMemory } from '../memory';
import type { RuntimeInfo } from '../runtime';
import { Batcher, type BatcherOptions, type GrowingRunner, type Settled } from './batcher';
import { readModelFolder, sessionOptions, writeSessionModel, type ModelMetadata } from './model';
import type { Pipeline, PipelineResult, PredictJob } from './pipeline';
import { fromWire, type FromWorker, type MoreJobs, type ToWorker, type WireJob, type WorkerSetup } from './protocol';

export interface PoolOptions extends BatcherOptions {
  modelDir: string;
  /** Worker threads, each running one batch at a time on its own TensorFlow session. */
  workers: number;
  device: 'cpu' | 'gpu';
  maxPixels: number;
  honourExif: boolean;
  /** Budget of one image's decode + preprocess; a worker past it is ended and replaced. */
  decodeTimeoutMs: number;
  /** JavaScript heap limit of each worker thread. */
  workerHeapMb: number;
  /**
   * Largest batch whose convolutions also run on a helper thread while another worker has no batch (0: never): a
   * lone request then uses two cores. Only on the CPU, with two workers or more.
   */
  idleCoreMaxBatch: number;
  logger: Logger;
}

export interface WorkerPool {
  pipeline: Pipeline;
  workers: number;
  metadata: ModelMetadata;
  runtime: RuntimeInfo;
  /** Tensors the workers hold, as each reported after its last batch (the model's own included): flat unless leaking. */
  tensors(): number;
  /** Refuses new work, lets queued and running batches finish, then ends the workers. */
  close(): Promise<void>;
}

/** A model-load failure reported by a worker; the message names the file and the fix (ModelLoadError's text). */
export class WorkerStartError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'WorkerStartError';
  }
}

// Compiled (dist/) the worker is worker.js; run through tsx, worker.ts, loaded with the parent's -r tsx/cjs.
const WORKER_FILE = path.join(__dirname, `worker${path.extname(__filename)}`);

/** Each upload goes over in a buffer of its own: a small Buffer shares Node's pool with other allocations. */
const toWire = (jobs: PredictJob[]): WireJob[] => jobs.map((job) => ({ bytes: ownArrayBuffer(job.bytes), topk: job.topk }));

/**
 * One worker thread: runs one batch at a time, which takes more jobs until its model call. It reports each decode
 * as it starts, and one that runs past the decode budget ends the thread: that job gets 422 decode_timeout, the
 * others of its batch go back to the queue.
 * A thread that dies while decoding blames that job the same way (413 when its heap limit was hit); one that dies
 * in the model call fails its whole batch.
 */
class EngineWorker {
  readonly ready: Promise<RuntimeInfo>;
  private readonly thread: Worker;
  /** Where jobs joining the running batch go (MoreJobs). */
  private readonly more: MessagePort;
  private nextId = 0;
  /** The batch that still takes jobs: sent, and its model call not begun. */
  private gathering: number | undefined;
  /** Tensors the thread held after its last batch. */
  tensors = 0;
  private readonly running = new Map<number, { jobs: number; settle: (results: Settled<PipelineResult>[] | Error) => void }>();
  /** The job being decoded, with its budget timer (none when its decoder times itself). */
  private decoding: { id: number; index: number; timer?: NodeJS.Timeout } | undefined;
  private exited = false;

  constructor(
    setup: Omit<WorkerSetup, 'more'>,
    heapMb: number,
    private readonly onExit: (worker: EngineWorker, reason: Error) => void,
  ) {
    const channel = new MessageChannel();
    this.more = channel.port1;
    this.thread = new Worker(WORKER_FILE, {
      workerData: { ...setup, more: channel.port2 } satisfies WorkerSetup,
      transferList: [channel.port2],
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
    });
    this.ready = new Promise((resolve, reject) => {
      this.thread.on('message', (message: FromWorker) => {
        if (message.type === 'ready') resolve(message.runtime);
        else if (message.type === 'failed') reject(new WorkerStartError(fromWire(message.error).message));
        else if (message.type === 'decoding') {
          this.stopClock();
          const timer = message.selfTimed ? undefined : setTimeout(() => this.end(setup.decodeTimeoutMs), setup.decodeTimeoutMs);
          this.decoding = { id: message.id, index: message.index, timer };
        } else if (message.type === 'inferring') {
          this.stopClock();
          if (this.gathering === message.id) this.gathering = undefined;
        } else {
          this.stopClock();
          this.tensors = message.tensors;
          const batch = this.running.get(message.id);
          this.running.delete(message.id);
          if (!batch) return;
          const results: Settled<PipelineResult>[] = message.results.map((r) => (r.ok ? r : { ok: false, error: fromWire(r.error) }));
          // Jobs sent after the worker's last look before its model call: they go back to the queue.
          while (results.length < batch.jobs) results.push({ ok: false, error: new Error('the batch had closed'), retry: true });
          batch.settle(results);
        }
      });
      this.thread.on('error', (err) => this.fail(err, reject));
      this.thread.on('exit', (code) => this.fail(new Error(`engine worker exited with code ${code}`), reject));
    });
  }

  run(jobs: PredictJob[]): Promise<Settled<PipelineResult>[]> {
    // A worker being replaced hands the jobs back to the queue, for its successor or another worker.
    if (this.exited) return Promise.resolve(jobs.map(() => ({ ok: false, error: new Error('engine worker replaced'), retry: true })));
    const id = this.nextId++;
    const wire = toWire(jobs);
    return new Promise((resolve, reject) => {
      this.running.set(id, { jobs: jobs.length, settle: (results) => (results instanceof Error ? reject(results) : resolve(results)) });
      this.gathering = id;
      this.thread.postMessage({ type: 'batch', id, jobs: wire } satisfies ToWorker, wire.map((j) => j.bytes));
    });
  }

  /** Sends `jobs` to join the running batch; false once it has begun its model call (or the thread is gone). */
  add(jobs: PredictJob[]): boolean {
    const id = this.gathering;
    const batch = id === undefined ? undefined : this.running.get(id);
    if (this.exited || id === undefined || !batch) return false;
    batch.jobs += jobs.length;
    const wire = toWire(jobs);
    this.more.postMessage({ id, jobs: wire } satisfies MoreJobs, wire.map((j) => j.bytes));
    return true;
  }

  terminate(): Promise<number> {
    this.exited = true;
    this.stopClock();
    this.more.close();
    return this.thread.terminate();
  }

  private stopClock(): void {
    clearTimeout(this.decoding?.timer);
    this.decoding = undefined;
  }

  /**
   * Settles every batch of this thread: the job being decoded gets `own`, the rest of its batch is retried; any
   * other batch (dying in the model call) fails with `error`.
   */
  private settleAll(own: ServiceError, error: Error): void {
    const current = this.decoding;
    this.stopClock();
    for (const [id, batch] of this.running) {
      if (current?.id === id) {
        batch.settle(Array.from({ length: batch.jobs }, (_, i) => (i === current.index ? { ok: false, error: own } : { ok: false, error, retry: true })));
      } else batch.settle(error);
    }
    this.running.clear();
  }

  /** Ends a thread that ran past the decode budget; the pool starts its successor at once. */
  private end(budgetMs: number): void {
    if (this.exited) return;
    this.exited = true;
    const reason = new Error(`a decode ran past its budget of ${budgetMs} ms; the engine worker was ended`);
    this.more.close();
    this.settleAll(tooSlow(undefined, budgetMs), reason);
    // A thread busy in native code stops when that call returns; its successor does not wait for it.
    void this.thread.terminate();
    this.onExit(this, reason);
  }

  private fail(err: Error, rejectStart: (err: Error) => void): void {
    if (this.exited) return;
    this.exited = true;
    this.more.close();
    rejectStart(err);
    this.settleAll(crashError(err), err);
    this.onExit(this, err);
  }
}

/** The error of a job whose decoding killed its worker: over the heap budget, or a crash in a decoder. */
function crashError(err: Error): ServiceError {
  if ((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return new ServiceError(413, 'image_too_large',
      'Decoding this image needed more memory than this server allows one image (WORKER_HEAP_MB); send a smaller or plainer file.', { cause: err });
  }
  return new ServiceError(422, 'corrupt_image', 'The decoder failed on this file; re-save it as a plain JPEG or PNG.', { cause: err });
}

/**
 * Verifies the model folder, writes its session graph once, starts `workers` threads that load it, and resolves
 * when all are ready (rejects with the first failure). A worker that dies later fails its batch (500) and is
 * replaced.
 */
export async function startWorkerPool(options: PoolOptions): Promise<WorkerPool> {
  const { logger } = options;
  const folder = await readModelFolder(options.modelDir);
  const sessionDir = writeSessionModel(folder, sessionOptions(options.device));
  const setup: Omit<WorkerSetup, 'more'> = {
    modelDir: options.modelDir,
    metadata: folder.metadata,
    sessionDir,
    device: options.device,
    maxPixels: options.maxPixels,
    honourExif: options.honourExif,
    decodeTimeoutMs: options.decodeTimeoutMs,
  };
  let closing = false;
  let started = false;
  const workers: EngineWorker[] = [];
  const lend = options.device === 'cpu' && options.workers >= 2 && options.idleCoreMaxBatch > 0;
  const slots = lend ? new Int32Array(new SharedArrayBuffer(options.workers * Int32Array.BYTES_PER_ELEMENT)) : undefined;
  const spawn = (slot: number): EngineWorker => {
    const lending = slots && { slots, slot, maxBatch: options.idleCoreMaxBatch };
    return new EngineWorker({ ...setup, ...(lending && { lending }) }, options.workerHeapMb, onExit);
  };
  const onExit = (gone: EngineWorker, reason: Error): void => {
    if (closing || !started) return;
    logger.warn('engine worker ended; starting a new one', { reason: describe(reason) });
    const slot = workers.indexOf(gone);
    // The thread ended in the middle of a batch: its slot would read busy for good.
    if (slots) Atomics.store(slots, slot, 0);
    const replacement = spawn(slot);
    workers[slot] = replacement;
    replacement.ready.catch((err: unknown) => logger.error('replacement engine worker failed to start', { error: describe(err) }));
  };
  for (let i = 0; i < options.workers; i++) workers.push(spawn(i));
  let runtime: RuntimeInfo;
  try {
    [runtime] = await Promise.all(workers.map((w) => w.ready));
  } catch (err) {
    closing = true;
    await Promise.all(workers.map((w) => w.terminate()));
    rmSync(sessionDir, { recursive: true, force: true });
    throw err;
  }
  started = true;
  // Every worker has read the graph: keep it for replacements, removed when the pool closes.
  // Loading and the first session runs freed much of what they allocated.
  releaseFreedMemory();

  // Jobs remember when they were submitted and when a worker took them, so that each answer tells how long it waited.
  const submitted = new WeakMap<PredictJob, number>();
  const taken = new WeakMap<PredictJob, number>();
  const take = (jobs: PredictJob[]) => jobs.forEach((job) => taken.set(job, performance.now()));
  const runners = workers.map((_, slot): GrowingRunner<PredictJob, PipelineResult> => {
    let batch: PredictJob[] = [];
    return {
      run: async (jobs) => {
        batch = [...jobs];
        take(jobs);
        const results = await workers[slot].run(jobs);
        return results.map((r, i) => {
          if (!r.ok) return r;
          const queuedMs = (taken.get(batch[i]) ?? 0) - (submitted.get(batch[i]) ?? 0);
          return { ok: true as const, value: { ...r.value, timing: { ...r.value.timing, queuedMs } } };
        });
      },
      add: (jobs) => {
        if (!workers[slot].add(jobs)) return false;
        take(jobs);
        batch.push(...jobs);
        return true;
      },
    };
  });
  const batcher = new Batcher<PredictJob, PipelineResult>(runners, { maxBatch: options.maxBatch, maxDelayMs: options.maxDelayMs });
  // Predictions not yet settled, so that close() can wait for them.
  let pending = 0;
  let drained: (() => void) | undefined;
  // An image answered since the workers were last idle left much memory free in the allocator.
  let releaseWanted = false;
  const idleRelease = new IdleRelease();
  return {
    metadata: folder.metadata,
    workers: workers.length,
    runtime,
    tensors: () => workers.reduce((sum, w) => sum + w.tensors, 0),
    pipeline: {
      numClasses: folder.metadata.num_classes,
      predict: (bytes, topk, opts = {}) => {
        if (pending++ === 0) idleRelease.busy();
        const job = { bytes, topk };
        submitted.set(job, performance.now());
        return batcher
          .submit(job, opts.signal)
          .then((result) => {
            releaseWanted ||= leavesMemoryBehind(result.source);
            return result;
          })
          .finally(() => {
            pending -= 1;
            if (pending > 0) return;
            drained?.();
            // Every worker is idle: what a large image's decode and resize freed goes back to the system at once
            // (memory.ts). After ordinary photos only once the engine stays idle: the next request would fault the
            // same pages in again.
            idleRelease.idle(releaseWanted);
            releaseWanted = false;
          });
      },
    },
    async close() {
      closing = true;
      batcher.close();
      if (pending > 0) await new Promise<void>((resolve) => (drained = resolve));
      idleRelease.close();
      await Promise.all(workers.map((w) => w.terminate()));
      rmSync(sessionDir, { recursive: true, force: true });
    },
  };
}
