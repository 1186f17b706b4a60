// createApp(deps): the Koa application (middleware order and routes); it never listens, so tests drive app.callback().
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import path from 'node:path';
import Koa from 'koa';
import cors from '@koa/cors';
import Router from '@koa/router';
import { ServiceError } from '../errors';
import type { Logger } from '../logger';
import { authMiddleware } from './auth';
import { errorMiddleware } from './error-middleware';
import { createMetrics, type Metrics } from './metrics';
import { openApiRoute } from './openapi';
import { healthRoute } from './routes/health';
import { loadPage, PAGE_PATHS, pageRoute, WEB_DIR } from './routes/page';
import { predictRoute } from './routes/predict';
import { AppState, type AppDeps, type RequestFacts } from './state';

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
export const ROUTES: Readonly<Record<string, readonly string[]>> = {
  ...Object.fromEntries(PAGE_PATHS.map((p) => [p, ['GET', 'HEAD']])),
  '/predict': ['POST'],
  '/health': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/openapi.json': ['GET', 'HEAD'],
};

export function createApp(deps: AppDeps): App {
  const { logger } = deps;
  const state = new AppState();
  const metrics = createMetrics(state);
  Promise.resolve(deps.ready).then(
    (ready) => {
      state.ready = ready;
    },
    (err: unknown) => {
      state.failure = err instanceof Error ? err : new Error(String(err));
    },
  );

  const webDir = deps.webDir ?? WEB_DIR;
  const page = loadPage(webDir);
  if ('missing' in page) logger.warn(`the web page is not built (${path.join(webDir, page.missing)} is missing): GET / answers 404; \`make build\` builds it`);

  const router = new Router();
  const servePage = pageRoute(page);
  for (const pagePath of PAGE_PATHS) router.get(pagePath, servePage);
  router.get('/openapi.json', openApiRoute());
  router.post('/predict', ...predictRoute({ config: deps.config, state }));
  router.get('/health', healthRoute(state));
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
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
  koa.use(requestContext(logger, state, metrics));
  // Before the error middleware, so that error answers carry the CORS headers a browser needs to read them.
  if (deps.config.corsOrigins) koa.use(corsMiddleware(deps.config.corsOrigins));
  koa.use(errorMiddleware(logger, { compatPaths: deps.config.compat ? ['/predict'] : [] }));
  if (deps.auth) {
    // The page must load to ask for a token; the API's description is public.
    const open = [...PAGE_PATHS, '/openapi.json', ...(deps.config.authHealth ? [] : ['/health']), ...(deps.config.authMetrics ? [] : ['/metrics'])];
    koa.use(authMiddleware(deps.auth, open));
  }
  koa.use(router.routes());
  koa.use((ctx) => {
    throw new ServiceError(
      404,
      'not_found',
      `No endpoint ${ctx.method} ${ctx.path}; this service answers POST /predict, GET /health, GET /metrics, GET /openapi.json (its API description) and GET / (a page to try it).`,
    );
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

/**
 * CORS for the configured origins ('*': any): preflights answered, and the headers a page needs to read answers,
 * including the error headers. Tokens travel in Authorization, so no credentials (cookies) are allowed.
 */
function corsMiddleware(origins: string): Koa.Middleware {
  const allowed = origins.split(',').map((o) => o.trim()).filter((o) => o !== '');
  const any = allowed.includes('*');
  return cors({
    origin: (ctx) => (any ? '*' : allowed.includes(ctx.get('Origin')) ? ctx.get('Origin') : ''),
    allowMethods: ['GET', 'HEAD', 'POST'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
    exposeHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate', 'X-Error-Code'],
    maxAge: 600,
  });
}

/** Request ids taken from clients: short, and only characters safe in a header and a log line. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Outermost: the request id (the client's X-Request-Id when sane, else a new UUID; echoed in the answer), one log
 * line and the metrics of every request, and `Connection: close` once shutting down. Routes add what they know in
 * ctx.state (RequestFacts).
 */
function requestContext(logger: Logger, state: AppState, metrics: Metrics): Koa.Middleware {
  return async (ctx, next) => {
    const start = process.hrtime.bigint();
    const given = ctx.get('X-Request-Id');
    const facts: RequestFacts = { requestId: REQUEST_ID.test(given) ? given : randomUUID() };
    ctx.state.facts = facts;
    ctx.set('X-Request-Id', facts.requestId);
    try {
      await next();
    } finally {
      if (state.stopping) ctx.set('Connection', 'close');
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      const { method, path: urlPath, status } = ctx;
      // Koa answers once this middleware returns: the metrics and the log line (a synchronous write) come after the
      // answer is on its way, not in its latency.
      setImmediate(() => {
        metrics.request({ method, route: typeof route === 'string' ? route : 'unmatched', status }, seconds);
        const images = facts.images ?? [];
        for (const { timing } of images) metrics.prediction(timing);
        const one = images.length === 1 ? images[0] : undefined;
        logger.info('request', {
          request_id: facts.requestId,
          method,
          path: urlPath,
          status,
          ...(facts.errorCode && { error_code: facts.errorCode }),
          ms: Math.round(seconds * 1e4) / 10,
          ...(facts.uploadBytes !== undefined && { upload_bytes: facts.uploadBytes }),
          ...(one && { image: one.image, batch_size: one.timing.batchSize, queue_ms: round(one.timing.queuedMs), infer_ms: round(one.timing.inferMs) }),
          ...(images.length > 1 && { images: images.map(({ image, timing }) => ({ image, batch_size: timing.batchSize, queue_ms: round(timing.queuedMs), infer_ms: round(timing.inferMs) })) }),
        });
      });
    }
  };
}

const round = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms * 10) / 10);
