// POST /predict: admission (ready, not overloaded), multipart upload of field `image`, topk, then the pipeline.
import type { IncomingMessage } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import multer from '@koa/multer';
import type { Context, Middleware } from 'koa';
import type { PipelineResult } from '../../engine/pipeline';
import type { Prediction } from '../../engine/postprocess';
import { ServiceError } from '../../errors';
import { INTERNAL_MESSAGE, type ErrorBody } from '../error-middleware';
import { uploadStorage } from '../upload-storage';
import type { AppConfig, AppState, Ready, RequestFacts } from '../state';

/** Exactly the original demo's success body (one image). */
export interface PredictBody {
  success: true;
  predictions: Prediction[];
}

/** The answer to several images in one request: one item per file, in the request's order. */
export interface BatchBody {
  success: true;
  results: BatchItem[];
}

export type BatchItem = { filename: string; predictions: Prediction[] } | { filename: string; error: ErrorBody['error'] };

/** A failed image of a batch request: its code and message, as the error middleware would answer it alone. */
function itemError(err: unknown): ErrorBody['error'] {
  if (err instanceof ServiceError && err.expose) return { code: err.code, message: err.message };
  // Anything else is a bug: the request's log line has the request id, the pool logged the worker's error.
  return { code: 'internal', message: INTERNAL_MESSAGE };
}

const FIELD = 'image';
const USAGE_HINT = `send multipart/form-data with the picture as file field "${FIELD}" (curl -F "${FIELD}=@photo.jpg" .../predict)`;
/** Room for the form around the file (boundaries, part headers, `topk`): a body over the file limit plus this is too large. */
export const FORM_ALLOWANCE_BYTES = 64 * 1024;

/** multer's documented `streamHandler` option, which its typings lack: it feeds the request body to busboy. */
interface UploadOptions extends multer.Options {
  streamHandler(req: IncomingMessage, busboy: Writable): void;
}

export function predictRoute(deps: { config: AppConfig; state: AppState }): Middleware[] {
  const { config, state } = deps;
  const maxBodyBytes = config.maxUploadBytes + FORM_ALLOWANCE_BYTES;
  const tooLarge = () =>
    new ServiceError(413, 'file_too_large', `The upload is larger than the limit of ${config.maxUploadBytes} bytes (MAX_UPLOAD_BYTES); send a smaller file.`);

  /**
   * Refuses before reading the body when not ready or when too many requests are held already. Requests that
   * reach the server while it shuts down are still served: the listener is closed, so they were accepted.
   */
  const admit: Middleware = async (_ctx, next) => {
    if (state.failure) throw new ServiceError(503, 'not_ready', 'The model failed to load; the reason is in the server log.');
    if (!state.ready) throw new ServiceError(503, 'not_ready', 'The model is still loading; retry shortly.', { headers: { 'Retry-After': '5' } });
    if (state.inFlight >= config.maxInFlight) {
      throw new ServiceError(503, 'overloaded', `The server already holds ${config.maxInFlight} prediction requests; retry after a second.`, { headers: { 'Retry-After': '1' } });
    }
    state.inFlight += 1;
    try {
      await next();
    } finally {
      state.inFlight -= 1;
    }
  };

  const receive: Middleware = async (ctx, next) => {
    if ((ctx.request.length ?? 0) > maxBodyBytes) throw tooLarge();
    if (state.awaitingContinue.delete(ctx.res)) ctx.res.writeContinue();
    await receiveUpload(ctx);
    await next();
  };

  /**
   * Parses the form with multer, but fails as soon as the file goes over the limit, a chunked body goes over the
   * limit plus the form's allowance, or the request timeout passes: multer itself reports an error only after
   * reading the body to its end, which a hostile or stalled client may never send.
   */
  async function receiveUpload(ctx: Context): Promise<void> {
    let stop: (err: ServiceError) => void = () => undefined;
    const stopped = new Promise<never>((_, reject) => (stop = reject));
    const timer = setTimeout(() => stop(timeoutError(config.requestTimeoutMs)), config.requestTimeoutMs);
    let received = 0;
    const count = (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBodyBytes) stop(tooLarge());
    };
    const options: UploadOptions = {
      storage: uploadStorage(config.maxUploadBytes),
      // Small caps on everything but the picture: the only other input is `topk`.
      limits: { fileSize: config.maxUploadBytes, files: config.maxFiles, fields: 8, fieldSize: 1024, parts: config.maxFiles + 9 },
      streamHandler(req, busboy) {
        req.on('data', count);
        busboy.on('file', (_field: string, file: Readable) => file.once('limit', () => stop(tooLarge())));
        req.pipe(busboy);
      },
    };
    const parsed = multer(options)
      .array(FIELD, config.maxFiles)(ctx, async () => undefined)
      .catch((err: unknown) => {
        throw uploadError(err, tooLarge, config.maxFiles);
      });
    try {
      await Promise.race([parsed, stopped]);
    } finally {
      clearTimeout(timer);
      ctx.req.off('data', count);
    }
  }

  const handle: Middleware = async (ctx) => {
    const ready = state.ready as Ready;
    const facts = ctx.state.facts as RequestFacts;
    const files = (ctx.request.files ?? []) as multer.File[];
    if (files.length === 0) throw new ServiceError(400, 'missing_image', `No file in field "${FIELD}": ${USAGE_HINT}.`);
    facts.uploadBytes = files.reduce((sum, f) => sum + f.size, 0);
    const fields = (ctx.request as { body?: Record<string, unknown> }).body ?? {};
    const topk = parseTopk(fields.topk ?? ctx.query.topk, config.topk, ready.pipeline.numClasses);

    // A prediction still queued when the client leaves or the timeout passes is dropped instead of computed.
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new ServiceError(503, 'overloaded', `The prediction did not start within ${config.requestTimeoutMs} ms; retry later.`, { headers: { 'Retry-After': '1' } })),
      config.requestTimeoutMs,
    );
    const onClose = () => {
      if (!ctx.res.writableEnded) controller.abort(new ServiceError(400, 'bad_request', 'The client closed the connection.'));
    };
    ctx.res.once('close', onClose);
    const predict = (file: multer.File) => {
      if (file.size === 0) throw new ServiceError(400, 'empty_file', `The file "${file.originalname}" in field "${FIELD}" is empty (0 bytes).`);
      return ready.pipeline.predict(file.buffer, topk, { signal: controller.signal });
    };
    // For the request's log line and metrics, in the request's order.
    const noted = (results: PipelineResult[]) => {
      facts.images = results.map((r) => ({ image: `${r.source.format} ${r.source.width}x${r.source.height}`, timing: r.timing }));
    };
    try {
      if (files.length === 1) {
        // One image: exactly the original demo's answer, and its error as the request's.
        const result = await predict(files[0]);
        noted([result]);
        ctx.body = { success: true, predictions: result.predictions } satisfies PredictBody;
      } else {
        const settled = await Promise.allSettled(files.map(async (file) => predict(file)));
        noted(settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
        const results = settled.map((r, i): BatchItem =>
          r.status === 'fulfilled'
            ? { filename: files[i].originalname, predictions: r.value.predictions }
            : { filename: files[i].originalname, error: itemError(r.reason) },
        );
        ctx.body = { success: true, results } satisfies BatchBody;
      }
    } finally {
      clearTimeout(timer);
      ctx.res.off('close', onClose);
    }
  };

  return [admit, receive, handle];
}

/**
 * `topk` from the form field or the query: an integer from 1 to the class count; absent means the configured
 * default, lowered to the class count. Anything else is 400 bad_topk rather than silently clamped.
 */
export function parseTopk(raw: unknown, fallback: number, classes: number): number {
  if (raw === undefined || raw === '') return Math.min(fallback, classes);
  const text = typeof raw === 'string' ? raw.trim() : undefined;
  const value = text !== undefined && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > classes) {
    throw new ServiceError(400, 'bad_topk', `topk must be one integer from 1 to ${classes} (the class count), got ${JSON.stringify(raw)}.`);
  }
  return value;
}

function timeoutError(ms: number): ServiceError {
  return new ServiceError(
    408,
    'request_timeout',
    `The request body did not arrive within ${ms} ms (REQUEST_TIMEOUT_MS): send the whole body without pausing, with a Content-Length that matches it; on a slow link send a smaller file.`,
  );
}

/** Multer and busboy failures are all about the request body: name the limit or the malformation. */
function uploadError(err: unknown, tooLarge: () => ServiceError, maxFiles: number): ServiceError {
  const tooMany = `The form holds more than ${maxFiles} files (MAX_FILES): send at most ${maxFiles} pictures per request, all in field "${FIELD}".`;
  const code = (err as { code?: unknown }).code;
  const field = (err as { field?: unknown }).field;
  switch (code) {
    case 'LIMIT_FILE_SIZE':
      return tooLarge();
    case 'LIMIT_FILE_COUNT':
      return new ServiceError(400, 'bad_request', tooMany, { cause: err });
    case 'LIMIT_UNEXPECTED_FILE':
      return field === FIELD
        ? new ServiceError(400, 'bad_request', tooMany, { cause: err })
        : new ServiceError(400, 'bad_request', `Unexpected file field ${JSON.stringify(field)}: ${USAGE_HINT}.`, { cause: err });
    default:
      return typeof code === 'string' && code.startsWith('LIMIT_')
        ? new ServiceError(400, 'bad_request', `The form goes over a limit (${(err as Error).message}): send only the file field "${FIELD}" and optionally "topk".`, { cause: err })
        : new ServiceError(400, 'bad_request', `Malformed multipart/form-data body (${(err as Error).message}): ${USAGE_HINT}.`, { cause: err });
  }
}
