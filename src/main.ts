// Server entry: config -> runtime plan -> listen (health 503) -> engine workers load and warm the model -> ready;
// graceful shutdown on signals (SIGTERM drains first). With --workers N above 1 this process only supervises N
// copies of itself that share the port (src/cluster.ts); each of those loads the model and listens once it is warm.
import cluster from 'node:cluster';
import http from 'node:http';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { reportReady, runPrimary, threadsPerProcess, withFields } from './cluster';
import { ConfigError, parseConfig, usage, type Config } from './config';
import { ModelLoadError } from './engine/model';
import { startWorkerPool, WorkerStartError, type WorkerPool } from './engine/worker-pool';
import { describe } from './errors';
import { createApp } from './http/app';
import { AuthConfigError, createAuthenticator, type Authenticator } from './http/auth';
import { healthInfo, runtimeHealth, type HealthInfo } from './http/routes/health';
import type { Ready } from './http/state';
import { createLogger, type Logger } from './logger';
import { memoryAddonMissing } from './memory';
import { prepareRuntime, type RuntimePlan } from './runtime';
import { opAddonMissing } from './tf-ops';

/** How far Node's request timeout stays behind the upload route's, which must answer first. */
const NODE_TIMEOUT_MARGIN_MS = 5_000;

async function main(): Promise<number> {
  let config: Config;
  try {
    const parsed = parseConfig(process.argv.slice(2), process.env);
    if (parsed.help) {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    config = parsed.config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  const rootLogger = createLogger(config.logLevel, { format: config.logFormat });
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config.workers, withFields(rootLogger, { pid: process.pid }));
  const worker = cluster.worker;
  // The processes of a cluster write to one stream: each line says which one it comes from.
  const logger = worker ? withFields(rootLogger, { worker: worker.id, pid: process.pid }) : rootLogger;
  let auth: Authenticator | undefined;
  try {
    auth = createAuthenticator(config);
  } catch (err) {
    if (!(err instanceof AuthConfigError)) throw err;
    logger.error(`startup failed: ${err.message}`);
    return 2;
  }

  // Processes share the machine's cores: each takes its share, an engine thread per core of it. Each engine thread
  // runs its sessions itself unless --inter-op-threads asks for TensorFlow's pool (measured: docs/runtime.md).
  const share = threadsPerProcess(os.availableParallelism(), config.workers);
  let plan: RuntimePlan;
  try {
    plan = prepareRuntime({ device: config.device, intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads });
  } catch (err) {
    // Device and setup problems (no GPU, addon not built) carry their fix in the message.
    logger.error(`startup failed: ${(err as Error).message}`);
    return 1;
  }
  const noAddon = opAddonMissing();
  if (noAddon) {
    logger.error(`startup failed: ${noAddon}`);
    return 1;
  }

  // Caught from here on: a signal during the model load is acted on once the load is over.
  let serving = false;
  const stopSignal = new Promise<{ signal: NodeJS.Signals; drain: boolean }>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop).off('SIGINT', stop);
      // A further signal must not end the process (the default action) while requests are still being answered.
      const again = () => logger.warn('already shutting down; waiting for accepted requests to finish');
      process.on('SIGTERM', again).on('SIGINT', again);
      // Only an orchestrator's SIGTERM to a serving instance waits for load balancers: a terminal's SIGINT has none,
      // and an instance that never reported ready was never sent traffic.
      resolve({ signal, drain: signal === 'SIGTERM' && serving });
    };
    process.on('SIGTERM', stop).on('SIGINT', stop);
  });
  const loading = startWorkerPool({
    modelDir: config.modelDir,
    // One thread per core of this process's share on the CPU; a GPU is shared better by one.
    workers: config.threads ?? (plan.kind === 'cpu' ? share : 1),
    device: plan.kind,
    maxPixels: config.maxPixels,
    honourExif: config.honourExif,
    decodeTimeoutMs: config.decodeTimeoutMs,
    workerHeapMb: config.workerHeapMb,
    maxBatch: config.maxBatch,
    maxDelayMs: config.maxBatchDelayMs,
    // The helper thread shares the work of sessions that run in the engine threads, not in TensorFlow's pool.
    idleCoreMaxBatch: plan.interOpThreads < 0 ? config.idleCoreMaxBatch : 0,
    logger,
  });
  const ready: Promise<Ready> = loading.then((pool) => {
    // Behind one port, /health says which process answered.
    const health: HealthInfo & { process: { pid: number; worker?: number } } = {
      ...healthInfo(pool.metadata, runtimeHealth(pool.runtime)),
      process: { pid: process.pid, ...(worker ? { worker: worker.id } : {}) },
    };
    return { pipeline: pool.pipeline, health, engine: () => ({ threads: pool.workers, tensors: pool.tensors() }) };
  });
  const app = createApp({ config, logger, ready, auth });
  const server = http.createServer(app.koa.callback());
  server.on('checkContinue', app.checkContinue);
  // Node's own limits answer an empty 408: they stay behind the upload route's JSON 408 (whose clock starts once
  // the headers are in) as a backstop.
  server.headersTimeout = Math.min(config.requestTimeoutMs, 60_000);
  server.requestTimeout = server.headersTimeout + config.requestTimeoutMs + NODE_TIMEOUT_MARGIN_MS;

  // A lone process listens at once, so that /health answers "loading"; a cluster's process only once it can serve,
  // since the port is shared and its siblings may already be serving.
  if (!worker && !(await open(server, config, logger, 'listening (model loading)'))) return 1;
  let pool: WorkerPool;
  try {
    pool = await loading;
  } catch (err) {
    const known = err instanceof ModelLoadError || err instanceof WorkerStartError;
    logger.error(`startup failed: ${known ? (err as Error).message : `model load failed: ${describe(err)}`}`);
    server.close();
    server.closeAllConnections();
    return 1;
  }
  if (worker && !(await open(server, config, logger, 'listening'))) {
    await pool.close();
    return 1;
  }
  const { metadata } = pool;
  logger.info('ready', { arch: metadata.arch, classes: metadata.num_classes, image_size: metadata.image_size, demo: metadata.source.demo, threads: pool.workers, ...runtimeHealth(pool.runtime) });
  if (metadata.source.demo) logger.warn('serving the UNTRAINED demo model: predictions are meaningless; convert your best.pth with `make convert`');
  const noTrim = memoryAddonMissing();
  if (noTrim) logger.warn(`${noTrim}: memory freed after large images stays with the process until it is reused`);
  serving = true;
  reportReady();

  const { signal, drain } = await stopSignal;
  app.beginShutdown();
  if (drain && config.shutdownDrainMs > 0) {
    logger.info('draining: health reports stopping, new requests are still served', { signal, drain_ms: config.shutdownDrainMs });
    await sleep(config.shutdownDrainMs);
  }
  const clean = await shutdown(server, config.shutdownGraceMs, logger, signal);
  await pool.close();
  logger.info('stopped', { clean });
  return clean ? 0 : 1;
}

/** Listens on the configured address and logs `message` with the URL; false (logged with the fix) when it cannot. */
async function open(server: http.Server, config: Config, logger: Logger, message: string): Promise<boolean> {
  try {
    await listen(server, config);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EADDRINUSE'
        ? `port ${config.port} is in use: stop the other server or choose another port (--port / PORT).`
        : `cannot listen on ${config.host}:${config.port} (${code ?? (err as Error).message}): check --host / HOST and --port / PORT.`;
    logger.error(`startup failed: ${hint}`);
    return false;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(message, { url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}` });
  return true;
}

function listen(server: http.Server, config: Config): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Stops accepting connections, lets every request already received finish (keep-alive connections close after
 * their response), and cuts what is left after `graceMs`. Resolves true when nothing had to be cut.
 */
async function shutdown(server: http.Server, graceMs: number, logger: Logger, signal: string): Promise<boolean> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // Logged once the listener is closed: from this line on a new connection is refused.
  logger.info('shutting down: finishing accepted requests', { signal, grace_ms: graceMs });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  const cut = await Promise.race([closed.then(() => false), timedOut]);
  clearTimeout(timer);
  if (cut) {
    logger.error('shutdown grace period over: closing the remaining connections', { grace_ms: graceMs });
    server.closeAllConnections();
    await closed;
  }
  return !cut;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Open handles (TensorFlow thread pools) must not keep a stopped server alive.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${describe(err)}\n`);
    process.exit(1);
  },
);
