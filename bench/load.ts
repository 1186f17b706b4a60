// Closed-loop HTTP load over keep-alive connections: N workers each send the next photo as soon as their last answer came.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** One photo encoded once as the multipart/form-data body of `POST /predict` (field `image`). */
export interface Upload {
  name: string;
  body: Buffer;
  contentType: string;
}

export interface Prediction {
  label: string;
  probability: number;
}

/** Parsed answer of one request; `predictions` is set only for a 200 with the original's JSON shape. */
export interface Answer {
  status: number;
  ms: number;
  predictions?: Prediction[];
  error?: string;
}

/** One slice's throughput (over its busy time) and latency percentiles. */
export interface SliceFigures {
  throughput: number;
  p50: number;
  p99: number;
}

export interface LoadResult {
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  throughput: number;
  p50: number;
  p90: number;
  p99: number;
  /**
   * Each slice on its own, in order: free of the machine's drift between slices, which the pooled figures also hold
   * (a slice on a slow stretch of the machine has all its latencies longer).
   */
  slices: SliceFigures[];
  /** CPU time of this load-generating process per request (it shares the machine with the server). */
  clientCpuMsPerRequest: number;
  firstError?: string;
}

/** Encodes each file with the platform's own FormData encoder, so every server gets byte-identical bodies. */
export async function loadUploads(files: string[]): Promise<Upload[]> {
  return Promise.all(
    files.map(async (file) => {
      const form = new FormData();
      form.append('image', new Blob([await readFile(file)]), path.basename(file));
      const response = new Response(form);
      return {
        name: path.basename(file),
        body: Buffer.from(await response.arrayBuffer()),
        contentType: response.headers.get('content-type') ?? '',
      };
    }),
  );
}

/** Checks the original demo's answer shape: `{success: true, predictions: [{label: string, probability: number}]}`. */
export function parsePredictions(text: string): Prediction[] {
  const json = JSON.parse(text) as { success?: unknown; predictions?: unknown };
  const list = json.predictions;
  const valid =
    json.success === true &&
    Array.isArray(list) &&
    list.length > 0 &&
    list.every(
      (p: { label?: unknown; probability?: unknown }) =>
        typeof p.label === 'string' && typeof p.probability === 'number' && Object.keys(p).length === 2,
    );
  if (!valid) throw new Error(`not the original answer shape: ${text.slice(0, 200)}`);
  return list as Prediction[];
}

/** Sends one upload and times it from the first byte written to the last byte read, in milliseconds. */
export function post(url: URL, upload: Upload, agent: http.Agent): Promise<Answer> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - start) / 1e6;
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': upload.contentType, 'content-length': upload.body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => resolve({ status: 0, ms: ms(), error: err.message }));
        res.on('end', () => {
          const elapsed = ms();
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            resolve({ status, ms: elapsed, error: `HTTP ${status}: ${text.slice(0, 200)}` });
            return;
          }
          try {
            resolve({ status, ms: elapsed, predictions: parsePredictions(text) });
          } catch (err) {
            resolve({ status, ms: elapsed, error: (err as Error).message });
          }
        });
      },
    );
    req.on('error', (err) => resolve({ status: 0, ms: ms(), error: err.message }));
    req.end(upload.body);
  });
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Raw outcome of one closed-loop slice; slices of the same server and concurrency are merged by `summarize`. */
export interface LoadSample {
  latencies: number[];
  errors: number;
  seconds: number;
  /**
   * Answers that came, and the time that passed, while every connection had a request out: from the start until
   * the first connection found nothing left to send. After that the connections fall idle one by one.
   */
  busy: { answers: number; seconds: number };
  clientCpuMs: number;
  firstError?: string;
}

/**
 * Drives `url` with `concurrency` workers until `requests` answers came back or `maxSeconds` passed. Workers take
 * uploads in one shared round-robin order starting at `offset`, so every server sees the same sequence of photos.
 */
export async function closedLoop(
  url: URL,
  uploads: Upload[],
  opts: { concurrency: number; requests: number; maxSeconds: number; offset: number },
): Promise<LoadSample> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const sample: LoadSample = { latencies: [], errors: 0, seconds: 0, busy: { answers: 0, seconds: 0 }, clientCpuMs: 0 };
  let draining = false;
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
  const worker = async () => {
    while (next < opts.requests && elapsed() < opts.maxSeconds) {
      const answer = await post(url, uploads[(opts.offset + next++) % uploads.length], agent);
      sample.latencies.push(answer.ms);
      if (answer.error !== undefined) {
        sample.errors++;
        sample.firstError ??= answer.error;
      }
    }
    if (!draining) {
      draining = true;
      sample.busy = { answers: sample.latencies.length, seconds: elapsed() };
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  sample.seconds = elapsed();
  const cpu = process.cpuUsage(cpuBefore);
  sample.clientCpuMs = (cpu.user + cpu.system) / 1000;
  agent.destroy();
  return sample;
}

/**
 * Throughput over the slices' busy time (every connection with a request out: the drain at the end of a slice,
 * with ever fewer connections, says nothing about the concurrency level), latency percentiles over every request.
 */
export function summarize(concurrency: number, samples: LoadSample[]): LoadResult {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const seconds = samples.reduce((sum, s) => sum + s.seconds, 0);
  const busyAnswers = samples.reduce((sum, s) => sum + s.busy.answers, 0);
  const busySeconds = samples.reduce((sum, s) => sum + s.busy.seconds, 0);
  const clientCpuMs = samples.reduce((sum, s) => sum + s.clientCpuMs, 0);
  return {
    concurrency,
    requests: latencies.length,
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    seconds,
    throughput: busyAnswers / busySeconds,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    slices: samples
      .filter((s) => s.latencies.length > 0)
      .map((s) => {
        const sorted = [...s.latencies].sort((a, b) => a - b);
        return { throughput: s.busy.answers / s.busy.seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
      }),
    clientCpuMsPerRequest: clientCpuMs / latencies.length,
    firstError: samples.find((s) => s.firstError !== undefined)?.firstError,
  };
}
