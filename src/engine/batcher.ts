// Dynamic batching: jobs queue in arrival order; whenever one of the runners (a worker, or the in-process engine)
// is free it takes every queued job up to the batch limit, so batches grow with load and a lone job is not held.

/**
 * What a runner gives back for each job of a batch, in the batch's order. `retry`: the job was not run through no
 * fault of its own (its worker was replaced because of another job), so it goes back to the front of the queue.
 */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown; retry?: boolean };

/** Runs one batch; must settle every job (a rejection fails the whole batch). */
export type BatchRunner<J, R> = (jobs: J[]) => Promise<Settled<R>[]>;

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
  private readonly free: BatchRunner<J, R>[];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    runners: BatchRunner<J, R>[],
    private readonly options: BatcherOptions,
  ) {
    if (runners.length === 0) throw new RangeError('a Batcher needs at least one runner');
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${options.maxBatch}`);
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.free = [...runners];
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
    for (const p of batch) if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    void runner(batch.map((p) => p.job))
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
        this.free.push(runner);
        this.dispatch();
      });
  }
}
