#!/usr/bin/env node
// The client (counterpart of the original flask_predict.py): posts images to /predict and prints the predictions.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `Usage: predict --file img.jpg [--file more.jpg ...] [--url http://localhost:5012] [--topk N] [--json] [--timeout S]
  --file     image to classify (repeat for several)
  --url      server base URL (default http://localhost:5012, or env PREDICT_URL)
  --topk     predictions per image (default: the server's, 3)
  --json     one JSON object per file instead of the table: {"file", "success", "predictions" | "error"}
  --timeout  seconds to wait for each answer (default 60)`;

interface Options {
  files: string[];
  url: string;
  topk: string | undefined;
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
  return { files, url: url.replace(/\/+$/, ''), topk: values.topk, json: values.json ?? false, timeoutMs: timeout * 1000 };
}

/** Thrown when no HTTP answer came at all: the remaining files would fail the same way. */
class UnreachableError extends Error {}

async function classify(file: string, options: Options): Promise<Outcome> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return { file, success: false, error: { code: 'file_unreadable', message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` } };
  }
  const form = new FormData();
  form.append('image', new Blob([bytes]), path.basename(file));
  if (options.topk !== undefined) form.append('topk', options.topk);
  const endpoint = `${options.url}/predict`;
  let response: Response;
  try {
    response = await fetch(endpoint, { method: 'POST', body: form, signal: AbortSignal.timeout(options.timeoutMs) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${options.timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new UnreachableError(`cannot reach the server at ${endpoint} (${why}); is it running? Start it with \`make serve\` or pass --url.`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { file, success: false, error: { code: 'bad_response', message: `HTTP ${response.status} from ${endpoint} is not JSON: ${text.slice(0, 200)}` } };
  }
  const b = body as { success?: unknown; predictions?: unknown; error?: { code?: unknown; message?: unknown } };
  if (response.ok && b.success === true && Array.isArray(b.predictions)) {
    return { file, success: true, predictions: b.predictions as Prediction[] };
  }
  const code = typeof b.error?.code === 'string' ? b.error.code : `http_${response.status}`;
  const message = typeof b.error?.message === 'string' ? b.error.message : `HTTP ${response.status}: ${text.slice(0, 200)}`;
  return { file, success: false, error: { code, message: `${message} (HTTP ${response.status})` } };
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
  for (const file of options.files) {
    let outcome: Outcome;
    try {
      outcome = await classify(file, options);
    } catch (e) {
      if (!(e instanceof UnreachableError)) throw e;
      err(`predict: ${e.message}\n`);
      return 1;
    }
    if (options.json) out(`${JSON.stringify(outcome)}\n`);
    else if (outcome.success) out(`${table(outcome)}\n`);
    if (!outcome.success) {
      failed = true;
      err(`predict: ${outcome.file}: ${outcome.error.message} [${outcome.error.code}]\n`);
    }
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
