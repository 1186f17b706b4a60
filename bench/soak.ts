// Soak: many requests at a steady concurrency against the built server, sampling its RSS and the tensors its engine
// holds; fails when either grows more than 10% over the run after warm-up, or when any request fails.
import path from 'node:path';
import { readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { closedLoop, loadUploads } from './load';
import { freePort, ServerProcess } from './server-process';
import { serveMallocEnv, serveNodeFlags } from '../test/helpers/process';

const ROOT = path.resolve(__dirname, '..');
const USAGE = 'usage: npx tsx bench/soak.ts --model-dir <dir> [--requests 100000] [--concurrency 32] [--samples 20]';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { 'model-dir': { type: 'string' }, requests: { type: 'string' }, concurrency: { type: 'string' }, samples: { type: 'string' } } });
  const modelDir = values['model-dir'];
  if (!modelDir) throw new Error(USAGE);
  const [requests, concurrency, samples] = [Number(values.requests ?? 100_000), Number(values.concurrency ?? 32), Number(values.samples ?? 20)];
  if (![requests, concurrency, samples].every((n) => Number.isInteger(n) && n > 0)) throw new Error(USAGE);
  const images = path.join(ROOT, 'test/fixtures/images');
  const uploads = await loadUploads(readdirSync(images).filter((f) => /^p\d+.*\.(jpg|png)$/.test(f)).sort().map((f) => path.join(images, f)));
  const port = await freePort();
  const base = new URL(`http://127.0.0.1:${port}`);
  const server = ServerProcess.start({
    command: process.execPath,
    args: [...serveNodeFlags(), path.join(ROOT, 'dist/src/main.js'), '--port', String(port), '--model-dir', modelDir, '--device', 'cpu', '--log-level', 'warn'],
    env: serveMallocEnv(),
    logFile: path.join(ROOT, '.cache/bench/soak.log'),
  });
  try {
    await server.waitReady(async () => (await fetch(new URL('/health', base))).status === 200, 300);
    const engine = async () => ((await (await fetch(new URL('/health', base))).json()) as { engine: { tensors: number } }).engine.tensors;
    const url = new URL('/predict', base);
    const rows: { done: number; rss: number; tensors: number; rps: number; errors: number }[] = [];
    const chunk = Math.ceil(requests / samples);
    let errors = 0;
    console.log('| requests done | req/s | RSS MiB | engine tensors | errors |\n|---:|---:|---:|---:|---:|');
    for (let done = 0; done < requests; ) {
      const n = Math.min(chunk, requests - done);
      const sample = await closedLoop(url, uploads, { concurrency, requests: n, maxSeconds: 3600, offset: done });
      done += sample.latencies.length;
      errors += sample.errors;
      const row = { done, rss: await server.rssMiB(), tensors: await engine(), rps: sample.latencies.length / sample.seconds, errors: sample.errors };
      rows.push(row);
      console.log(`| ${row.done} | ${row.rps.toFixed(1)} | ${row.rss.toFixed(0)} | ${row.tensors} | ${row.errors} |`);
    }
    // The first sample is the warm-up (caches, allocator pools); growth is judged from there.
    const [first, ...rest] = rows;
    const maxRss = Math.max(...rest.map((r) => r.rss), first.rss);
    const growth = (maxRss - first.rss) / first.rss;
    const tensorsFlat = rows.every((r) => r.tensors === first.tensors);
    console.log(`\nRSS after warm-up ${first.rss.toFixed(0)} MiB, highest later ${maxRss.toFixed(0)} MiB (${(100 * growth).toFixed(1)}%); ` +
      `engine tensors ${tensorsFlat ? `flat at ${first.tensors}` : 'NOT flat'}; ${errors} failed requests of ${requests}`);
    return growth <= 0.1 && tensorsFlat && errors === 0 ? 0 : 1;
  } finally {
    await server.stop();
  }
}

main().then((code) => process.exit(code), (err: Error) => {
  console.error(err.message);
  process.exit(1);
});
