// createApp(deps): the Koa application (middleware order and routes); it never listens, so tests drive app.callback().
import type http from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import { ServiceError } from '../errors';
import type { Logger } from '../logger';
import { errorMiddleware } from './error-middleware';
import { healthRoute } from './routes/health';
import { predictRoute } from './routes/predict';
import { AppState, type AppDeps } from './state';

export interface App {
  koa: Koa;
  state: AppState;
  /** Health reports "stopping" (503) and every response closes its connection; requests already sent are served. */
  beginShutdown(): void;
  /**
   * The server's 'checkContinue' listener: instead of Node's automatic 100 Continue, the upload route sends it once
   * it accepts the declared size, so a refused upload is answered before its body is sent.
   */
  checkContinue: http.RequestListener;
}

/** Endpoints and the methods each answers; anything else on these paths is 405 with an Allow header. */
const ROUTES: Record<string, readonly string[]> = { '/predict': ['POST'], '/health': ['GET', 'HEAD'] };

export function createApp(deps: AppDeps): App {
  const { logger } = deps;
  const state = new AppState();
  Promise.resolve(deps.ready).then(
    (ready) => {
      state.ready = ready;
    },
    (err: unknown) => {
      state.failure = err instanceof Error ? err : new Error(String(err));
    },
  );

  const router = new Router();
  router.post('/predict', ...predictRoute({ config: deps.config, state }));
  router.get('/health', healthRoute(state));
  for (const [route, methods] of Object.entries(ROUTES)) {
    router.all(route, (ctx) => {
      const allow = methods.join(', ');
      if (ctx.method === 'OPTIONS') {
        ctx.status = 204;
        ctx.set('Allow', allow);
        return;
      }
      throw new ServiceError(405, 'method_not_allowed', `${ctx.method} is not allowed on ${route}; use ${allow}.`, { headers: { Allow: allow } });
    });
  }

  const koa = new Koa();
  koa.use(accessLog(logger, state));
  koa.use(errorMiddleware(logger, { compatPaths: deps.config.compat ? ['/predict'] : [] }));
  koa.use(router.routes());
  koa.use((ctx) => {
    throw new ServiceError(404, 'not_found', `No endpoint ${ctx.method} ${ctx.path}; this service answers POST /predict and GET /health.`);
  });
  // Errors are answered by errorMiddleware; what still reaches Koa (e.g. a socket error) is only logged.
  koa.on('error', (err: unknown) => logger.error('koa error', { error: String(err) }));

  const handle = koa.callback();
  return {
    koa,
    state,
    beginShutdown() {
      state.stopping = true;
    },
    checkContinue(req, res) {
      state.awaitingContinue.add(res);
      void handle(req, res);
    },
  };
}

/** One log line per request (with the decoded image's format and size), and `Connection: close` once shutting down. */
function accessLog(logger: Logger, state: AppState): Koa.Middleware {
  return async (ctx, next) => {
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      if (state.stopping) ctx.set('Connection', 'close');
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const image = typeof ctx.state.image === 'string' ? { image: ctx.state.image } : {};
      logger.info('request', { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10, ...image });
    }
  };
}
