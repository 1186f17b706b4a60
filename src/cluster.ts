// Several service processes on one port (node:cluster, as gunicorn's workers): the primary loads no model, forks
// them, replaces one that dies after it had served, and passes SIGTERM/SIGINT on, so that each drains and stops
// exactly as a single process does (src/main.ts). docs/deploy.md has the behaviour, docs/runtime.md the measurement.
import cluster, { type Worker } from 'node:cluster';
import type { LogFields, Logger } from './logger';

/** What a worker process sends the primary once its model is warm and it listens. */
const READY_MESSAGE = 'torch-serve-node:ready';

/** Engine threads (and TensorFlow inter-op threads) of each of `processes` processes on `cores` cores. */
export function threadsPerProcess(cores: number, processes: number): number {
  return Math.max(1, Math.floor(cores / processes));
}

/** `logger` with `fields` on every line (a process's id, for lines of several processes on one stream). */
export function withFields(logger: Logger, fields: LogFields): Logger {
  return {
    debug: (message, more) => logger.debug(message, { ...fields, ...more }),
    info: (message, more) => logger.info(message, { ...fields, ...more }),
    warn: (message, more) => logger.warn(message, { ...fields, ...more }),
    error: (message, more) => logger.error(message, { ...fields, ...more }),
  };
}

/** Called by a worker process once it serves: from then on the primary replaces it if it dies. */
export function reportReady(): void {
  process.send?.(READY_MESSAGE);
}

/**
 * Forks `workers` processes running this program and supervises them. Resolves with the exit code: 0 when a signal
 * stopped them and every one exited 0; a worker's code (else 1) when one failed before it became ready (a model
 * or port that fails one fails all: restarting would loop), after the others were stopped.
 */
export function runPrimary(workers: number, logger: Logger): Promise<number> {
  const live = new Set<Worker>();
  const ready = new Set<Worker>();
  let stopping: NodeJS.Signals | undefined;
  let failedCode: number | undefined;
  let clean = true;

  const stopAll = (signal: NodeJS.Signals) => {
    for (const worker of live) worker.process.kill(signal);
  };

  return new Promise((resolve) => {
    const fork = () => {
      const worker = cluster.fork();
      live.add(worker);
      logger.info('worker process started', { worker: worker.id, worker_pid: worker.process.pid });
    };
    cluster.on('message', (worker, message) => {
      if (message !== READY_MESSAGE) return;
      ready.add(worker);
      logger.info('worker process serving', { worker: worker.id, worker_pid: worker.process.pid, serving: ready.size, of: workers });
    });
    cluster.on('exit', (worker, code, signal) => {
      live.delete(worker);
      const served = ready.delete(worker);
      const fields = { worker: worker.id, worker_pid: worker.process.pid, code, signal };
      if (stopping === undefined && failedCode === undefined) {
        if (served) {
          logger.error('worker process exited; starting a replacement', fields);
          fork();
          return;
        }
        failedCode = code || 1;
        logger.error('worker process failed at startup (its log says why); stopping the others', fields);
        stopAll('SIGINT');
      } else if (code !== 0) {
        clean = false;
      }
      if (live.size > 0) return;
      const exitCode = failedCode ?? (clean ? 0 : 1);
      logger.info('all worker processes exited', { code: exitCode });
      resolve(exitCode);
    });

    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop).off('SIGINT', stop);
      const again = () => logger.warn('already shutting down; waiting for the worker processes to finish');
      process.on('SIGTERM', again).on('SIGINT', again);
      stopping = signal;
      logger.info('passing the signal on to the worker processes', { signal, workers: live.size });
      stopAll(signal);
    };
    process.on('SIGTERM', stop).on('SIGINT', stop);
    for (let i = 0; i < workers; i++) fork();
  });
}
