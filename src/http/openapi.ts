// The OpenAPI 3.1 description of the service, served at GET /openapi.json. test/server/openapi.test.ts validates it,
// sends a request for every response it documents and checks each answer against it, so that it stays true.
import { createHash } from 'node:crypto';
import type { Middleware } from 'koa';
import { ERROR_CODES, type ErrorCode } from '../errors';

type Schema = Record<string, unknown>;
type Ref = { $ref: string };

export interface OpenApiHeader {
  description: string;
  required?: boolean;
  schema: Schema;
}

export interface OpenApiResponse {
  description: string;
  headers?: Record<string, Ref | OpenApiHeader>;
  content?: Record<string, { schema: Schema | Ref }>;
}

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  parameters?: (Ref | Schema)[];
  requestBody?: Schema;
  security?: Record<string, string[]>[];
  responses: Record<string, OpenApiResponse>;
}

type HttpMethod = 'get' | 'head' | 'post' | 'options';

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: Schema;
  tags: { name: string; description: string }[];
  paths: Record<string, { parameters: Ref[] } & Partial<Record<HttpMethod, OpenApiOperation>>>;
  components: {
    schemas: Record<string, Schema>;
    parameters: Record<string, Schema>;
    headers: Record<string, OpenApiHeader>;
    securitySchemes: Record<string, Schema>;
  };
}

/** The package version the document describes (a test keeps it equal to package.json's). */
export const API_VERSION = '0.1.0';

const ref = (kind: 'schemas' | 'parameters' | 'headers', name: string): Ref => ({ $ref: `#/components/${kind}/${name}` });

/** Every answer carries X-Request-Id, so every response documents it. */
function response(description: string, extra: Omit<OpenApiResponse, 'description'> = {}): OpenApiResponse {
  return { description, ...extra, headers: { 'X-Request-Id': ref('headers', 'XRequestId'), ...extra.headers } };
}

const json = (schema: Schema | Ref) => ({ 'application/json': { schema } });

/** An error answer whose `error.code` is one of `codes`. */
function errorResponse(description: string, codes: readonly ErrorCode[], headers: Record<string, Ref> = {}): OpenApiResponse {
  return response(description, {
    headers,
    content: json({ allOf: [ref('schemas', 'ErrorBody'), { type: 'object', properties: { error: { type: 'object', properties: { code: { enum: codes } } } } }] }),
  });
}

const AUTH_ERRORS = {
  '401': errorResponse('Auth is on and the token is missing, not a configured API key, or not a valid JWT; the message says which.', ['unauthorized'], { 'WWW-Authenticate': ref('headers', 'WWWAuthenticate') }),
  '403': errorResponse('A valid JWT without the scope the server requires (--jwt-scope).', ['forbidden'], { 'WWW-Authenticate': ref('headers', 'WWWAuthenticate') }),
};

/** The token, when auth is on (optional: `{}` stands for a server without auth). */
const SECURITY: Record<string, string[]>[] = [{ bearer: [] }, {}];

/** `/metrics` -> `Metrics`, for operation ids. */
const name = (path: string) =>
  path === '/' ? 'Page' : path.split(/[/.]/).filter(Boolean).map((part) => part[0].toUpperCase() + part.slice(1)).join('');

/** OPTIONS answers every path with its methods. */
function options(path: string, allow: string): OpenApiOperation {
  return {
    operationId: `options${name(path)}`,
    summary: `The methods ${path} answers`,
    tags: ['protocol'],
    responses: {
      '204': response(`No body; Allow lists ${allow}. A CORS preflight (with --cors-origins) gets the Access-Control-* headers instead.`, {
        headers: { Allow: ref('headers', 'Allow') },
      }),
    },
  };
}

/**
 * A method the path does not answer: 405, with the right ones in Allow (any other method gets the same answer). On a
 * path that needs the token, the token is checked first.
 */
function wrongMethod(path: string, method: string, allow: string, guarded: boolean): OpenApiOperation {
  return {
    operationId: `${method.toLowerCase()}${name(path)}`,
    summary: `Not allowed: ${path} answers ${allow}`,
    description: `Every method but ${allow} and OPTIONS answers this way.`,
    tags: ['protocol'],
    ...(guarded && { security: SECURITY }),
    responses: {
      '405': errorResponse(`Wrong method; Allow lists ${allow}.`, ['method_not_allowed'], { Allow: ref('headers', 'Allow') }),
      ...(guarded && AUTH_ERRORS),
    },
  };
}

/** HEAD: GET's status and headers without the body. */
function headOf(get: OpenApiOperation): OpenApiOperation {
  const responses = Object.fromEntries(Object.entries(get.responses).map(([status, { content: _body, ...rest }]) => [status, rest]));
  return { ...get, operationId: get.operationId.replace(/^get/, 'head'), summary: `${get.summary} (headers only)`, responses };
}

/** A file of the web page: served from the build, revalidated by ETag; 404 when the server has no built page. */
function pageFile(path: string, mediaType: string, summary: string): OpenApiOperation {
  const cached = { ETag: ref('headers', 'ETag'), 'Cache-Control': ref('headers', 'CacheControl') };
  return {
    operationId: `get${name(path)}`,
    summary,
    tags: ['page'],
    parameters: [ref('parameters', 'IfNoneMatch')],
    responses: {
      '200': response('The file.', {
        headers: { ...cached, 'Content-Security-Policy': ref('headers', 'ContentSecurityPolicy') },
        content: { [mediaType]: { schema: { type: 'string' } } },
      }),
      '304': response('The client\'s copy (If-None-Match) is current.', { headers: cached }),
      '404': errorResponse('The server was started without the built page (`make build` builds it); the message says so.', ['not_found']),
    },
  };
}

function pagePath(path: string, mediaType: string, summary: string) {
  const get = pageFile(path, mediaType, summary);
  return { parameters: [ref('parameters', 'XRequestId')], get, head: headOf(get), post: wrongMethod(path, 'POST', 'GET, HEAD', false), options: options(path, 'GET, HEAD') };
}

const predict: OpenApiOperation = {
  operationId: 'predict',
  summary: 'Classify one or several photos',
  description:
    'The photo goes in the multipart file field `image` (any file name; the format is recognised from its bytes). One file answers ' +
    '`{"success": true, "predictions": [...]}`, exactly as the original Flask demo; several `image` files (up to --max-files) answer ' +
    '`{"success": true, "results": [...]}`, one item per file in the request\'s order, each with its predictions or its own error. ' +
    'With --compat every error is answered 200 `{"success": false}` with the code in X-Error-Code. `Expect: 100-continue` is honoured: ' +
    'an upload declared too large is refused before its body is sent.',
  tags: ['api'],
  security: SECURITY,
  parameters: [ref('parameters', 'TopkQuery')],
  requestBody: {
    required: true,
    content: {
      'multipart/form-data': {
        schema: {
          type: 'object',
          required: ['image'],
          properties: {
            image: {
              type: 'array',
              description: 'The photos, each a file part named `image`, up to --max-files (16 by default): JPEG, PNG, GIF, BMP, WebP or TIFF (docs/formats.md).',
              items: { type: 'string', contentMediaType: 'application/octet-stream' },
              minItems: 1,
              maxItems: 256,
            },
            topk: { type: 'integer', minimum: 1, description: 'Predictions per photo, from 1 to the class count; wins over the query parameter.' },
          },
        },
        encoding: { image: { contentType: 'image/*, application/octet-stream' } },
      },
    },
  },
  responses: {
    '200': response('The predictions; with --compat, also every refusal (`{"success": false}`, the code in X-Error-Code).', {
      headers: { 'X-Error-Code': ref('headers', 'XErrorCode') },
      content: json({ oneOf: [ref('schemas', 'PredictBody'), ref('schemas', 'BatchBody'), ref('schemas', 'CompatErrorBody')] }),
    }),
    '400': errorResponse(
      'No file in field `image` (or not multipart), a 0-byte file, `topk` not an integer from 1 to the class count, a file in another field, ' +
        'more than --max-files files, too many fields, or a malformed multipart body.',
      ['missing_image', 'empty_file', 'bad_topk', 'bad_request'],
    ),
    ...AUTH_ERRORS,
    '408': errorResponse('The body did not arrive within --request-timeout-ms (a stalled upload, or a Content-Length larger than the body); the connection is closed.', ['request_timeout']),
    '413': errorResponse(
      'The upload is over --max-upload-bytes (answered as soon as that is known; the connection is closed), or the image declares more than ' +
        '--max-pixels pixels, or decoding it needed more than --worker-heap-mb.',
      ['file_too_large', 'image_too_large'],
    ),
    '415': errorResponse('Not an image, or a format the service does not read.', ['unsupported_format']),
    '422': errorResponse(
      'A recognised format whose data is broken or cut short; a structure no camera writes (refused before decoding); or decoding past --decode-timeout-ms.',
      ['corrupt_image', 'image_too_complex', 'decode_timeout'],
    ),
    '500': errorResponse('A bug: the client gets a generic message, the log the full error.', ['internal']),
    '503': errorResponse(
      'The model is still loading or failed to load (Retry-After: 5 while loading), or --max-in-flight requests are held, or the prediction ' +
        'could not start within --request-timeout-ms (Retry-After: 1).',
      ['not_ready', 'overloaded'],
      { 'Retry-After': ref('headers', 'RetryAfter') },
    ),
  },
};

const health: OpenApiOperation = {
  operationId: 'getHealth',
  summary: 'The model and runtime being served; 503 while loading, after a failed load or when stopping',
  description: 'Open to probes unless --auth-health. Load balancers can route on the status code alone.',
  tags: ['operations'],
  security: SECURITY,
  responses: {
    '200': response('Ready: the model is loaded and warm.', { headers: { 'Cache-Control': ref('headers', 'CacheControl') }, content: json(ref('schemas', 'Health')) }),
    ...AUTH_ERRORS,
    '503': response('Not serving: `loading` (with Retry-After: 5), `failed` or `stopping`.', {
      headers: { 'Cache-Control': ref('headers', 'CacheControl'), 'Retry-After': ref('headers', 'RetryAfter') },
      content: json(ref('schemas', 'HealthNotServing')),
    }),
  },
};

const metrics: OpenApiOperation = {
  operationId: 'getMetrics',
  summary: 'Prometheus metrics of this process',
  description: 'Requests, latency, queue wait, inference time, batch sizes, in-flight requests, model info and process metrics. Open to scrapers unless --auth-metrics.',
  tags: ['operations'],
  security: SECURITY,
  responses: {
    '200': response('Prometheus text format 0.0.4.', { content: { 'text/plain': { schema: { type: 'string' } } } }),
    ...AUTH_ERRORS,
  },
};

const openApi: OpenApiOperation = {
  operationId: 'getOpenapi',
  summary: 'This description',
  tags: ['api'],
  parameters: [ref('parameters', 'IfNoneMatch')],
  responses: {
    '200': response('The OpenAPI 3.1 document.', {
      headers: { ETag: ref('headers', 'ETag'), 'Cache-Control': ref('headers', 'CacheControl') },
      content: json({ type: 'object', required: ['openapi', 'info', 'paths'], properties: { openapi: { const: '3.1.0' }, info: { type: 'object' }, paths: { type: 'object' } } }),
    }),
    '304': response('The client\'s copy (If-None-Match) is current.', { headers: { ETag: ref('headers', 'ETag'), 'Cache-Control': ref('headers', 'CacheControl') } }),
  },
};

const apiPath = (get: OpenApiOperation, path: string) => ({
  parameters: [ref('parameters', 'XRequestId')],
  get,
  head: headOf(get),
  post: wrongMethod(path, 'POST', 'GET, HEAD', get.security !== undefined),
  options: options(path, 'GET, HEAD'),
});

const prediction: Schema = {
  type: 'object',
  required: ['label', 'probability'],
  additionalProperties: false,
  properties: {
    label: { type: 'string', description: 'The class name from the model\'s metadata, or the class index as a string.' },
    probability: { type: 'number', minimum: 0, maximum: 1, description: 'Softmax probability (float32), not rounded.' },
  },
};

const predictions: Schema = { type: 'array', items: ref('schemas', 'Prediction'), minItems: 1, description: 'Most probable first.' };

export const OPENAPI: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'torch-serve-node',
    version: API_VERSION,
    summary: 'A PyTorch image classifier served from Node.js, a drop-in for the Flask demo\'s POST /predict.',
    description:
      'Every error is `{"success": false, "error": {"code", "message"}}`; clients switch on `code`, which is stable. Any path not listed ' +
      'here answers 404 `not_found` (401 first when auth is on). Every answer carries X-Request-Id (the client\'s own when it sends a sane one). ' +
      'Reference with examples: docs/api.md.',
    license: { name: 'MIT', identifier: 'MIT' },
  },
  tags: [
    { name: 'api', description: 'Predictions and this description' },
    { name: 'operations', description: 'Probes and scrapers' },
    { name: 'page', description: 'The web page to try the service' },
    { name: 'protocol', description: 'OPTIONS and wrong methods' },
  ],
  paths: {
    '/': pagePath('/', 'text/html', 'The web page: choose, drop or paste photos and see their predictions'),
    '/assets/page.js': pagePath('/assets/page.js', 'text/javascript', 'The page\'s script'),
    '/assets/style.css': pagePath('/assets/style.css', 'text/css', 'The page\'s style sheet'),
    '/assets/icon.svg': pagePath('/assets/icon.svg', 'image/svg+xml', 'The page\'s icon'),
    '/predict': { parameters: [ref('parameters', 'XRequestId')], post: predict, get: wrongMethod('/predict', 'GET', 'POST', true), options: options('/predict', 'POST') },
    '/health': apiPath(health, '/health'),
    '/metrics': apiPath(metrics, '/metrics'),
    '/openapi.json': apiPath(openApi, '/openapi.json'),
  },
  components: {
    schemas: {
      Prediction: prediction,
      PredictBody: {
        type: 'object',
        description: 'One photo: the original demo\'s answer.',
        required: ['success', 'predictions'],
        additionalProperties: false,
        properties: { success: { const: true }, predictions },
      },
      BatchBody: {
        type: 'object',
        description: 'Several photos: one item per file, in the request\'s order.',
        required: ['success', 'results'],
        additionalProperties: false,
        properties: {
          success: { const: true },
          results: {
            type: 'array',
            items: {
              oneOf: [
                { type: 'object', required: ['filename', 'predictions'], additionalProperties: false, properties: { filename: { type: 'string' }, predictions } },
                { type: 'object', required: ['filename', 'error'], additionalProperties: false, properties: { filename: { type: 'string' }, error: ref('schemas', 'Error') } },
              ],
            },
          },
        },
      },
      CompatErrorBody: {
        type: 'object',
        description: 'Any refusal with --compat, as the original demo answered: the code is in X-Error-Code.',
        required: ['success'],
        additionalProperties: false,
        properties: { success: { const: false } },
      },
      Error: {
        type: 'object',
        required: ['code', 'message'],
        additionalProperties: false,
        properties: {
          code: { enum: [...ERROR_CODES], description: 'Stable: clients switch on it.' },
          message: { type: 'string', description: 'What was wrong and what to do; may be reworded.' },
        },
      },
      ErrorBody: {
        type: 'object',
        required: ['success', 'error'],
        additionalProperties: false,
        properties: { success: { const: false }, error: ref('schemas', 'Error') },
      },
      Health: {
        type: 'object',
        required: ['status', 'model', 'runtime'],
        additionalProperties: false,
        properties: {
          status: { const: 'ok' },
          model: {
            type: 'object',
            required: ['name', 'arch', 'classes', 'input_size', 'labels', 'demo', 'checkpoint_sha256'],
            additionalProperties: false,
            properties: {
              name: { type: 'string', description: 'The checkpoint\'s file name.' },
              arch: { type: 'string' },
              classes: { type: 'integer', minimum: 1 },
              input_size: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, maxItems: 2, description: '[height, width]' },
              labels: { enum: ['metadata', 'indices'], description: '`metadata`: class names; `indices`: class indices as strings.' },
              demo: { type: 'boolean', description: 'True for the untrained demo model: its predictions are meaningless.' },
              checkpoint_sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            },
          },
          runtime: {
            type: 'object',
            required: ['backend', 'device', 'devices', 'binding', 'tensorflow', 'tfjs', 'intra_op_threads', 'inter_op_threads', 'onednn', 'convolutions'],
            additionalProperties: false,
            properties: {
              backend: { type: 'string' },
              device: { type: 'string' },
              devices: { type: 'array', items: { type: 'string' } },
              binding: { type: 'string' },
              tensorflow: { type: 'string' },
              tfjs: { type: 'string' },
              intra_op_threads: { type: 'integer', minimum: 1 },
              inter_op_threads: { type: 'integer', minimum: -1, description: '-1: each session runs in the engine thread that calls it (the default); 0: TensorFlow picks' },
              onednn: { type: 'boolean' },
              convolutions: {
                type: 'string',
                enum: ['avx512', 'avx2', 'portable', 'tensorflow'],
                description: "What runs the model's convolutions: the kernels of the server's PackedConv2D op, or TensorFlow's own.",
              },
            },
          },
          engine: {
            type: 'object',
            description: 'Engine worker threads, and the tensors they hold between batches (0 unless something leaks).',
            required: ['threads', 'tensors'],
            additionalProperties: false,
            properties: { threads: { type: 'integer', minimum: 1 }, tensors: { type: 'integer', minimum: 0 } },
          },
          process: {
            type: 'object',
            description: 'The process that answered; `worker` with --workers above 1.',
            required: ['pid'],
            additionalProperties: false,
            properties: { pid: { type: 'integer' }, worker: { type: 'integer' } },
          },
        },
      },
      HealthNotServing: {
        type: 'object',
        required: ['status', 'message'],
        additionalProperties: false,
        properties: { status: { enum: ['loading', 'failed', 'stopping'] }, message: { type: 'string' } },
      },
    },
    parameters: {
      XRequestId: {
        name: 'X-Request-Id',
        in: 'header',
        required: false,
        description: 'Echoed in the answer and logged; one that does not match the pattern is replaced by a new UUID.',
        schema: { type: 'string', pattern: '^[\\w.:-]{1,128}$' },
      },
      IfNoneMatch: {
        name: 'If-None-Match',
        in: 'header',
        required: false,
        description: 'The ETag of the client\'s copy: 304 while it is current.',
        schema: { type: 'string' },
      },
      TopkQuery: {
        name: 'topk',
        in: 'query',
        required: false,
        description: 'Predictions per photo, from 1 to the class count (default --topk, 3); the form field wins when both are given.',
        schema: { type: 'integer', minimum: 1 },
      },
    },
    headers: {
      XRequestId: { description: 'The request\'s id, as logged.', required: true, schema: { type: 'string' } },
      Allow: { description: 'The methods the path answers.', required: true, schema: { type: 'string' } },
      RetryAfter: { description: 'Seconds to wait before retrying (503 while loading, overloaded).', schema: { type: 'string', pattern: '^[0-9]+$' } },
      WWWAuthenticate: { description: 'Bearer challenge; `error="invalid_token"` or `error="insufficient_scope"` when a token was sent.', required: true, schema: { type: 'string' } },
      XErrorCode: { description: 'With --compat: the error code of a `{"success": false}` answer.', schema: { enum: [...ERROR_CODES] } },
      ETag: { description: 'The version of the file, for If-None-Match.', required: true, schema: { type: 'string' } },
      CacheControl: { description: '`no-cache` (revalidate before reuse) on the page and this document, `no-store` on /health.', required: true, schema: { type: 'string' } },
      ContentSecurityPolicy: { description: 'Scripts, styles and requests from this origin only; no inline code.', required: true, schema: { type: 'string' } },
    },
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description: 'Off unless configured: an API key (--api-keys, --api-keys-file) or a JWT (--jwt-secret-file, --jwt-public-key-file, --jwks-file).',
      },
    },
  },
};

/** GET /openapi.json: the document, revalidated by ETag. */
export function openApiRoute(): Middleware {
  const body = Buffer.from(JSON.stringify(OPENAPI));
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return (ctx) => {
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', etag);
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = body;
  };
}
