// Renders one benchmark run as the markdown of docs/benchmark.md: load table, ratios vs ours, ceiling, agreement.
import type { LoadResult, Prediction } from './load';

export type ServerKey = 'ours' | 'gunicorn' | 'gunicorn-default' | 'flask' | 'ort' | 'inline';

export interface ServerRun {
  key: ServerKey;
  title: string;
  levels: Array<LoadResult & { cpuMsPerRequest: number; otherCores: number }>;
  peakRssMiB: number;
  /** Top-3 answer per photo name, from the warm-up pass. */
  answers: Map<string, Prediction[] | string>;
  /** What the server said about itself, for the setup list. */
  description?: string;
  /** How it died under load, if it did: its levels hold only the slices before. */
  crash?: string;
}

/** Cost of one stage for one image: best wall time and mean CPU time (all threads), in milliseconds. */
export interface Stage {
  ms: number;
  cpuMs: number;
}

/**
 * The per-image costs of the pipeline's stages, measured outside any server (bench/ceiling.ts); decode and preprocess
 * are means over the photo set.
 */
export interface StageCosts {
  decode: Stage;
  preprocess: Stage;
  infer: Stage;
  /** Decode, preprocess and batch-1 inference one after the other per photo (a lone request), mean over the photos. */
  pipeline: Stage;
  /** The same, median over the photos (the large photos pull the mean above the typical one). */
  pipelineMedian: Stage;
  /**
   * The same as a stream of lone requests, every photo in turn as the load sends them: the median single run (CPU:
   * the mean). What our p50 at concurrency 1 compares with, a median of single requests too.
   */
  loneStream: Stage;
  /** Per image, in batches of 32 (what a loaded server runs). */
  inferBatched: Stage;
}

/** TensorFlow's inter-op setting in words: -1 means each session runs in the thread that calls it. */
export function interOpWords(threads: number): string {
  return threads === -1 ? 'sessions run in the calling thread' : `inter-op threads ${threads}`;
}

/**
 * The stages' costs as medians of several measurements (field by field): the machine's speed drifts over a run, and
 * a ceiling measured only before the servers would compare their figures with another machine's.
 */
export function medianStages(samples: StageCosts[]): StageCosts {
  const stage = (key: keyof StageCosts): Stage => medianStage(samples.map((s) => s[key]));
  return {
    decode: stage('decode'),
    preprocess: stage('preprocess'),
    infer: stage('infer'),
    pipeline: stage('pipeline'),
    pipelineMedian: stage('pipelineMedian'),
    loneStream: stage('loneStream'),
    inferBatched: stage('inferBatched'),
  };
}

/** The median wall time and the median CPU time of `stages`, each on its own. */
export function medianStage(stages: Stage[]): Stage {
  return { ms: median(stages.map((s) => s.ms)), cpuMs: median(stages.map((s) => s.cpuMs)) };
}

/** The middle value, the middle two averaged for an even count. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface Ceiling extends StageCosts {
  backend: string;
  /** CPU used by other processes while it was measured, in cores. */
  otherCores: number;
  /**
   * Every measurement of the stages, in order: before the servers, then after each round of theirs. The figures above
   * are their medians.
   */
  measurements?: StageCosts[];
  /** The same model in onnxruntime-node with default options, for comparison. */
  ortInfer: Stage;
  /** Added by run.ts from bench/pillow_costs.py: Pillow's open + convert('RGB') + resize, mean over the photos. */
  pillow?: Stage;
  /** Added by run.ts from bench/http-stage.ts under load: CPU ms per request of that server and of the load generator. */
  http?: { concurrency: number; serverCpuMs: number; clientCpuMs: number };
  /**
   * Added by run.ts from bench/inline-server.ts at concurrency 1, its slices taking turns with ours': p50 latency over
   * all its requests and per slice (one per round), server CPU per request.
   */
  inline?: { p50: number; slices: number[]; cpuMsPerRequest: number };
  modelOnly: ModelOnly;
}

/** Milliseconds per image by batch size ("1", "8", "32"), one thread, for each way to run the model. */
export interface ModelOnly {
  eager: Record<string, number>;
  session: Record<string, number>;
  /** The same session with TensorFlow's own convolutions instead of PackedConv2D. */
  sessionTfConv?: Record<string, number>;
  ort: Record<string, number>;
  /** Added by run.ts from bench/model_costs.py. */
  torch?: Record<string, number>;
  flops?: number;
  /** One thread's FP32 matrix-product rate, GFLOP/s (TensorFlow's kernels, 1024x1024). */
  peakGflops: number;
}

export interface RunInfo {
  date: string;
  machine: string;
  versions: string[];
  model: string;
  photos: number;
  /** Folder of the photos, as the reader should recognise it. */
  images: string;
  requestsPerLevel: number;
  rounds: number;
  maxSeconds: number;
  warmup: { requests: number; concurrency: number; seconds: number };
  command: string;
}

const fixed = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

function loadTable(runs: ServerRun[]): string[] {
  const ours = runs.find((r) => r.key === 'ours');
  const lines = [
    '| server | concurrency | requests | errors | req/s | p50 ms | p90 ms | p99 ms | server CPU ms/req | peak RSS MiB | other load, cores | ours req/s ÷ this |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const run of runs) {
    for (const level of run.levels) {
      const mine = ours?.levels.find((l) => l.concurrency === level.concurrency);
      const ratio = mine && level.requests > 0 ? `${fixed(mine.throughput / level.throughput, 2)}x` : 'n/a';
      lines.push(
        `| ${run.title} | ${level.concurrency} | ${level.requests} | ${level.errors} | ${fixed(level.throughput)} | ` +
          `${fixed(level.p50)} | ${fixed(level.p90)} | ${fixed(level.p99)} | ${fixed(level.cpuMsPerRequest)} | ` +
          `${fixed(run.peakRssMiB, 0)} | ${fixed(level.otherCores, 2)} | ${ratio} |`,
      );
    }
  }
  return lines;
}

/**
 * p99 ÷ p50 per server and level: over all requests of the level (the table's percentiles), and within each slice
 * (median and range over the slices).
 */
function tailSection(runs: ServerRun[]): string[] {
  const levels = [...new Set(runs.flatMap((r) => r.levels.map((l) => l.concurrency)))].sort((a, b) => a - b);
  const lines = [
    `| server | ${levels.map((c) => `concurrency ${c}`).join(' | ')} |`,
    `|---|${levels.map(() => '---:').join('|')}|`,
  ];
  for (const run of runs) {
    const cells = levels.map((c) => {
      const level = run.levels.find((l) => l.concurrency === c);
      if (!level || level.requests === 0) return 'n/a';
      const slices = level.slices.map((f) => f.p99 / f.p50);
      return `${fixed(level.p99 / level.p50, 2)}; slices ${fixed(median(slices), 2)} (${fixed(Math.min(...slices), 2)}-${fixed(Math.max(...slices), 2)})`;
    });
    lines.push(`| ${run.title} | ${cells.join(' | ')} |`);
  }
  return lines;
}

function summarySection(runs: ServerRun[]): string[] {
  const ours = runs.find((r) => r.key === 'ours');
  const others = runs.filter((r) => r.key !== 'ours');
  if (!ours || others.length === 0) return ['Ours and at least one baseline must run for a comparison.'];
  return ours.levels.map((mine) => {
    const parts = others.flatMap((other) => {
      const theirs = other.levels.find((l) => l.concurrency === mine.concurrency);
      return theirs && theirs.requests > 0
        ? [`${fixed(mine.throughput / theirs.throughput, 2)}x the throughput of ${other.title} ` +
            `(p50 latency ${fixed(mine.p50 / theirs.p50, 2)}x theirs, CPU per request ${fixed(mine.cpuMsPerRequest / theirs.cpuMsPerRequest, 2)}x theirs)`]
        : [];
    });
    return `- Concurrency ${mine.concurrency}: ours serves ${parts.join('; ')}.`;
  }).concat([
    '',
    'CPU per request is the least noisy of these figures: it hardly depends on what else runs on the machine, while',
    'throughput and latency do (a server with more threads also takes a bigger share of a busy machine).',
  ]);
}

/** Servers that died under load: their figures cover the slices before, and a level with none left is n/a. */
function crashLines(runs: ServerRun[]): string[] {
  return runs
    .filter((r) => r.crash)
    .flatMap((r) => ['', `**${r.title} crashed** ${r.crash}. Its figures cover only the slices before; a level with none left shows n/a, and its peak RSS is the highest seen before.`]);
}

function clientCpuLine(runs: ServerRun[]): string {
  const perRequest = runs.flatMap((r) => r.levels.map((l) => l.clientCpuMsPerRequest)).filter(Number.isFinite);
  if (perRequest.length === 0) return '';
  return (
    `The load generator (\`bench/load.ts\`: node:http keep-alive connections, multipart bodies encoded once) used ` +
    `${fixed(Math.min(...perRequest), 2)} to ${fixed(Math.max(...perRequest), 2)} ms of CPU per request, taken from the same 2 cores.`
  );
}

/** CPU per image of the three stages with the model in batches, as under load. */
const batchedCpuMs = (s: StageCosts) => s.decode.cpuMs + s.preprocess.cpuMs + s.inferBatched.cpuMs;

/** CPU per request of the HTTP stage and the load generator (0 when not measured). */
const httpCpuMs = (ceiling: Ceiling) => (ceiling.http ? ceiling.http.serverCpuMs + ceiling.http.clientCpuMs : 0);

function ceilingSection(ceiling: Ceiling, runs: ServerRun[]): string[] {
  const stages = [ceiling.decode, ceiling.preprocess, ceiling.infer];
  const wall = stages.reduce((sum, s) => sum + s.ms, 0);
  const lone = ceiling.pipeline.ms;
  const typical = ceiling.pipelineMedian.ms;
  const stream = ceiling.loneStream.ms;
  const cpu = batchedCpuMs(ceiling);
  const { http } = ceiling;
  const total = cpu + httpCpuMs(ceiling);
  // One lone request with what any request also pays: the HTTP stage and the load generator.
  const loneWithHttp = stream + httpCpuMs(ceiling);
  const row = (name: string, s: Stage) => `| ${name} | ${fixed(s.ms, 2)} | ${fixed(s.cpuMs, 2)} |`;
  const ours = runs.find((r) => r.key === 'ours');
  const c1 = ours?.levels.find((l) => l.concurrency === 1);
  const reached = (ceilingRps: number) =>
    ours
      ? ours.levels.map((l) => `${fixed(l.throughput)} req/s at concurrency ${l.concurrency} (${fixed((100 * l.throughput) / ceilingRps, 0)}%)`).join(', ')
      : 'n/a (ours not run)';
  return [
    `Each stage run alone, one image at a time, outside any server (${ceiling.backend}), with the server's allocator settings; ` +
      `other load meanwhile: ${fixed(ceiling.otherCores, 2)} cores. Wall time is the best of the repeats, CPU time (all threads) their mean.` +
      (ceiling.measurements && ceiling.measurements.length > 1
        ? ` Measured ${ceiling.measurements.length} times, before the servers and after each round of theirs (the servers idle), and each ` +
          `figure is the median: the machine's speed drifts over a run, and the servers are compared with the stages as the machine ran meanwhile.`
        : ''),
    '',
    '| stage, one image, batch 1 | wall ms | CPU ms |',
    '|---|---:|---:|',
    row('decode (mean over the photos)', ceiling.decode),
    row('preprocess: PIL-exact resize to the model size + normalise (mean over the photos)', ceiling.preprocess),
    row('model inference, batch of 1', ceiling.infer),
    `| sum of the three | ${fixed(wall, 2)} | |`,
    `| **the three in sequence per photo, as a lone request runs them** (mean over the photos) | **${fixed(lone, 2)}** | ${fixed(ceiling.pipeline.cpuMs, 2)} |`,
    `| the same, median over the photos | ${fixed(typical, 2)} | ${fixed(ceiling.pipelineMedian.cpuMs, 2)} |`,
    `| **the three as a stream of lone requests**, every photo in turn, median single run | **${fixed(stream, 2)}** | ${fixed(ceiling.loneStream.cpuMs, 2)} |`,
    row('model inference per image, batches of 32', ceiling.inferBatched),
    `| **the three per image, batched** | | **${fixed(cpu, 2)}** |`,
    ...(http
      ? [
          `| HTTP: a plain Koa + @koa/multer server taking the upload and answering the JSON, no model (\`bench/http-stage.ts\`, server CPU per request at ${http.concurrency} clients) | | ${fixed(http.serverCpuMs, 2)} |`,
          `| the load generator's CPU per request, on the same 2 cores (same run) | | ${fixed(http.clientCpuMs, 2)} |`,
          `| **total CPU per request on the 2 cores, batched** | | **${fixed(total, 2)}** |`,
        ]
      : []),
    ...(ceiling.inline
      ? [`| **a lone request through HTTP**: the three stages and top-k inline in a plain Koa + @koa/multer server, nothing else ` +
          `(\`bench/inline-server.ts\`), p50 at concurrency 1 | **${fixed(ceiling.inline.p50, 2)}** | ${fixed(ceiling.inline.cpuMsPerRequest, 2)} |`]
      : []),
    row('for comparison: onnxruntime-node inference, same ONNX model, default options', ceiling.ortInfer),
    ...(ceiling.pillow ? [row("for comparison: Pillow's `Image.open` + `convert('RGB')` + `resize` to the model size (mean over the photos)", ceiling.pillow)] : []),
    '',
    `- One image at a time: 1000 / ${fixed(lone, 2)} ms = **${fixed(1000 / lone)} req/s**. Ours reaches ${reached(1000 / lone)}.` +
      (c1 ? ` At concurrency 1 our p50 latency is ${fixed(c1.p50, 1)} ms, **${fixed(c1.p50 / stream, 2)}x** the median lone request, ${fixed(stream, 2)} ms` +
        ` (a median of single requests compares with a median of single runs: against each photo's best repeat, ` +
        `median over the photos, it reads ${fixed(c1.p50 / typical, 2)}x; against their mean, ${fixed(c1.p50 / lone, 2)}x).` +
        (http
          ? ` A request also crosses HTTP, and at concurrency 1 nothing overlaps: with the HTTP stage and the load generator ` +
            `added as in the two-core ceiling below, one image takes at least ${fixed(loneWithHttp, 2)} ms, ` +
            `and our p50 is **${fixed(c1.p50 / loneWithHttp, 2)}x** that.`
          : '') : ''),
    ...(c1 && ceiling.inline ? [inlineLine(c1.p50, ceiling)] : []),
    ...(http
      ? [
          `- **The two-core ceiling**: both cores busy with nothing but the three stages, the HTTP stage and the load ` +
            `generator, the model in batches of 32: 2 x 1000 / ${fixed(total, 2)} CPU ms = **${fixed(2000 / total)} req/s**. ` +
            `Ours reaches ${reached(2000 / total)}.`,
        ]
      : []),
    `- The three stages alone on both cores (no HTTP, no load generator): 2 x 1000 / ${fixed(cpu, 2)} CPU ms = ` +
      `**${fixed(2000 / cpu)} req/s**. Ours reaches ${reached(2000 / cpu)}.`,
    ...(ceiling.pillow ? [pillowLine(ceiling)] : []),
    '',
    'The HTTP stage is the least a Koa server pays per upload. The gap to the two-core ceiling is what ours adds beyond',
    'it (handing each upload to an engine thread and back, admission, request logs, metrics), any time a core idles, and',
    'what the stages lose by sharing caches and memory with each other, which the stages measured alone do not pay.',
  ];
}

/**
 * Ours round by round against the stages measured just before and just after that round (the mean of the two): the
 * machine's speed drifts over a run, so each slice is set against the stages as the machine ran around it.
 */
function roundsSection(ceiling: Ceiling, runs: ServerRun[]): string[] {
  const ours = runs.find((r) => r.key === 'ours');
  const measured = ceiling.measurements ?? [];
  const rounds = measured.length - 1;
  if (!ours || rounds < 1 || ours.levels.some((l) => l.slices.length !== rounds)) {
    return ['Not available: the stages were measured only once, or ours did not run a slice in every round.'];
  }
  const around = (r: number, figure: (s: StageCosts) => number) => (figure(measured[r]) + figure(measured[r + 1])) / 2;
  const ceilingRps = (r: number) => 2000 / (around(r, batchedCpuMs) + httpCpuMs(ceiling));
  const loneRequest = (r: number) => around(r, (s) => s.loneStream.ms);
  const c1 = ours.levels.find((l) => l.concurrency === 1);
  const loaded = ours.levels.filter((l) => l.concurrency > 1);
  const c1Ratios = c1 ? c1.slices.map((f, r) => f.p50 / loneRequest(r)) : [];
  const c1HttpRatios = c1 ? c1.slices.map((f, r) => f.p50 / (loneRequest(r) + httpCpuMs(ceiling))) : [];
  // The inline server's slice ran right after ours' in the same round: the closest pairing of the run.
  const inline = c1 && ceiling.inline?.slices.length === rounds ? ceiling.inline.slices : undefined;
  const c1InlineRatios = inline ? c1!.slices.map((f, r) => f.p50 / inline[r]) : [];
  const shares = loaded.map((l) => l.slices.map((f, r) => f.throughput / ceilingRps(r)));
  const lines = [
    `| round | lone requests, median, ms | ${c1 ? 'ours at concurrency 1: p50 ms | ÷ lone | ÷ (lone + HTTP) | ' : ''}` +
      `${inline ? 'stages inline: p50 ms | ours ÷ inline | ' : ''}two-core ceiling, req/s | ` +
      `${loaded.map((l) => `ours at concurrency ${l.concurrency}: req/s | % of ceiling`).join(' | ')} |`,
    `|---:|---:|${c1 ? '---:|---:|---:|' : ''}${inline ? '---:|---:|' : ''}---:|${loaded.map(() => '---:|---:').join('|')}|`,
  ];
  for (let r = 0; r < rounds; r++) {
    lines.push(
      `| ${r + 1} | ${fixed(loneRequest(r), 2)} | ${c1 ? `${fixed(c1.slices[r].p50, 2)} | ${fixed(c1Ratios[r], 2)}x | ${fixed(c1HttpRatios[r], 2)}x | ` : ''}` +
        `${inline ? `${fixed(inline[r], 2)} | **${fixed(c1InlineRatios[r], 2)}x** | ` : ''}${fixed(ceilingRps(r))} | ` +
        `${loaded.map((l, i) => `${fixed(l.slices[r].throughput)} | ${fixed(100 * shares[i][r], 0)}%`).join(' | ')} |`,
    );
  }
  const medians = [
    ...(c1
      ? [`concurrency 1 at **${fixed(median(c1Ratios), 2)}x** the median lone request (**${fixed(median(c1HttpRatios), 2)}x** with the HTTP stage and the load generator added)`]
      : []),
    ...(inline ? [`concurrency 1 at **${fixed(median(c1InlineRatios), 2)}x** the stages inline in a plain Koa server`] : []),
    ...loaded.map((l, i) => `${fixed(100 * median(shares[i]), 0)}% of the two-core ceiling at concurrency ${l.concurrency}`),
  ];
  return [
    ...lines,
    '',
    `Median over the rounds: ${medians.join(', ')}. Each round's stages are the mean of the measurement before it and ` +
      'the one after it; the HTTP stage and the load generator are the figures above. The slices of a round run ' +
      'minutes apart from those measurements, so this pairs them more closely than the medians above, not exactly.',
  ];
}

/**
 * Ours at concurrency 1 against the stages served inline: both pay HTTP and the stages' cold start after every pause
 * between requests, so the ratio is what our architecture adds to a lone request.
 */
function inlineLine(oursP50: number, ceiling: Ceiling): string {
  const inline = ceiling.inline!;
  return `- **A lone request through HTTP**: the same stages and top-k run on the event loop of a plain Koa + @koa/multer server ` +
    `(\`bench/inline-server.ts\`: no engine threads, no batcher, no admission, logs or metrics), its slices right after ours' ` +
    `at concurrency 1: p50 ${fixed(inline.p50, 2)} ms (slices ${fixed(Math.min(...inline.slices), 2)}-${fixed(Math.max(...inline.slices), 2)}). ` +
    `Our p50 at concurrency 1 is **${fixed(oursP50 / inline.p50, 2)}x** that: what handing the request to an engine thread and ` +
    `back, the batcher and the rest of our server add to a lone request. The lone request in-process above pays neither ` +
    `HTTP nor the pause between requests (a request after a pause runs its code and data from cold caches)` +
    (ceiling.http ? `, and the HTTP stage added to it is CPU per request at ${ceiling.http.concurrency} clients, not the latency of one request.` : '.');
}

/** Our decode + preprocess against Pillow's decode + convert + resize of the same photos. */
function pillowLine(ceiling: Ceiling): string {
  const pillow = ceiling.pillow!;
  const wall = ceiling.decode.ms + ceiling.preprocess.ms;
  const cpu = ceiling.decode.cpuMs + ceiling.preprocess.cpuMs;
  return `- Decode + preprocess (the model's input bit-identical to torchvision's): ${fixed(wall, 2)} ms wall, ${fixed(cpu, 2)} ms CPU per photo, ` +
    `**${fixed(wall / pillow.ms, 2)}x** Pillow's ${fixed(pillow.ms, 2)} ms wall (${fixed(cpu / pillow.cpuMs, 2)}x its CPU) for decode + convert + resize.`;
}

function modelSection(m: ModelOnly): string[] {
  const row = (name: string, ms: Record<string, number> | undefined) =>
    `| ${name} | ${['1', '8', '32'].map((b) => (ms ? fixed(ms[b], 2) : 'n/a')).join(' | ')} | ${['1', '8', '32'].map((b) => (ms ? `${fixed(m.ort[b] / ms[b], 2)}x` : 'n/a')).join(' | ')} |`;
  const lines = [
    'The model alone, on one thread each (as one engine worker runs it), milliseconds per image. The four Node paths ' +
      'take turns: four rounds, in each a block per path and batch size (16 runs at batch 1, 2 at batch 8 and 32, after ' +
      'one untimed run), and the figure is the best block, so that the machine\'s drift falls on all of them alike. ' +
      'PyTorch runs afterwards in its own process (`bench/model_costs.py`, best of several runs).',
    '',
    '| path | bs 1 | bs 8 | bs 32 | onnxruntime ÷ this, bs 1 | bs 8 | bs 32 |',
    '|---|---:|---:|---:|---:|---:|---:|',
    row('tfjs GraphModel.execute (op by op)', m.eager),
    row('**ours: one TensorFlow session per batch** (PackedConv2D)', m.session),
    row('the same session with TensorFlow\'s own convolutions', m.sessionTfConv),
    row('onnxruntime-node, same ONNX export', m.ort),
    row('PyTorch (the original\'s framework), no_grad', m.torch),
  ];
  if (m.flops) {
    const best = Math.min(...Object.values(m.session));
    lines.push(
      '',
      `Compute limit: the graph has ${fixed(m.flops / 1e6, 0)} MFLOPs per image, counted as direct convolutions; one thread multiplies large float32 ` +
        `matrices at ${fixed(m.peakGflops, 1)} GFLOP/s here (the faster of TensorFlow's MatMul and PackedConv2D), so computed directly the model cannot take less than ` +
        `${fixed(m.flops / (m.peakGflops * 1e6), 2)} ms per image per core; the session reaches an effective ` +
        `${fixed(m.flops / (best * 1e6), 1)} GFLOP/s (${fixed((100 * m.flops) / (best * 1e6) / m.peakGflops, 0)}% of that peak) at its best batch ` +
        `(Winograd's algorithm computes its 3 x 3 convolutions up to 256 channels with 16 multiplications where a direct convolution takes 36: docs/runtime.md).`,
    );
  }
  return lines;
}

function agreementSection(runs: ServerRun[], photos: string[]): string[] {
  const reference = runs.find((r) => r.key === 'flask');
  if (!reference) return ['The Flask reference was not part of this run: no agreement check.'];
  const top1 = (answer: Prediction[] | string | undefined) => (Array.isArray(answer) ? answer[0].label : `error: ${answer}`);
  const lines: string[] = [];
  const disagreements: string[] = [];
  for (const run of runs.filter((r) => r !== reference)) {
    let same = 0;
    let maxDiff = 0;
    for (const photo of photos) {
      const mine = run.answers.get(photo);
      const theirs = reference.answers.get(photo);
      if (top1(mine) === top1(theirs)) {
        same++;
        if (Array.isArray(mine) && Array.isArray(theirs)) {
          maxDiff = Math.max(maxDiff, Math.abs(mine[0].probability - theirs[0].probability));
        }
      } else {
        disagreements.push(`| ${photo} | ${run.title} | ${top1(mine)} | ${top1(theirs)} |`);
      }
    }
    lines.push(
      `- ${run.title}: same top-1 as the Flask original on **${same}/${photos.length}** photos; ` +
        `largest top-1 probability difference where they agree: ${maxDiff.toExponential(1)}.`,
    );
  }
  if (runs.length > 2) {
    const unanimous = photos.filter((photo) => new Set(runs.map((r) => top1(r.answers.get(photo)))).size === 1).length;
    lines.push(`- All ${runs.length} servers give the same top-1 on **${unanimous}/${photos.length}** photos.`);
  }
  if (disagreements.length > 0) {
    lines.push('', '| photo | server | its top-1 | Flask top-1 |', '|---|---|---|---|', ...disagreements);
  }
  return lines;
}

/** The whole document. */
export function renderReport(info: RunInfo, runs: ServerRun[], ceiling: Ceiling | undefined, photos: string[]): string {
  return [
    '# Benchmark: our server vs the original Flask server (built-in and under gunicorn) vs a plain onnxruntime-node server',
    '',
    `Generated by \`${info.command}\` on ${info.date}. Rerun it with \`make bench\`; this file is overwritten.`,
    'Timing on a shared 2-core machine is noisy: compare the ratios within one run, never absolute numbers across runs.',
    '',
    '## Setup',
    '',
    `- ${info.machine}`,
    ...info.versions.map((v) => `- ${v}`),
    ...runs.flatMap((r) => (r.description ? [`- ${r.description}`] : [])),
    `- ${info.model}`,
    `- Load: closed loop (each of N connections sends its next request as soon as the previous answer arrived), ` +
      `${info.requestsPerLevel} requests per server and level (at least 12 per connection in each slice, so more at ` +
      `high concurrency) or ${info.maxSeconds} s, whichever comes first, over the ` +
      `${info.photos} photos (JPEG and PNG) of \`${info.images}\` in the same round-robin order for ` +
      `every server, after one pass over all photos (its answers are the agreement check) and a warm-up of ` +
      `${info.warmup.requests} requests at concurrency ${info.warmup.concurrency} (or ${info.warmup.seconds} s): ` +
      'a server runs warm in production, and a Node server reaches its steady speed only after JIT compilation and ' +
      'heap sizing have settled.',
    `- The servers are started one after another and stay up; each level is cut into ${info.rounds} slices and the servers ` +
      'take turns slice by slice, so that load from other users of the shared machine falls on all of them alike.',
    '- Throughput counts the answers that came while all N connections had a request out: once a slice has sent its ' +
      'last request, its connections fall idle one by one, and that drain says nothing about concurrency N. ' +
      'Latency percentiles are over every request.',
    '- Each server listens on a free port, with its output in `.cache/bench/logs/`. The load generator is a',
    `  small closed loop on \`node:http\` (\`bench/load.ts\`) rather than autocannon: it sends ${info.photos} different multipart`,
    '  bodies in a fixed order and checks every answer\'s JSON, which autocannon would need per-request hooks and a new',
    '  dependency for; its own CPU cost is reported under the table.',
    '',
    '## Summary',
    '',
    ...summarySection(runs),
    '',
    '## Results',
    '',
    '![Throughput against p99 latency, a line per server](benchmark.svg)',
    '',
    ...loadTable(runs),
    '',
    '"server CPU ms/req": user + system CPU time of the server process (and its children) over the level, per request;',
    'more than the latency means the server used more than one core for a request. "ours req/s ÷ this" above 1x means',
    'ours is ahead. Errors are non-200 answers or answers without the original JSON shape. Peak RSS is the kernel\'s',
    'high-water mark (VmHWM) of the server process at the end of its run. "other load": CPU used meanwhile by processes',
    'other than the server and the load generator, in cores out of 2; a level where it is well above 0 ran on a busy',
    'machine and its numbers are low.',
    '',
    clientCpuLine(runs),
    ...crashLines(runs),
    '',
    '### Tail: p99 ÷ p50',
    '',
    ...tailSection(runs),
    '',
    'First the ratio over all requests of the level, as in the table; then within each slice, the median over the',
    'slices and their range. The machine\'s speed drifts over a run and a slice on a slow stretch has all its',
    'latencies longer, so pooling the slices widens the spread by that drift too; within a slice the load and the',
    'machine are as steady as the benchmark gets.',
    '',
    '## Ceiling: what the CPU can do per image',
    '',
    ...(ceiling ? ceilingSection(ceiling, runs) : ['Not measured in this run.']),
    '',
    ...(ceiling ? ['### Round by round', '', ...roundsSection(ceiling, runs), ''] : []),
    '## The model alone',
    '',
    ...(ceiling ? modelSection(ceiling.modelOnly) : ['Not measured in this run.']),
    '',
    '## Agreement on the photos',
    '',
    ...agreementSection(runs, photos),
    '',
    '## The contenders',
    '',
    '- **ours**: `node dist/src/main.js` (Koa; engine worker threads, one per core, each decoding and preprocessing',
    '  with tf ops, PIL-exact, and running the model as one TensorFlow session per batch; requests batched), CPU',
    '  device, default settings.',
    '- **gunicorn**: the same Flask replica served as production serves it: `gunicorn --workers <cores>`, the app',
    '  factory `create_app` per worker; "tuned" with one torch thread per worker (`OMP_NUM_THREADS=1`), "default"',
    '  with torch\'s default threads. PyTorch on OpenBLAS (`libopenblas0-pthread`).',
    '- **flask**: `bench/flask_server.py`, a replica of the original demo: Flask\'s built-in threaded development server',
    '  (`app.run`, as the original ran it), PIL decode, torchvision `Resize((64, 64))`, ToTensor, Normalize, ResNet18 in',
    '  PyTorch on the CPU with its default thread settings; like the original, the forward pass runs with autograd on.',
    '- **ort**: `bench/ort-server.ts`, what a competent developer would write with onnxruntime-node: Koa +',
    '  @koa/multer, jimp decode and jimp\'s default bilinear resize to 64x64, normalisation, softmax and top-3 in JS;',
    '  `InferenceSession.create(path)` with default options (all graph optimisations, intra-op threads chosen by',
    '  onnxruntime), on the same `model.onnx` the converter used.',
    '',
  ].join('\n');
}
