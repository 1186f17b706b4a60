#!/usr/bin/env node
// The client (counterpart of the original flask_predict.py): posts images to /predict and prints the predictions.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `Usage: predict --file img.jpg [--file more.jpg ...] [--url http://localhost:5012] [--topk N] [--json] [--timeout S]
  --file     image to classify (repeat for several: they go in one request, --batch at a time)
  --url      server base URL (default http://localhost:5012, or env PREDICT_URL)
  --topk     predictions per image (default: the server's, 3)
  --token    API key or JWT for a server with auth on (default: env PREDICT_TOKEN)
  --batch    most files per request (default 16, the server's default --max-files)
  --json     one JSON object per file instead of the table: {"file", "success", "predictions" | "error"}
  --timeout  seconds to wait for each answer (default 60)`;

interface Options {
  files: string[];
  url: string;
  topk: string | undefined;
  token: string | undefined;
  batch: number;
  json: boolean;
  timeoutMs: number;
}

interface Prediction {
  label: string;
  probability: number;
}

/** The outcome for one file: the server's predictions, or what went wrong in words. */
type Outcome = { file: string; success: true; predictions: Prediction[] } | { file: string; success: false; error: { code: string; message: string } };

class UsageError extends Error {}

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        file: { type: 'string', multiple: true },
        url: { type: 'string' },
        topk: { type: 'string' },
        token: { type: 'string' },
        batch: { type: 'string' },
        json: { type: 'boolean' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const files = values.file ?? [];
  if (files.length === 0) throw new UsageError('no --file given');
  const url = values.url ?? env.PREDICT_URL ?? 'http://localhost:5012';
  if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--url must be an http(s) URL such as http://localhost:5012, got ${JSON.stringify(url)}`);
  if (values.topk !== undefined && !/^[1-9]\d*$/.test(values.topk)) throw new UsageError(`--topk must be a positive integer, got ${JSON.stringify(values.topk)}`);
  const timeout = Number(values.timeout ?? '60');
  if (!(timeout > 0)) throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(values.timeout)}`);
  const batch = values.batch ?? '16';
  if (!/^[1-9]\d*$/.test(batch)) throw new UsageError(`--batch must be a positive integer, got ${JSON.stringify(values.batch)}`);
  const token = values.token ?? env.PREDICT_TOKEN;
  return { files, url: url.replace(/\/+$/, ''), topk: values.topk, token: token || undefined, batch: Number(batch), json: values.json ?? false, timeoutMs: timeout * 1000 };
}

/** Thrown when no HTTP answer came at all: the remaining files would fail the same way. */
class UnreachableError extends Error {}

/** Reads each file; the unreadable ones get their outcome at once and are not sent. */
async function readAll(files: string[]): Promise<({ file: string; bytes: Buffer } | Outcome)[]> {
  return Promise.all(
    files.map(async (file) => {
      try {
        return { file, bytes: await readFile(file) };
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        return { file, success: false as const, error: { code: 'file_unreadable', message: `cannot read ${file} (${why})` } };
      }
    }),
  );
}

/**
 * Posts the files in one request and gives each its outcome: one file gets the original answer, several the
 * batch answer with an item per file; an error of the whole request (401, 413, ...) is every file's.
 */
async function classify(files: { file: string; bytes: Buffer }[], options: Options): Promise<Outcome[]> {
  const form = new FormData();
  for (const { file, bytes } of files) form.append('image', new Blob([bytes]), path.basename(file));
  if (options.topk !== undefined) form.append('topk', options.topk);
  const endpoint = `${options.url}/predict`;
  const headers = options.token ? { Authorization: `Bearer ${options.token}` } : undefined;
  let response: Response;
  try {
    response = await fetch(endpoint, { method: 'POST', body: form, headers, signal: AbortSignal.timeout(options.timeoutMs) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${options.timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new UnreachableError(`cannot reach the server at ${endpoint} (${why}); is it running? Start it with \`make serve\` or pass --url.`);
  }
  const text = await response.text();
  const all = (error: { code: string; message: string }): Outcome[] => files.map(({ file }) => ({ file, success: false, error }));
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return all({ code: 'bad_response', message: `HTTP ${response.status} from ${endpoint} is not JSON: ${text.slice(0, 200)}` });
  }
  const b = body as { success?: unknown; predictions?: unknown; results?: unknown; error?: { code?: unknown; message?: unknown } };
  if (response.ok && b.success === true && files.length === 1 && Array.isArray(b.predictions)) {
    return [{ file: files[0].file, success: true, predictions: b.predictions as Prediction[] }];
  }
  if (response.ok && b.success === true && Array.isArray(b.results) && b.results.length === files.length) {
    return (b.results as { predictions?: Prediction[]; error?: { code: string; message: string } }[]).map((item, i) =>
      item.predictions ? { file: files[i].file, success: true, predictions: item.predictions } : { file: files[i].file, success: false, error: item.error ?? { code: 'bad_response', message: 'an item without predictions or error' } },
    );
  }
  const code = typeof b.error?.code === 'string' ? b.error.code : `http_${response.status}`;
  const message = typeof b.error?.message === 'string' ? b.error.message : `HTTP ${response.status}: ${text.slice(0, 200)}`;
  return all({ code, message: `${message} (HTTP ${response.status})` });
}

function table(outcome: Outcome & { success: true }): string {
  const labelWidth = Math.max(5, ...outcome.predictions.map((p) => p.label.length));
  const rows = outcome.predictions.map((p, i) => `  ${String(i + 1).padStart(4)}  ${p.label.padEnd(labelWidth)}  ${p.probability.toFixed(4)}`);
  return [outcome.file, `  rank  ${'label'.padEnd(labelWidth)}  probability`, ...rows].join('\n');
}

/** Runs the CLI; resolves to the exit code (0 all answered, 1 a file or server error, 2 usage). */
export async function run(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let options: Options | 'help';
  try {
    options = parseOptions(argv, env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`predict: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    out(`${USAGE}\n`);
    return 0;
  }
  let failed = false;
  const report = (outcome: Outcome) => {
    if (options.json) out(`${JSON.stringify(outcome)}\n`);
    else if (outcome.success) out(`${table(outcome)}\n`);
    if (!outcome.success) {
      failed = true;
      err(`predict: ${outcome.file}: ${outcome.error.message} [${outcome.error.code}]\n`);
    }
  };
  for (let start = 0; start < options.files.length; start += options.batch) {
    const read = await readAll(options.files.slice(start, start + options.batch));
    const sendable = read.filter((r): r is { file: string; bytes: Buffer } => 'bytes' in r);
    let answered: Outcome[] = [];
    try {
      if (sendable.length > 0) answered = await classify(sendable, options);
    } catch (e) {
      if (!(e instanceof UnreachableError)) throw e;
      err(`predict: ${e.message}\n`);
      return 1;
    }
    // In the order given on the command line.
    for (const r of read) report('bytes' in r ? answered[sendable.indexOf(r)] : r);
  }
  return failed ? 1 : 0;
}

if (require.main === module) {
  run(process.argv.slice(2), process.env, (s) => process.stdout.write(s), (s) => process.stderr.write(s)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`predict: unexpected failure: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
