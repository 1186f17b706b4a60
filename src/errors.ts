// The one error type of the service: what a client did wrong (or the service's state), with its HTTP status and code.

/** Machine-readable error codes, stable across releases (clients may switch on them); the OpenAPI document lists each. */
export const ERROR_CODES = [
  'missing_image',
  'empty_file',
  'unsupported_format',
  'corrupt_image',
  'image_too_complex',
  'decode_timeout',
  'file_too_large',
  'image_too_large',
  'bad_request',
  'bad_topk',
  'unauthorized',
  'forbidden',
  'request_timeout',
  'method_not_allowed',
  'not_found',
  'not_ready',
  'overloaded',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

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

/** Full description of an error for the log: stack and the chain of causes. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const own = err.stack ?? `${err.name}: ${err.message}`;
  return err.cause === undefined ? own : `${own}\ncaused by: ${describe(err.cause)}`;
}
