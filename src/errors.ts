// The one error type of the service and the one middleware that turns every error into the JSON error body.
import type { Middleware } from 'koa';
import type { Logger } from './logger';

/** Machine-readable error codes, stable across releases (clients may switch on them). */
export type ErrorCode =
  | 'missing_image'
  | 'empty_file'
  | 'unsupported_format'
  | 'corrupt_image'
  | 'file_too_large'
  | 'image_too_large'
  | 'bad_request'
  | 'bad_topk'
  | 'method_not_allowed'
  | 'not_found'
  | 'not_ready'
  | 'overloaded'
  | 'internal';

export class ServiceError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  /** Whether the message may be shown to the client; server errors other than 503 are answered generically. */
  readonly expose: boolean;
  /** Response headers that belong to the error (Allow for 405, Retry-After for 503). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; expose?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ServiceError';
    this.status = status;
    this.code = code;
    // 503 (loading, overloaded) is an expected state whose message tells the client when to retry.
    this.expose = options.expose ?? (status < 500 || status === 503);
    this.headers = options.headers ?? {};
  }
}

/** The JSON body of every error response. */
export interface ErrorBody {
  success: false;
  error: { code: ErrorCode; message: string };
}

const INTERNAL_MESSAGE = 'Internal server error; the details are in the server log.';

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
      if (!known || !known.expose) {
        logger.error('request failed', { method: ctx.method, path: ctx.path, status, error: describe(err) });
      }
      const code = known?.code ?? 'internal';
      for (const [name, value] of Object.entries(known?.headers ?? {})) ctx.set(name, value);
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

/** Full description of an error for the log: stack and the chain of causes. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const own = err.stack ?? `${err.name}: ${err.message}`;
  return err.cause === undefined ? own : `${own}\ncaused by: ${describe(err.cause)}`;
}
