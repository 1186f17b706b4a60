// Test fixtures for the service: a tiny but real TF.js graph model on disk, an app on an ephemeral port, HTTP helpers.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AppConfig } from '../../src/http/state';
import { parseConfig } from '../../src/config';
import type { ModelMetadata } from '../../src/engine/model';
import type { Logger, LogFields } from '../../src/logger';
import { cacheKey, PYTHON } from './cache';

export interface TinyModelOptions {
  classes?: number;
  height?: number;
  width?: number;
  labels?: string[] | null;
}

/** Weights of the tiny model: logits = mean over H and W of the normalised input (3 values) @ w + b. */
export interface TinyWeights {
  w: Float32Array; // [3, C], row-major
  b: Float32Array; // [C]
}

export function tinyWeights(classes: number): TinyWeights {
  // Distinct, fixed values so that different colours rank classes differently.
  const w = Float32Array.from({ length: 3 * classes }, (_, i) => Math.sin(1.7 * i + 0.3) * 2);
  const b = Float32Array.from({ length: classes }, (_, i) => Math.cos(0.9 * i) * 0.1);
  return { w, b };
}

const shape = (dims: number[]) => ({ dim: dims.map((d) => ({ size: String(d) })) });

/**
 * Writes model.json (graph model: Placeholder -> Mean(H, W) -> MatMul -> BiasAdd), one weight shard and
 * metadata.json with sizes and sha256, as `make convert` lays out model_tfjs/. Returns the folder.
 */
export function writeTinyModel(dir: string, options: TinyModelOptions = {}): { dir: string; metadata: ModelMetadata; weights: TinyWeights } {
  const classes = options.classes ?? 5;
  const height = options.height ?? 8;
  const width = options.width ?? 8;
  const weights = tinyWeights(classes);
  mkdirSync(dir, { recursive: true });
  const float = { type: 'DT_FLOAT' };
  const modelJson = {
    format: 'graph-model',
    generatedBy: 'test/helpers/app.ts',
    convertedBy: 'test/helpers/app.ts',
    modelTopology: {
      node: [
        { name: 'input', op: 'Placeholder', attr: { dtype: float, shape: { shape: shape([-1, height, width, 3]) } } },
        { name: 'axes', op: 'Const', attr: { dtype: { type: 'DT_INT32' }, value: { tensor: { dtype: 'DT_INT32', tensorShape: shape([2]) } } } },
        { name: 'mean', op: 'Mean', input: ['input', 'axes'], attr: { T: float, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
        { name: 'w', op: 'Const', attr: { dtype: float, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: shape([3, classes]) } } } },
        { name: 'matmul', op: 'MatMul', input: ['mean', 'w'], attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } } },
        { name: 'b', op: 'Const', attr: { dtype: float, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: shape([classes]) } } } },
        { name: 'logits', op: 'BiasAdd', input: ['matmul', 'b'], attr: { T: float, data_format: { s: Buffer.from('NHWC').toString('base64') } } },
      ],
      library: {},
      versions: { producer: 1 },
    },
    signature: {
      inputs: { input: { name: 'input:0', dtype: 'DT_FLOAT', tensorShape: shape([-1, height, width, 3]) } },
      outputs: { logits: { name: 'logits:0', dtype: 'DT_FLOAT', tensorShape: shape([-1, classes]) } },
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          { name: 'axes', shape: [2], dtype: 'int32' },
          { name: 'w', shape: [3, classes], dtype: 'float32' },
          { name: 'b', shape: [classes], dtype: 'float32' },
        ],
      },
    ],
  };
  const shard = Buffer.concat([Buffer.from(Int32Array.from([1, 2]).buffer), Buffer.from(weights.w.buffer), Buffer.from(weights.b.buffer)]);
  const modelBytes = Buffer.from(JSON.stringify(modelJson));
  writeFileSync(path.join(dir, 'model.json'), modelBytes);
  writeFileSync(path.join(dir, 'group1-shard1of1.bin'), shard);
  const entry = (p: string, bytes: Buffer) => ({ path: p, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
  const metadata: ModelMetadata = {
    schema: 1,
    converter: 'test tiny model',
    arch: 'tiny-mean-linear',
    input: { name: 'input', dtype: 'float32', layout: 'NHWC', shape: [-1, height, width, 3] },
    output: { name: 'logits', shape: [-1, classes] },
    image_size: [height, width],
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    num_classes: classes,
    labels: options.labels ?? null,
    source: { checkpoint: 'tiny.pth', sha256: '0'.repeat(64), demo: false },
    files: [entry('model.json', modelBytes), entry('group1-shard1of1.bin', shard)],
  };
  writeMetadata(dir, metadata);
  return { dir, metadata, weights };
}

/** The app's configuration at the server's defaults (no flags, no env), with what a test overrides. */
export function appConfig(overrides: Partial<AppConfig> = {}): AppConfig {
  const parsed = parseConfig([], {});
  if (parsed.help) throw new Error('parseConfig asked for help with no arguments');
  const { topk, maxUploadBytes, maxFiles, maxInFlight, requestTimeoutMs, compat, authHealth, authMetrics, corsOrigins } = parsed.config;
  return { topk, maxUploadBytes, maxFiles, maxInFlight, requestTimeoutMs, compat, authHealth, authMetrics, corsOrigins, ...overrides };
}

export function writeMetadata(dir: string, metadata: unknown): void {
  writeFileSync(path.join(dir, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
}

let tempRoot: string | undefined;

/** A new empty folder; every folder made here is removed when the test process exits, whatever the outcome. */
export function tempDir(prefix: string): string {
  if (!tempRoot) {
    const root = mkdtempSync(path.join(os.tmpdir(), 'torch-serve-node-tests-'));
    process.on('exit', () => rmSync(root, { recursive: true, force: true }));
    tempRoot = root;
  }
  return mkdtempSync(path.join(tempRoot, `${prefix}-`));
}

/** A logger that keeps its lines for assertions instead of printing them. */
export function memoryLogger(): Logger & { lines: { level: string; msg: string; fields: LogFields }[] } {
  const lines: { level: string; msg: string; fields: LogFields }[] = [];
  const at = (level: string) => (msg: string, fields: LogFields = {}) => {
    lines.push({ level, msg, fields });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Serves `handler` on 127.0.0.1 at an ephemeral port. */
export async function serve(handler: http.RequestListener): Promise<{ url: string; server: http.Server; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

/** POSTs `bytes` as multipart field `field` (default "image"); extra form fields and a query string are optional. */
export async function postImage(
  url: string,
  bytes: Uint8Array | undefined,
  options: { field?: string; filename?: string; fields?: Record<string, string>; query?: string } = {},
): Promise<Reply> {
  const form = new FormData();
  // A copy with an ArrayBuffer of its own: the DOM's Blob type (test/web/ type-checks with it) refuses shared buffers.
  if (bytes !== undefined) form.append(options.field ?? 'image', new Blob([new Uint8Array(bytes)]), options.filename ?? 'upload.jpg');
  for (const [name, value] of Object.entries(options.fields ?? {})) form.append(name, value);
  const response = await fetch(`${url}/predict${options.query ?? ''}`, { method: 'POST', body: form });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** Any request; the body is parsed as JSON when there is one. */
export async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

const ROOT = path.join(__dirname, '../..');

/** Every file the conversion depends on, so a change to the tools makes a fresh model. */
function conversionSources(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  return [path.join(ROOT, 'tools/demo_checkpoint.py'), path.join(ROOT, 'tools/export_onnx.py'), ...walk(path.join(ROOT, 'tools/py')), ...walk(path.join(ROOT, 'tools/onnx2tfjs'))]
    .filter((f) => /\.(py|ts)$/.test(f))
    .sort();
}

/**
 * The untrained demo ResNet18 (102 classes, 64x64) converted by the project's own tools, exactly as `make convert`
 * does with no best.pth; built once per content of the tools and tool versions, cached under .cache/test-models/.
 * Uses Debian's interpreter (PYTHON, default /usr/bin/python3), which has torch and torchvision.
 */
export function convertedDemoModel(): string {
  const dir = path.join(ROOT, '.cache/test-models', `demo-${cacheKey({ files: conversionSources() })}`);
  if (existsSync(path.join(dir, 'metadata.json'))) return dir;
  // Built beside its final place, so the last step is an atomic rename on one file system.
  mkdirSync(path.dirname(dir), { recursive: true });
  const work = mkdtempSync(`${dir}.tmp-`);
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    run(PYTHON, ['tools/demo_checkpoint.py', '--out', path.join(work, 'best.pth')]);
    run(PYTHON, ['tools/export_onnx.py', '--checkpoint', path.join(work, 'best.pth'), '--demo', '--out', path.join(work, 'convert')]);
    const c = path.join(work, 'convert');
    run(process.execPath, ['-r', 'tsx/cjs', 'tools/onnx2tfjs/cli.ts', path.join(c, 'model.onnx'), '--export-info', path.join(c, 'export.json'), '--reference', path.join(c, 'reference.json'), '--out', path.join(work, 'model')]);
    renameSync(path.join(work, 'model'), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** What a raw request got: the status and body, or the socket error (ECONNRESET, ECONNREFUSED, ...). */
export type RawReply = { status: number; body: string } | { error: string };

/**
 * One request on a connection of its own (no agent): a photo as multipart field "image", or no body. `connected`
 * resolves once the TCP connection is up, so a test knows the kernel has accepted it.
 */
export function rawRequest(url: string, method: 'GET' | 'POST', photo?: Buffer): { connected: Promise<void>; reply: Promise<RawReply> } {
  const boundary = 'raw-request-boundary-5d1a';
  const body = photo
    ? Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo"\r\n\r\n`), photo, Buffer.from(`\r\n--${boundary}--\r\n`)])
    : undefined;
  const headers = body ? { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } : {};
  const req = http.request(url, { method, agent: false, headers });
  const connected = new Promise<void>((resolve) => req.on('socket', (socket) => socket.once('connect', () => resolve())));
  const reply = new Promise<RawReply>((resolve) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
  req.end(body);
  return { connected, reply };
}
