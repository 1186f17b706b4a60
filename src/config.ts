// Server configuration: one table of options (flag, env variable, default), parsed and validated at startup.
import { parseArgs } from 'node:util';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './logger';

export type Device = 'auto' | 'cpu' | 'gpu';

export interface Config {
  port: number;
  host: string;
  modelDir: string;
  device: Device;
  /** Predictions per request when the request names no `topk` (lowered to the class count if above it). */
  topk: number;
  maxUploadBytes: number;
  /** Most `image` files in one request. */
  maxFiles: number;
  /** Largest decoded image (width x height) accepted; checked from the header before decoding. */
  maxPixels: number;
  honourExif: boolean;
  /** Budgets of one image in a worker: decode + preprocess time, and the worker's JavaScript heap. */
  decodeTimeoutMs: number;
  workerHeapMb: number;
  /** TensorFlow thread pools; undefined leaves the measured defaults (1 inside an op, one per worker across ops). */
  intraOpThreads: number | undefined;
  interOpThreads: number | undefined;
  /** Service processes sharing the port (src/cluster.ts); 1 serves from this process alone. */
  workers: number;
  /** Engine worker threads per process, each with its own TensorFlow session; undefined: the process's share of the cores. */
  threads: number | undefined;
  /** Most images in one model call, and how long a free worker waits for a fuller batch. */
  maxBatch: number;
  maxBatchDelayMs: number;
  /** Largest batch whose convolutions also use a helper thread while another engine thread idles (0: never). */
  idleCoreMaxBatch: number;
  /** Limit for receiving a whole request, and for a prediction to start after it was queued. */
  requestTimeoutMs: number;
  /** Prediction requests accepted at once (running, queued or uploading); more are answered 503. */
  maxInFlight: number;
  /** On SIGTERM, how long /health reports "stopping" while the server still accepts and serves, before closing the listener. */
  shutdownDrainMs: number;
  /** Time given to in-flight requests on SIGTERM/SIGINT before connections are cut. */
  shutdownGraceMs: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Answer POST /predict errors as the original Flask demo did: 200 and {"success": false}. */
  compat: boolean;
  /** Auth (src/http/auth.ts): API keys and JWT verification; off when none is given. */
  apiKeys: string | undefined;
  apiKeysFile: string | undefined;
  jwtSecretFile: string | undefined;
  jwtPublicKeyFile: string | undefined;
  jwksFile: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  jwtScope: string | undefined;
  authHealth: boolean;
  authMetrics: boolean;
  /** Origins allowed to call the API from a browser ('*' for any); undefined: CORS off. */
  corsOrigins: string | undefined;
}

type Kind = { type: 'int'; min: number; max: number } | { type: 'enum'; values: readonly string[] } | { type: 'string' } | { type: 'bool' };

interface OptionSpec {
  key: keyof Config;
  flag: string;
  env: string;
  kind: Kind;
  /** Default as the user would type it; undefined means "not set". */
  default: string | undefined;
  help: string;
}

const MAX_PORT = 65535;
const int = (min: number, max: number = Number.MAX_SAFE_INTEGER): Kind => ({ type: 'int', min, max });

/** Every option of the server, in the order of the usage text and of docs/config.md. */
export const OPTIONS: readonly OptionSpec[] = [
  { key: 'port', flag: 'port', env: 'PORT', kind: int(0, MAX_PORT), default: '5012', help: 'TCP port to listen on (0 picks a free one)' },
  { key: 'host', flag: 'host', env: 'HOST', kind: { type: 'string' }, default: '127.0.0.1', help: 'address to listen on; 0.0.0.0 to accept other machines (e.g. in a container)' },
  { key: 'modelDir', flag: 'model-dir', env: 'MODEL_DIR', kind: { type: 'string' }, default: 'model_tfjs', help: 'folder written by `make convert` (model.json, shards, metadata.json)' },
  { key: 'device', flag: 'device', env: 'DEVICE', kind: { type: 'enum', values: ['auto', 'cpu', 'gpu'] }, default: 'auto', help: 'TensorFlow binding: gpu, cpu, or auto (GPU when one is usable, else CPU)' },
  { key: 'topk', flag: 'topk', env: 'TOPK', kind: int(1), default: '3', help: 'predictions per request when the request does not say (`topk` field or query)' },
  { key: 'maxUploadBytes', flag: 'max-upload-bytes', env: 'MAX_UPLOAD_BYTES', kind: int(1), default: String(20 * 1024 * 1024), help: 'largest accepted upload in bytes (larger: 413 file_too_large)' },
  { key: 'maxFiles', flag: 'max-files', env: 'MAX_FILES', kind: int(1, 256), default: '16', help: 'most pictures in one request (several `image` fields answer {"success": true, "results": [...]}); more get 400' },
  { key: 'maxPixels', flag: 'max-pixels', env: 'MAX_PIXELS', kind: int(1), default: '36000000', help: 'largest image in pixels, checked from its header before decoding (larger: 413 image_too_large)' },
  { key: 'honourExif', flag: 'honour-exif', env: 'HONOUR_EXIF', kind: { type: 'bool' }, default: 'false', help: 'apply the EXIF orientation (PIL and torchvision ignore it, so the default does too)' },
  { key: 'decodeTimeoutMs', flag: 'decode-timeout-ms', env: 'DECODE_TIMEOUT_MS', kind: int(100, 600000), default: '5000', help: 'longest one image may take to decode and preprocess; past it the request gets 422 decode_timeout and the worker doing it is replaced' },
  { key: 'workerHeapMb', flag: 'worker-heap-mb', env: 'WORKER_HEAP_MB', kind: int(64, 65536), default: '512', help: 'JavaScript heap limit of each engine worker; an image whose decoding needs more gets 413 image_too_large and the worker is replaced' },
  { key: 'workers', flag: 'workers', env: 'WORKERS', kind: int(1, 256), default: '1', help: 'service processes sharing the port: the first forks them, replaces one that dies and passes SIGTERM/SIGINT on to all; each gets an equal share of the CPU cores for its threads (docs/deploy.md)' },
  { key: 'threads', flag: 'threads', env: 'THREADS', kind: int(1, 256), default: undefined, help: 'engine worker threads per process, each decoding, preprocessing and running the model on its own TensorFlow session (unset: the process\'s share of the CPU cores, max(1, cores / workers); one on a GPU)' },
  { key: 'maxBatch', flag: 'max-batch', env: 'MAX_BATCH', kind: int(1, 1024), default: '16', help: 'most images a worker runs through the model in one call (requests waiting for a worker are batched)' },
  { key: 'maxBatchDelayMs', flag: 'max-batch-delay-ms', env: 'MAX_BATCH_DELAY_MS', kind: int(0, 10000), default: '0', help: 'how long a free worker waits for a fuller batch before it starts a smaller one (0: start at once)' },
  { key: 'idleCoreMaxBatch', flag: 'idle-core-max-batch', env: 'IDLE_CORE_MAX_BATCH', kind: int(0, 1024), default: '1', help: 'largest batch whose convolutions also run on a helper thread while another engine thread has no batch, so that a lone request uses two cores (0: never; only on the CPU, with two engine threads or more and --inter-op-threads unset)' },
  { key: 'intraOpThreads', flag: 'intra-op-threads', env: 'TF_NUM_INTRAOP_THREADS', kind: int(1, 1024), default: undefined, help: 'threads inside one TensorFlow op (unset: 1)' },
  { key: 'interOpThreads', flag: 'inter-op-threads', env: 'TF_NUM_INTEROP_THREADS', kind: int(-1, 1024), default: undefined, help: 'threads of the pool that runs TensorFlow sessions\' ops, shared by the process (unset or -1: each session runs in the engine thread that calls it; 0: one per core)' },
  { key: 'requestTimeoutMs', flag: 'request-timeout-ms', env: 'REQUEST_TIMEOUT_MS', kind: int(1000), default: '30000', help: 'limit to receive a request body (then 408 request_timeout), and for a queued prediction to start (then 503 overloaded)' },
  { key: 'maxInFlight', flag: 'max-in-flight', env: 'MAX_IN_FLIGHT', kind: int(1, 100000), default: '128', help: 'prediction requests held at once (uploading, queued, running); more get 503 overloaded with Retry-After (memory: up to this many uploads of --max-upload-bytes)' },
  { key: 'shutdownDrainMs', flag: 'shutdown-drain-ms', env: 'SHUTDOWN_DRAIN_MS', kind: int(0), default: '5000', help: 'on SIGTERM, time /health answers 503 "stopping" while new requests are still accepted and served, for load balancers to stop sending; then the listener closes and shutdown-grace-ms starts (SIGINT skips the drain)' },
  { key: 'shutdownGraceMs', flag: 'shutdown-grace-ms', env: 'SHUTDOWN_GRACE_MS', kind: int(0), default: '30000', help: 'on SIGTERM/SIGINT, time for accepted requests to finish before connections are cut' },
  { key: 'compat', flag: 'compat', env: 'COMPAT', kind: { type: 'bool' }, default: 'false', help: 'answer POST /predict errors as the original demo did: status 200 and exactly {"success": false} (the error code in the X-Error-Code header)' },
  { key: 'apiKeys', flag: 'api-keys', env: 'API_KEYS', kind: { type: 'string' }, default: undefined, help: 'comma-separated API keys accepted as "Authorization: Bearer <key>" (turns auth on; prefer the env variable or --api-keys-file: flags show in ps)' },
  { key: 'apiKeysFile', flag: 'api-keys-file', env: 'API_KEYS_FILE', kind: { type: 'string' }, default: undefined, help: 'file of API keys, one per line (# starts a comment); turns auth on' },
  { key: 'jwtSecretFile', flag: 'jwt-secret-file', env: 'JWT_SECRET_FILE', kind: { type: 'string' }, default: undefined, help: 'accept HS256 JWTs signed with the secret in this file (32 characters or more); turns auth on' },
  { key: 'jwtPublicKeyFile', flag: 'jwt-public-key-file', env: 'JWT_PUBLIC_KEY_FILE', kind: { type: 'string' }, default: undefined, help: 'accept RS256 or ES256 JWTs verified with this PEM public key; turns auth on' },
  { key: 'jwksFile', flag: 'jwks-file', env: 'JWKS_FILE', kind: { type: 'string' }, default: undefined, help: 'accept RS256 or ES256 JWTs verified with the keys of this JSON Web Key Set file; turns auth on' },
  { key: 'jwtIssuer', flag: 'jwt-issuer', env: 'JWT_ISSUER', kind: { type: 'string' }, default: undefined, help: 'required `iss` of JWTs' },
  { key: 'jwtAudience', flag: 'jwt-audience', env: 'JWT_AUDIENCE', kind: { type: 'string' }, default: undefined, help: 'required `aud` of JWTs' },
  { key: 'jwtScope', flag: 'jwt-scope', env: 'JWT_SCOPE', kind: { type: 'string' }, default: undefined, help: 'scope a JWT must carry (in `scope` or `scp`); valid tokens without it get 403' },
  { key: 'authHealth', flag: 'auth-health', env: 'AUTH_HEALTH', kind: { type: 'bool' }, default: 'false', help: 'require the token on GET /health too (probes then need it)' },
  { key: 'authMetrics', flag: 'auth-metrics', env: 'AUTH_METRICS', kind: { type: 'bool' }, default: 'false', help: 'require the token on GET /metrics too (the scraper then needs it)' },
  { key: 'corsOrigins', flag: 'cors-origins', env: 'CORS_ORIGINS', kind: { type: 'string' }, default: undefined, help: 'comma-separated origins whose browser pages may call the API (* for any); unset: no CORS headers' },
  { key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', kind: { type: 'enum', values: LOG_LEVELS }, default: 'info', help: 'log lines (JSON on stderr) at this level and above' },
  { key: 'logFormat', flag: 'log-format', env: 'LOG_FORMAT', kind: { type: 'enum', values: LOG_FORMATS }, default: 'json', help: 'json: one JSON object per line (for log collectors); pretty: coloured, readable lines for development' },
];

/** A configuration the user must fix; the message says what is wrong and shows the usage. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(`${message}\n\n${usage()}`);
    this.name = 'ConfigError';
  }
}

/** The result of reading the command line: either a configuration or a request for the usage text. */
export type ConfigResult = { help: true } | { help: false; config: Config };

/** Reads flags (`--port 5013` or `--port=5013`) over env variables over defaults; throws ConfigError. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ConfigResult {
  const parsed = parseFlags(argv);
  if (parsed.help === true) return { help: true };
  const config: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const fromFlag = parsed[option.flag];
    const envValue = env[option.env];
    const [raw, source] =
      fromFlag !== undefined
        ? [String(fromFlag), `--${option.flag}`]
        : envValue !== undefined && envValue !== ''
          ? [envValue, `env ${option.env}`]
          : [option.default, 'default'];
    config[option.key] = raw === undefined ? undefined : convert(option, raw, source);
  }
  return { help: false, config: config as unknown as Config };
}

function parseFlags(argv: readonly string[]): Record<string, string | boolean | undefined> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const option of OPTIONS) options[option.flag] = { type: option.kind.type === 'bool' ? 'boolean' : 'string' };
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(`Invalid command line: ${(err as Error).message}`);
  }
}

function convert(option: OptionSpec, raw: string, source: string): unknown {
  const bad = (expected: string): never => {
    throw new ConfigError(`Invalid value ${JSON.stringify(raw)} for ${source}: expected ${expected}.`);
  };
  const kind = option.kind;
  switch (kind.type) {
    case 'int': {
      const value = /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
      if (!Number.isSafeInteger(value) || value < kind.min || value > kind.max) {
        bad(kind.max === Number.MAX_SAFE_INTEGER ? `an integer >= ${kind.min}` : `an integer from ${kind.min} to ${kind.max}`);
      }
      return value;
    }
    case 'enum':
      return kind.values.includes(raw) ? raw : bad(`one of ${kind.values.join(', ')}`);
    case 'bool':
      if (['true', '1', 'yes'].includes(raw)) return true;
      return ['false', '0', 'no'].includes(raw) ? false : bad('true or false (1/0, yes/no)');
    case 'string':
      return raw.trim() === '' ? bad('a non-empty string') : raw;
  }
}

const FIRST_LINE = 'Usage: node dist/src/main.js [options]   (or: make serve, with the same env variables)';

/** Usage text listing every option with its env variable and default. */
export function usage(): string {
  const rows = OPTIONS.map((option) => {
    const flag = option.kind.type === 'bool' ? `--${option.flag}` : `--${option.flag} <${option.kind.type === 'enum' ? option.kind.values.join('|') : option.kind.type === 'int' ? 'n' : 'value'}>`;
    const fallback = option.default === undefined ? 'unset' : option.default;
    return `  ${flag.padEnd(34)} env ${option.env.padEnd(24)} default ${fallback}\n      ${option.help}`;
  });
  return [FIRST_LINE, '', 'Options (a flag wins over its env variable):', ...rows, '  --help                             show this text'].join('\n');
}

/** The markdown table of docs/config.md (a test keeps the file equal to it). */
export function configTableMarkdown(): string {
  const lines = ['| flag | env variable | default | meaning |', '|---|---|---|---|'];
  for (const option of OPTIONS) {
    const fallback = option.default === undefined ? '(unset)' : `\`${option.default}\``;
    const help = option.help.replace(/\|/g, '\\|');
    lines.push(`| \`--${option.flag}\` | \`${option.env}\` | ${fallback} | ${help} |`);
  }
  return `${lines.join('\n')}\n`;
}
