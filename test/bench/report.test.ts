// The benchmark report: a baseline that died under load is named with its log line, and its empty levels compare as n/a;
// the ceiling's stages are medians of the measurements taken through the run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { summarize, type LoadSample } from '../../bench/load';
import { interOpWords, medianStages, renderReport, type Ceiling, type RunInfo, type ServerRun, type StageCosts } from '../../bench/report';

const sample = (answers: number, seconds: number): LoadSample => ({
  latencies: Array.from({ length: answers }, (_, i) => 10 + i),
  errors: 0,
  seconds,
  busy: { answers, seconds },
  clientCpuMs: answers * 0.2,
});

const run = (key: ServerRun['key'], title: string, samples: LoadSample[], crash?: string): ServerRun => ({
  key,
  title,
  // As run.ts derives them: CPU and other load per request and second, so 0 / 0 for a level without slices.
  levels: [{ ...summarize(32, samples), cpuMsPerRequest: samples.length > 0 ? 5 : NaN, otherCores: samples.length > 0 ? 0 : NaN }],
  peakRssMiB: 700,
  answers: new Map(),
  crash,
});

const info: RunInfo = {
  date: '2026-12-02T00:00:00Z', machine: '2 cores', versions: [], model: 'Model: test', photos: 1, images: 'photos',
  requestsPerLevel: 350, rounds: 5, maxSeconds: 90, warmup: { requests: 2000, concurrency: 32, seconds: 40 }, command: 'bench',
};

test('a server that crashed is named with its log line; its empty level shows n/a and is left out of the ratios', () => {
  const ours = run('ours', 'ours', [sample(200, 1)]);
  const gunicorn = run('gunicorn', 'gunicorn', [sample(100, 1)]);
  const flask = run('flask', 'Flask', [], 'exited with SIGABRT during round 1 at concurrency 32; the last line of its log: `corrupted double-linked list`');
  const report = renderReport(info, [ours, gunicorn, flask], undefined, []);
  assert.match(report, '**Flask crashed** exited with SIGABRT during round 1 at concurrency 32; the last line of its log: `corrupted double-linked list`');
  assert.match(report, '| Flask | 32 | 0 | 0 | n/a | n/a | n/a | n/a | n/a | 700 | n/a | n/a |');
  const summary = report.split('\n').find((line) => line.startsWith('- Concurrency 32:'));
  assert.is(summary, '- Concurrency 32: ours serves 2.00x the throughput of gunicorn (p50 latency 1.85x theirs, CPU per request 1.00x theirs).');
});

test('the tail table gives p99 ÷ p50 over all requests, then within each slice: median and range', () => {
  // Slices of 100 requests: latencies 10..109 (p50 59, p99 108) and 20..218 by twos (p50 118, p99 216).
  const steady = sample(100, 1);
  const slow = { ...sample(100, 1), latencies: Array.from({ length: 100 }, (_, i) => 20 + 2 * i) };
  const report = renderReport(info, [run('ours', 'ours', [steady, slow]), run('flask', 'Flask', [])], undefined, []);
  const pooled = 214 / 79; // over the 200 requests: p50 79, p99 214
  const slices = [108 / 59, 216 / 118];
  assert.match(report, '| server | concurrency 32 |');
  assert.match(report, `| ours | ${pooled.toFixed(2)}; slices ${((slices[0] + slices[1]) / 2).toFixed(2)} (${slices[0].toFixed(2)}-${slices[1].toFixed(2)}) |`);
  assert.match(report, '| Flask | n/a |');
});

test('round by round: each slice against the mean of the stages measured before and after its round', () => {
  // Decode, preprocess and batched inference CPU, and the median lone request, of one measurement (the best runs per
  // photo are faster: concurrency 1 compares with the median single run).
  const measured = (decode: number, batched: number, lone: number): StageCosts => ({
    decode: { ms: decode, cpuMs: decode }, preprocess: { ms: 1, cpuMs: 1 }, infer: { ms: 6, cpuMs: 6 },
    pipeline: { ms: lone - 1, cpuMs: lone }, pipelineMedian: { ms: lone - 2, cpuMs: lone }, loneStream: { ms: lone, cpuMs: lone },
    inferBatched: { ms: batched, cpuMs: batched },
  });
  const measurements = [measured(4, 3, 10), measured(5, 4, 12), measured(3, 2, 8)];
  const ceiling: Ceiling = {
    ...medianStages(measurements), measurements, backend: 'tf', otherCores: 0, ortInfer: { ms: 4, cpuMs: 8 },
    http: { concurrency: 32, serverCpuMs: 0.5, clientCpuMs: 0.5 },
    modelOnly: { eager: {}, session: {}, ort: {}, peakGflops: 1 },
  };
  const slice = (throughput: number, latency: number): LoadSample => ({ latencies: [latency], errors: 0, seconds: 1, busy: { answers: throughput, seconds: 1 }, clientCpuMs: 0 });
  const level = (concurrency: number, samples: LoadSample[]) => ({ ...summarize(concurrency, samples), cpuMsPerRequest: 5, otherCores: 0 });
  const ours: ServerRun = {
    key: 'ours', title: 'ours', peakRssMiB: 700, answers: new Map(),
    levels: [level(1, [slice(70, 13.2), slice(80, 12)]), level(32, [slice(160, 200), slice(200, 180)])],
  };
  const report = renderReport(info, [ours], ceiling, []);
  // Round 1: stages (8 + 10) / 2 = 9 ms + 1 ms HTTP and client -> 200 req/s; lone (10 + 12) / 2 = 11 ms, 12 with HTTP.
  assert.match(report, '| 1 | 11.00 | 13.20 | 1.20x | 1.10x | 200.0 | 160.0 | 80% |');
  // Round 2: (10 + 6) / 2 = 8 + 1 -> 222.2 req/s; lone 10 ms, 11 with HTTP.
  assert.match(report, '| 2 | 10.00 | 12.00 | 1.20x | 1.09x | 222.2 | 200.0 | 90% |');
  assert.match(report, 'Median over the rounds: concurrency 1 at **1.20x** the median lone request (**1.10x** with the HTTP stage and the load generator added), 85% of the two-core ceiling at concurrency 32.');
  // The ceiling's own figures (medians over the three measurements): lone 10 ms, + 1 ms HTTP and client; the p50 of
  // 13.2 and 12 is 12 (nearest rank).
  assert.match(report, 'our p50 latency is 12.0 ms, **1.20x** the median lone request, 10.00 ms');
  assert.match(report, 'one image takes at least 11.00 ms, and our p50 is **1.09x** that.');
});

test('concurrency 1 against the stages served inline: per round against the inline slice of that round, and pooled', () => {
  const stages: StageCosts = {
    decode: { ms: 4, cpuMs: 4 }, preprocess: { ms: 1, cpuMs: 1 }, infer: { ms: 6, cpuMs: 6 }, pipeline: { ms: 9, cpuMs: 10 },
    pipelineMedian: { ms: 8, cpuMs: 10 }, loneStream: { ms: 10, cpuMs: 10 }, inferBatched: { ms: 3, cpuMs: 3 },
  };
  const ceiling: Ceiling = {
    ...stages, measurements: [stages, stages, stages], backend: 'tf', otherCores: 0, ortInfer: { ms: 4, cpuMs: 8 },
    http: { concurrency: 32, serverCpuMs: 0.5, clientCpuMs: 0.5 },
    inline: { p50: 11, slices: [11, 10], cpuMsPerRequest: 10.5 },
    modelOnly: { eager: {}, session: {}, ort: {}, peakGflops: 1 },
  };
  const slice = (latency: number): LoadSample => ({ latencies: [latency], errors: 0, seconds: 1, busy: { answers: 80, seconds: 1 }, clientCpuMs: 0 });
  const ours: ServerRun = {
    key: 'ours', title: 'ours', peakRssMiB: 700, answers: new Map(),
    levels: [{ ...summarize(1, [slice(13.2), slice(11)]), cpuMsPerRequest: 5, otherCores: 0 }],
  };
  const report = renderReport(info, [ours], ceiling, []);
  assert.match(report, '| **a lone request through HTTP**: the three stages and top-k inline in a plain Koa + @koa/multer server, nothing else (`bench/inline-server.ts`), p50 at concurrency 1 | **11.00** | 10.50 |');
  // Round 1: 13.2 / 11; round 2: 11 / 10. Lone 10 ms, 11 with the HTTP stage and the client.
  assert.match(report, '| 1 | 10.00 | 13.20 | 1.32x | 1.20x | 11.00 | **1.20x** |');
  assert.match(report, '| 2 | 10.00 | 11.00 | 1.10x | 1.00x | 10.00 | **1.10x** |');
  assert.match(report, 'concurrency 1 at **1.15x** the stages inline in a plain Koa server');
  // Pooled: ours' p50 over both slices is 11 (nearest rank), the inline server's 11.
  assert.match(report, 'p50 11.00 ms (slices 10.00-11.00). Our p50 at concurrency 1 is **1.00x** that');
});

test("TensorFlow's inter-op setting reads as words: -1 runs sessions in the calling thread", () => {
  assert.is(interOpWords(-1), 'sessions run in the calling thread');
  assert.is(interOpWords(2), 'inter-op threads 2');
});

test("the ceiling's stages: the median of each figure on its own, the middle two averaged for an even count", () => {
  const costs = (ms: number, cpuMs: number): StageCosts => {
    const stage = { ms, cpuMs };
    return {
      decode: stage, preprocess: { ms: ms / 2, cpuMs }, infer: stage, pipeline: { ms: 3 * ms, cpuMs: cpuMs + 1 }, pipelineMedian: { ms: 2 * ms, cpuMs },
      loneStream: { ms: 4 * ms, cpuMs: cpuMs + 2 }, inferBatched: stage,
    };
  };
  const odd = medianStages([costs(4, 9), costs(1, 5), costs(10, 6)]);
  assert.equal(odd.decode, { ms: 4, cpuMs: 6 });
  assert.equal(odd.preprocess, { ms: 2, cpuMs: 6 });
  assert.equal(odd.pipeline, { ms: 12, cpuMs: 7 });
  assert.equal(odd.pipelineMedian, { ms: 8, cpuMs: 6 });
  assert.equal(odd.loneStream, { ms: 16, cpuMs: 8 });
  const even = medianStages([costs(4, 9), costs(1, 5), costs(10, 6), costs(2, 8)]);
  assert.equal(even.decode, { ms: 3, cpuMs: 7 });
  assert.equal(even.inferBatched, { ms: 3, cpuMs: 7 });
  // bench/run.ts copies the first measurement this way before overwriting the ceiling with the medians.
  const one = costs(4, 9);
  const copy = medianStages([one]);
  assert.equal(copy, one);
  assert.ok(copy.decode !== one.decode && copy.loneStream !== one.loneStream, 'a copy, not the same stage objects');
});

test.run();
