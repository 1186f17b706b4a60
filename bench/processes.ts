// 1 process x 2 threads (A) against 2 processes x 1 thread (B), interleaved A/B/A/B, closed loop at 32 clients.
import path from 'node:path';
import { readdirSync } from 'node:fs';
import { closedLoop, loadUploads, summarize, type LoadSample } from './load';
import { freePort, ServerProcess, machineBusySeconds } from './server-process';
import { serveMallocEnv, serveNodeFlags } from '../test/helpers/process';

const ROOT = path.resolve(__dirname, '..');
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const SECONDS = Number(process.env.SECONDS_PER ?? 20);
const SETUPS = { A: ['--workers', '1', '--threads', '2'], B: ['--workers', '2', '--threads', '1'] } as const;

async function main() {
  const images = path.join(ROOT, 'test/fixtures/images');
  const uploads = await loadUploads(readdirSync(images).filter((f) => /^p\d+.*\.(jpg|png)$/.test(f)).sort().map((f) => path.join(images, f)));
  const rows: Record<string, { samples: LoadSample[]; cpu: number; requests: number; rss: number[]; busy: number; secs: number }> = {};
  let offset = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
      const port = await freePort();
      const base = new URL(`http://127.0.0.1:${port}`);
      const server = ServerProcess.start({
        command: process.execPath,
        args: [...serveNodeFlags(), path.join(ROOT, 'dist/src/main.js'), '--port', String(port), '--model-dir', path.join(ROOT, '.cache/bench/model_tfjs'), '--device', 'cpu', '--log-level', 'warn', ...SETUPS[name as 'A' | 'B']],
        env: serveMallocEnv(),
        logFile: path.join(ROOT, `.cache/bench/logs/processes-${name}-${round}.log`),
      });
      try {
        await server.waitReady(async () => (await fetch(new URL('/health', base))).status === 200, 120);
        // both processes must be serving before the clock starts
        await new Promise((r) => setTimeout(r, 3000));
        const url = new URL('/predict', base);
        await closedLoop(url, uploads, { concurrency: 32, requests: 1e9, maxSeconds: 4, offset });
        const cpu0 = await server.cpuSeconds();
        const busy0 = await machineBusySeconds();
        const sample = await closedLoop(url, uploads, { concurrency: 32, requests: 1e9, maxSeconds: SECONDS, offset });
        const cpu = (await server.cpuSeconds()) - cpu0;
        const busy = (await machineBusySeconds()) - busy0;
        offset += sample.latencies.length;
        const row = (rows[name] ??= { samples: [], cpu: 0, requests: 0, rss: [], busy: 0, secs: 0 });
        row.samples.push(sample);
        row.cpu += cpu;
        row.requests += sample.latencies.length;
        row.rss.push(await server.rssMiB());
        row.busy += busy;
        row.secs += sample.seconds;
        const s = summarize(32, [sample]);
        console.log(`round ${round} ${name}: ${s.throughput.toFixed(1)} req/s, server CPU ${((1000 * cpu) / sample.latencies.length).toFixed(2)} ms/req, p50 ${s.p50.toFixed(0)} p99 ${s.p99.toFixed(0)} ms, errors ${s.errors}, RSS ${(await server.rssMiB()).toFixed(0)} MiB, machine busy ${(busy / sample.seconds).toFixed(2)} cores, server ${(cpu / sample.seconds).toFixed(2)} cores, client ${(sample.clientCpuMs / 1000 / sample.seconds).toFixed(2)} cores, load ${require('os').loadavg()[0].toFixed(2)}`);
      } finally {
        await server.stop();
      }
    }
  }
  console.log('\n| set-up | req/s | server CPU ms/req | p50 ms | p99 ms | errors | RSS MiB | machine busy (cores) | server cores |');
  for (const [name, r] of Object.entries(rows)) {
    const s = summarize(32, r.samples);
    console.log(`| ${name} ${SETUPS[name as 'A' | 'B'].join(' ')} | ${s.throughput.toFixed(1)} | ${((1000 * r.cpu) / r.requests).toFixed(2)} | ${s.p50.toFixed(0)} | ${s.p99.toFixed(0)} | ${s.errors} | ${Math.max(...r.rss).toFixed(0)} | ${(r.busy / r.secs).toFixed(2)} | ${(r.cpu / r.secs).toFixed(2)} |`);
  }
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
