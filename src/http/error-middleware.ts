// The one place errors become HTTP: every ServiceError to its status and JSON body, anything else to a logged 500.
import type { Middleware } from 'koa';
import { describe, ServiceError, type ErrorCode } from '../errors';
import type { Logger } from '../logger';
import type { RequestFacts } from './state';

/** The JSON body of every error response. */
export interface ErrorBody {
  success: false;
  error: { code: ErrorCode; message: string };
}

export const INTERNAL_MESSAGE = 'Internal server error; the details are in the server log.';

/** The original demo's only error answer (200, for a request without an image); `--compat` answers every error so. */
export interface CompatErrorBody {
  success: false;
}

/**
 * Outermost middleware: maps a ServiceError to its status and `{"success": false, "error": {code, message}}`;
 * anything else is a bug, logged in full and answered 500 with a generic message (no stack to the client).
 * On `compatPaths` (POST only) every error is answered as the original demo did, for clients that read only
 * `success`: 200 and `{"success": false}`, with the code in X-Error-Code.
 */
export function errorMiddleware(logger: Logger, options: { compatPaths: readonly string[] } = { compatPaths: [] }): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const known = err instanceof ServiceError ? err : undefined;
      const status = known?.status ?? 500;
      const facts = ctx.state.facts as RequestFacts | undefined;
      if (!known || !known.expose) {
        logger.error('request failed', { request_id: facts?.requestId, method: ctx.method, path: ctx.path, status, error: describe(err) });
      }
      const code = known?.code ?? 'internal';
      if (facts) facts.errorCode = code;
      for (const [name, value] of Object.entries(known?.headers ?? {})) ctx.set(name, value);
      // A body too large or too slow to wait for: close the connection once the answer is flushed instead of reading
      // the rest. Other early answers (503, 401, 404, ...) let Node read and discard the body, as closing a socket with
      // unread data resets it, and a client still sending would get the reset instead of the answer.
      if (!ctx.req.complete && (status === 413 || status === 408)) ctx.set('Connection', 'close');
      if (ctx.method === 'POST' && options.compatPaths.includes(ctx.path)) {
        ctx.status = 200;
        ctx.set('X-Error-Code', code);
        ctx.body = { success: false } satisfies CompatErrorBody;
        return;
      }
      ctx.status = status;
      const body: ErrorBody = {
        success: false,
        error: { code, message: known?.expose ? known.message : INTERNAL_MESSAGE },
      };
      ctx.body = body;
    }
  };
}

