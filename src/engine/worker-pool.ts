// The server's engine: worker threads that each hold a TensorFlow session of the model, fed batches by one Batcher.
// The main thread keeps only HTTP, admission and the queue, so it answers /health at once under any load.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe } from '../errors';
import { ownArrayBuffer } from '../image/decode';
import type { Logger } from '../logger';
import type { RuntimeInfo } from '../runtime';
import { Batcher, type BatcherOptions, type Settled } from './batcher';
import { readModelFolder, writeSessionModel, type ModelMetadata } from './model';
import type { Pipeline, PipelineResult, PredictJob } from './pipeline';
import { fromWire, type FromWorker, type ToWorker, type WorkerSetup } from './protocol';

export interface PoolOptions extends BatcherOptions {
  modelDir: string;
  /** Worker threads, each running one batch at a time on its own TensorFlow session. */
  workers: number;
  device: 'cpu' | 'gpu';
  maxPixels: number;
  honourExif: boolean;
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

/** One worker thread: runs one batch at a time; `run` rejects every job of the batch if the thread dies. */
class EngineWorker {
  readonly ready: Promise<RuntimeInfo>;
  private readonly thread: Worker;
  private nextId = 0;
  /** Tensors the thread held after its last batch. */
  tensors = 0;
  private readonly running = new Map<number, (results: Settled<PipelineResult>[] | Error) => void>();
  private exited = false;

  constructor(setup: WorkerSetup, private readonly onExit: (worker: EngineWorker, reason: Error) => void) {
    this.thread = new Worker(WORKER_FILE, { workerData: setup });
    this.ready = new Promise((resolve, reject) => {
      this.thread.on('message', (message: FromWorker) => {
        if (message.type === 'ready') resolve(message.runtime);
        else if (message.type === 'failed') reject(new WorkerStartError(fromWire(message.error).message));
        else {
          this.tensors = message.tensors;
          const settle = this.running.get(message.id);
          this.running.delete(message.id);
          settle?.(message.results.map((r) => (r.ok ? r : { ok: false, error: fromWire(r.error) })));
        }
      });
      this.thread.on('error', (err) => this.fail(err, reject));
      this.thread.on('exit', (code) => this.fail(new Error(`engine worker exited with code ${code}`), reject));
    });
  }

  run(jobs: PredictJob[]): Promise<Settled<PipelineResult>[]> {
    if (this.exited) return Promise.reject(new Error('engine worker is gone'));
    const id = this.nextId++;
    // Each upload goes over in a buffer of its own: a small Buffer shares Node's pool with other allocations.
    const wire = jobs.map((job) => ({ bytes: ownArrayBuffer(job.bytes), topk: job.topk }));
    return new Promise((resolve, reject) => {
      this.running.set(id, (results) => (results instanceof Error ? reject(results) : resolve(results)));
      this.thread.postMessage({ type: 'batch', id, jobs: wire } satisfies ToWorker, wire.map((j) => j.bytes));
    });
  }

  terminate(): Promise<number> {
    this.exited = true;
    return this.thread.terminate();
  }

  private fail(err: Error, rejectStart: (err: Error) => void): void {
    if (this.exited) return;
    this.exited = true;
    rejectStart(err);
    for (const settle of this.running.values()) settle(err);
    this.running.clear();
    this.onExit(this, err);
  }
}

/**
 * Verifies the model folder, writes its session graph once, starts `workers` threads that load it, and resolves
 * when all are ready (rejects with the first failure). A worker that dies later fails its batch (500) and is
 * replaced.
 */
export async function startWorkerPool(options: PoolOptions): Promise<WorkerPool> {
  const { logger } = options;
  const folder = await readModelFolder(options.modelDir);
  const sessionDir = writeSessionModel(folder);
  const setup: WorkerSetup = {
    modelDir: options.modelDir,
    metadata: folder.metadata,
    sessionDir,
    device: options.device,
    maxPixels: options.maxPixels,
    honourExif: options.honourExif,
  };
  let closing = false;
  let started = false;
  const workers: EngineWorker[] = [];
  const spawn = (): EngineWorker => new EngineWorker(setup, onExit);
  const onExit = (gone: EngineWorker, reason: Error): void => {
    if (closing || !started) return;
    logger.error('engine worker died; starting a new one', { error: describe(reason) });
    const replacement = spawn();
    workers[workers.indexOf(gone)] = replacement;
    replacement.ready.catch((err: unknown) => logger.error('replacement engine worker failed to start', { error: describe(err) }));
  };
  for (let i = 0; i < options.workers; i++) workers.push(spawn());
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

  const runners = workers.map((_, slot) => (jobs: PredictJob[]) => workers[slot].run(jobs));
  const batcher = new Batcher<PredictJob, PipelineResult>(runners, { maxBatch: options.maxBatch, maxDelayMs: options.maxDelayMs });
  // Predictions not yet settled, so that close() can wait for them.
  let pending = 0;
  let drained: (() => void) | undefined;
  return {
    metadata: folder.metadata,
    workers: workers.length,
    runtime,
    tensors: () => workers.reduce((sum, w) => sum + w.tensors, 0),
    pipeline: {
      numClasses: folder.metadata.num_classes,
      predict: (bytes, topk, opts = {}) => {
        pending += 1;
        return batcher.submit({ bytes, topk }, opts.signal).finally(() => {
          pending -= 1;
          if (pending === 0) drained?.();
        });
      },
    },
    async close() {
      closing = true;
      batcher.close();
      if (pending > 0) await new Promise<void>((resolve) => (drained = resolve));
      await Promise.all(workers.map((w) => w.terminate()));
      rmSync(sessionDir, { recursive: true, force: true });
    },
  };
}
