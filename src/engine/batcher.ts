// Dynamic batching: jobs queue in arrival order; whenever one of the runners (a worker, or the in-process engine)
// is free it takes every queued job up to the batch limit, so batches grow with load and a lone job is not held.
// A runner that can still take jobs into the batch it runs (a worker decoding, before its model call) is handed
// jobs that arrive while no runner is free: under steady load no job waits for a whole batch to end.

/**
 * What a runner gives back for each job of a batch, in the batch's order. `retry`: the job was not run through no
 * fault of its own (its worker was replaced because of another job), so it goes back to the front of the queue.
 */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown; retry?: boolean };

/** Runs one batch; must settle every job, those added included (a rejection fails the whole batch). */
export type BatchRunner<J, R> = (jobs: J[]) => Promise<Settled<R>[]>;

/** A runner whose running batch may grow. */
export interface GrowingRunner<J, R> {
  run: BatchRunner<J, R>;
  /**
   * Offers jobs to the batch running now; false when it takes no more (its model call began). Jobs taken are settled
   * after those given to `run`, in the order added; one offered too late to make the batch is settled with `retry`.
   */
  add(jobs: J[]): boolean;
}

export interface BatcherOptions {
  /** Largest number of jobs one runner takes at once. */
  maxBatch: number;
  /**
   * How long a free runner waits for more jobs when it would start a batch smaller than `maxBatch` (0: start at
   * once). The first job of a batch is never held longer than this.
   */
  maxDelayMs: number;
}

interface Pending<J, R> {
  job: J;
  resolve(value: R): void;
  reject(error: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Batcher<J, R> {
  private readonly queue: Pending<J, R>[] = [];
  private readonly free: GrowingRunner<J, R>[];
  /** The batch each busy runner is running, in the order its results come. */
  private readonly running = new Map<GrowingRunner<J, R>, Pending<J, R>[]>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    runners: (BatchRunner<J, R> | GrowingRunner<J, R>)[],
    private readonly options: BatcherOptions,
  ) {
    if (runners.length === 0) throw new RangeError('a Batcher needs at least one runner');
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${options.maxBatch}`);
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.free = runners.map((r) => (typeof r === 'function' ? { run: r, add: () => false } : r));
  }

  /** Jobs waiting for a runner (not those running). */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Queues `job`. Aborting `signal` while the job waits rejects at once with the signal's reason and the job never
   * runs; once a runner has taken it, it runs to its end.
   */
  submit(job: J, signal?: AbortSignal): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.closed) throw new Error('the batcher is closed');
      signal?.throwIfAborted();
      const pending: Pending<J, R> = { job, resolve, reject, signal };
      this.watch(pending);
      this.queue.push(pending);
      this.dispatch();
    });
  }

  /** While `pending` waits in the queue, aborting its signal takes it out and rejects it. */
  private watch(pending: Pending<J, R>): void {
    const { signal } = pending;
    if (!signal) return;
    pending.onAbort = () => {
      const at = this.queue.indexOf(pending);
      if (at >= 0) {
        this.queue.splice(at, 1);
        pending.reject(signal.reason);
      }
    };
    signal.addEventListener('abort', pending.onAbort, { once: true });
  }

  /** Refuses new jobs; queued and running ones still complete. */
  close(): void {
    this.closed = true;
  }

  private dispatch(): void {
    while (this.free.length > 0 && this.queue.length > 0) {
      if (this.queue.length < this.options.maxBatch && this.options.maxDelayMs > 0) {
        // Wait a little for a fuller batch; a full one or the timer starts it.
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.start();
          this.dispatch();
        }, this.options.maxDelayMs);
        return;
      }
      this.start();
    }
    if (this.free.length === 0) this.grow();
  }

  /** Hands queued jobs to running batches with room, the smallest batch first. */
  private grow(): void {
    const batches = [...this.running].sort((a, b) => a[1].length - b[1].length);
    for (const [runner, batch] of batches) {
      const room = this.options.maxBatch - batch.length;
      if (this.queue.length === 0) return;
      if (room <= 0) continue;
      const taken = this.queue.slice(0, room);
      if (!runner.add(taken.map((p) => p.job))) continue;
      this.queue.splice(0, taken.length);
      this.unwatch(taken);
      batch.push(...taken);
    }
  }

  private unwatch(taken: Pending<J, R>[]): void {
    for (const p of taken) if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
  }

  /** Hands the oldest jobs, up to the limit, to a free runner. */
  private start(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const runner = this.free.pop();
    if (!runner || this.queue.length === 0) {
      if (runner) this.free.push(runner);
      return;
    }
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.unwatch(batch);
    this.running.set(runner, batch);
    void runner
      .run(batch.map((p) => p.job))
      .then(
        (results) => {
          if (results.length !== batch.length) throw new Error(`a batch runner settled ${results.length} of ${batch.length} jobs`);
          const again = batch.filter((p, i) => {
            const r = results[i];
            if (r.ok) p.resolve(r.value);
            else if (!r.retry) p.reject(r.error);
            return !r.ok && r.retry;
          });
          for (const p of again) {
            if (p.signal?.aborted) p.reject(p.signal.reason);
            else this.watch(p);
          }
          this.queue.unshift(...again.filter((p) => !p.signal?.aborted));
        },
        (error: unknown) => batch.forEach((p) => p.reject(error)),
      )
      .catch((error: unknown) => batch.forEach((p) => p.reject(error)))
      .finally(() => {
        this.running.delete(runner);
        this.free.push(runner);
        this.dispatch();
      });
  }
}
