// The one error type of the service: every failure a client can cause becomes a ServiceError with a status and a code.

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
  /** Whether the message may be shown to the client; server errors are answered generically. */
  readonly expose: boolean;

  constructor(status: number, code: ErrorCode, message: string, options: { cause?: unknown; expose?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.name = 'ServiceError';
    this.status = status;
    this.code = code;
    this.expose = options.expose ?? status < 500;
  }
}
