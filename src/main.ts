// Server entry: config -> runtime -> listen (health 503) -> Model.load and warm-up -> ready; graceful shutdown on signals.
import http from 'node:http';
import { createApp, type Ready } from './app';
import { ConfigError, parseConfig, usage, type Config } from './config';
import { describe } from './errors';
import { createLogger, type Logger } from './logger';
import { ModelLoadError, type Model } from './model';
import { loadPipeline } from './pipeline';
import { healthInfo, runtimeHealth } from './routes/health';
import { loadRuntime, type Runtime } from './runtime';

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
  const logger = createLogger(config.logLevel);

  let runtimeLoaded: Runtime;
  try {
    runtimeLoaded = loadRuntime({ device: config.device, intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads });
  } catch (err) {
    // Device and setup problems (no GPU, addon not built) carry their fix in the message.
    logger.error(`startup failed: ${(err as Error).message}`);
    return 1;
  }
  const { tf, info } = runtimeLoaded;
  const runtime = runtimeHealth(info);
  logger.info('runtime loaded', { ...runtime });

  // Caught from here on: a signal during the model load is acted on once the load is over.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const loading = loadPipeline(tf, config.modelDir, { maxPixels: config.maxPixels, honourExif: config.honourExif });
  const ready: Promise<Ready> = loading.then(({ pipeline, model }) => ({ pipeline, health: healthInfo(model, runtime) }));
  const app = createApp({ config, logger, ready });
  const server = http.createServer(app.koa.callback());
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = Math.min(config.requestTimeoutMs, 60_000);

  try {
    await listen(server, config);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EADDRINUSE'
        ? `port ${config.port} is in use: stop the other server or choose another port (--port / PORT).`
        : `cannot listen on ${config.host}:${config.port} (${code ?? (err as Error).message}): check --host / HOST and --port / PORT.`;
    logger.error(`startup failed: ${hint}`);
    return 1;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info('listening (model loading)', { url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}` });

  let model: Model;
  try {
    ({ model } = await loading);
  } catch (err) {
    const message = err instanceof ModelLoadError ? err.message : `model load failed: ${describe(err)}`;
    logger.error(`startup failed: ${message}`);
    server.close();
    server.closeAllConnections();
    return 1;
  }
  const { metadata } = model;
  logger.info('ready', { arch: metadata.arch, classes: metadata.num_classes, image_size: metadata.image_size, demo: metadata.source.demo });
  if (metadata.source.demo) logger.warn('serving the UNTRAINED demo model: predictions are meaningless; convert your best.pth with `make convert`');

  const signal = await stopSignal;
  const clean = await shutdown(server, app.beginShutdown, config.shutdownGraceMs, logger, signal);
  model.dispose();
  logger.info('stopped', { clean });
  return clean ? 0 : 1;
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
async function shutdown(server: http.Server, beginShutdown: () => void, graceMs: number, logger: Logger, signal: string): Promise<boolean> {
  logger.info('shutting down: finishing accepted requests', { signal, grace_ms: graceMs });
  beginShutdown();
  const again = () => logger.warn('already shutting down; waiting for accepted requests to finish');
  process.on('SIGTERM', again).on('SIGINT', again);
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
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
