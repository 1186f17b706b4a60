// Side-by-side benchmark in one run: ours vs the Flask original vs plain onnxruntime-node, taking turns under the same load.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { closedLoop, loadUploads, post, summarize, type LoadSample, type Upload } from './load';
import type { HealthInfo } from '../src/http/routes/health';
import { renderPlot } from './plot';
import { interOpWords, medianStages, renderReport, type Ceiling, type RunInfo, type ServerKey, type ServerRun, type StageCosts } from './report';
import { serveMallocEnv, serveNodeFlags } from '../test/helpers/process';
import { freePort, machineBusySeconds, reapedChildrenCpuSeconds, ServerProcess, type ServerSpec } from './server-process';

const ROOT = path.resolve(__dirname, '..');
const USAGE = `Usage: npx tsx bench/run.ts [options]
  --requests <n>       requests per concurrency level and server (default 350; at least 12 per connection per slice)
  --concurrency <list> closed-loop connection counts (default 1,4,32,128)
  --rounds <n>         slices per level; servers take turns slice by slice (default 5)
  --warmup <n>         requests at concurrency 32 each server gets after it starts, unmeasured (default 2000, at most 40 s)
  --max-seconds <n>    time limit per level and server (default 90)
  --only <list>        parts to run, of ceiling,ours,gunicorn,gunicorn-default,flask,ort (default all)
                       (ceiling and ours at concurrency 1 also run bench/inline-server.ts, a lone request's ceiling)
  --model-dir <dir>    converted model (default model_tfjs)
  --convert-dir <dir>  where make convert left model.onnx and export.json (default .cache/convert)
  --images <dir>       photos, *.jpg and *.png (default test/fixtures/images)
  --python <path>      interpreter with torch, torchvision and flask (default /usr/bin/python3)
  --out <file>         markdown report (default docs/benchmark.md)`;

interface Options {
  requests: number;
  warmup: number;
  concurrency: number[];
  rounds: number;
  maxSeconds: number;
  only: Set<string>;
  modelDir: string;
  convertDir: string;
  images: string;
  python: string;
  out: string;
}

class UsageError extends Error {}

function positiveInt(name: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function readOptions(argv: string[]): Options {
  const string = { type: 'string' } as const;
  const options = {
    requests: string, warmup: string, concurrency: string, rounds: string, 'max-seconds': string, only: string, 'model-dir': string,
    'convert-dir': string, images: string, python: string, out: string,
  };
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof options }>>['values'];
  try {
    ({ values } = parseArgs({ args: argv, strict: true, options }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const parts = ['ceiling', 'ours', 'gunicorn', 'gunicorn-default', 'flask', 'ort'];
  const only = (values.only ?? parts.join(',')).split(',');
  const unknown = only.filter((p) => !parts.includes(p));
  if (unknown.length > 0) throw new UsageError(`--only accepts ${parts.join(', ')}; got ${unknown.join(', ')}`);
  return {
    requests: positiveInt('requests', values.requests ?? '350'),
    warmup: positiveInt('warmup', values.warmup ?? '2000'),
    concurrency: (values.concurrency ?? '1,4,32,128').split(',').map((c) => positiveInt('concurrency', c)),
    rounds: positiveInt('rounds', values.rounds ?? '5'),
    maxSeconds: positiveInt('max-seconds', values['max-seconds'] ?? '90'),
    only: new Set(only),
    modelDir: path.resolve(ROOT, values['model-dir'] ?? 'model_tfjs'),
    convertDir: path.resolve(ROOT, values['convert-dir'] ?? '.cache/convert'),
    images: path.resolve(ROOT, values.images ?? 'test/fixtures/images'),
    python: values.python ?? '/usr/bin/python3',
    out: path.resolve(ROOT, values.out ?? 'docs/benchmark.md'),
  };
}

function mustExist(file: string, hint: string): string {
  if (!existsSync(file)) throw new UsageError(`${path.relative(ROOT, file) || file} not found: ${hint}`);
  return file;
}

interface ExportInfo {
  arch: string;
  num_classes: number;
  image_size: number[];
  checkpoint: { path: string; sha256: string };
  demo: boolean;
}

/** What `make convert` exported (architecture, checkpoint), from its export.json. */
function readExport(convertDir: string): ExportInfo {
  const file = mustExist(path.join(convertDir, 'export.json'), 'run `make convert` first');
  return JSON.parse(readFileSync(file, 'utf8')) as ExportInfo;
}

/** The checkpoint `make convert` exported, checked unchanged since, so Flask serves the same weights. */
function convertedCheckpoint(exported: ExportInfo): string {
  const file = path.resolve(ROOT, exported.checkpoint.path);
  const sha256 = createHash('sha256').update(readFileSync(mustExist(file, 'run `make convert` again'))).digest('hex');
  if (sha256 !== exported.checkpoint.sha256) {
    throw new UsageError(`${exported.checkpoint.path} changed since the last \`make convert\`: run \`make convert\` again`);
  }
  return file;
}

interface Contender {
  key: ServerKey;
  title: string;
  spec: (port: number) => ServerSpec;
  /** True once the server answers as ready. */
  ready: (base: URL, probe: Upload) => Promise<boolean>;
  /** Checks a ready server against the converted model and describes what it runs, for the report. */
  inspect?: (base: URL) => Promise<string>;
  /** The concurrency levels it runs at (default: all). */
  levels?: number[];
}

/** Our /health: the runtime it reports, and proof that it serves the checkpoint make convert exported. */
async function inspectOurs(base: URL, exported: ExportInfo): Promise<string> {
  const health = (await (await fetch(new URL('/health', base))).json()) as HealthInfo;
  if (health.model.checkpoint_sha256 !== exported.checkpoint.sha256) {
    throw new UsageError('the model in --model-dir was not converted from the checkpoint in .cache/convert/export.json: run `make convert`');
  }
  const r = health.runtime;
  return (
    `ours, from its /health: ${r.binding}, backend ${r.backend} on ${r.device}, TensorFlow ${r.tensorflow}, ` +
    `intra-op threads ${r.intra_op_threads}, ${interOpWords(r.inter_op_threads)}, oneDNN ${r.onednn ? 'on' : 'off'}, convolutions ${r.convolutions}`
  );
}

const predictsOk = async (base: URL, probe: Upload) =>
  (await post(new URL('/predict', base), probe, new http.Agent())).status === 200;

function contenders(opts: Options, exported: ExportInfo, checkpoint: string, logDir: string): Contender[] {
  // The original app as production serves it: gunicorn, one worker process per core, the app factory per worker.
  const gunicorn = (key: ServerKey, title: string, env: Record<string, string>): Contender => ({
    key,
    title,
    spec: (port) => ({
      command: opts.python,
      args: ['-m', 'gunicorn', '--workers', String(os.availableParallelism()), '--bind', `127.0.0.1:${port}`,
        '--chdir', path.join(ROOT, 'bench'), `flask_server:create_app(${JSON.stringify(checkpoint)})`],
      env,
      logFile: path.join(logDir, `${key}.log`),
    }),
    ready: predictsOk,
  });
  const all: Contender[] = [
    {
      key: 'ours',
      title: 'ours (tfjs-node)',
      spec: (port) => ({
        command: process.execPath,
        args: [...serveNodeFlags(), mustExist(path.join(ROOT, 'dist/src/main.js'), 'run `make build` first'), '--port', String(port),
          '--host', '127.0.0.1', '--model-dir', opts.modelDir, '--device', 'cpu'],
        // As `make serve` starts it.
        env: serveMallocEnv(),
        logFile: path.join(logDir, 'ours.log'),
      }),
      ready: async (base) => (await fetch(new URL('/health', base))).status === 200,
      inspect: (base) => inspectOurs(base, exported),
    },
    {
      // Part of the ceiling, not a contender: the one-image ceiling through HTTP, its slices right after ours' at concurrency 1.
      key: 'inline',
      title: 'the stages inline in a plain Koa server (the one-image ceiling through HTTP)',
      spec: (port) => ({
        command: process.execPath,
        args: [...serveNodeFlags(), mustExist(path.join(ROOT, 'dist/bench/inline-server.js'), 'run `make build` first'), '--model-dir',
          opts.modelDir, '--port', String(port)],
        env: { ...serveMallocEnv(), TF_CPP_MIN_LOG_LEVEL: '1' },
        logFile: path.join(logDir, 'inline.log'),
      }),
      ready: predictsOk,
      levels: [1],
    },
    gunicorn('gunicorn', 'Flask original under gunicorn, tuned (a worker per core, 1 torch thread each)', { OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' }),
    gunicorn('gunicorn-default', 'Flask original under gunicorn, torch default threads', {}),
    {
      key: 'flask',
      title: 'Flask original (PyTorch)',
      spec: (port) => ({
        command: opts.python,
        args: [path.join(ROOT, 'bench/flask_server.py'), '--checkpoint', checkpoint, '--port', String(port)],
        logFile: path.join(logDir, 'flask.log'),
      }),
      ready: predictsOk,
    },
    {
      key: 'ort',
      title: 'onnxruntime-node',
      spec: (port) => ({
        command: process.execPath,
        args: [mustExist(path.join(ROOT, 'dist/bench/ort-server.js'), 'run `make build` first'), '--model',
          path.join(opts.convertDir, 'model.onnx'), '--port', String(port)],
        logFile: path.join(logDir, 'ort.log'),
      }),
      ready: predictsOk,
    },
  ];
  const inline = opts.only.has('ceiling') && opts.only.has('ours') && opts.concurrency.includes(1);
  return all.filter((c) => opts.only.has(c.key) || (c.key === 'inline' && inline));
}

/** A started, warmed-up server with what the warm-up pass answered. */
interface Live {
  contender: Contender;
  server: ServerProcess;
  url: URL;
  description?: string;
  answers: ServerRun['answers'];
  /** Highest VmHWM seen after its slices: a server that dies takes its own with it. */
  peakRssMiB: number;
  /** Set when the server died under load: when, how, and its log's last line. */
  crash?: string;
}

// The warm-up's load: the benchmark's main level, bounded in time for the slow servers.
const WARMUP_CONCURRENCY = 32;
const WARMUP_SECONDS = 40;

/**
 * Unmeasured load, so that a server is measured warm: JIT compilation and heap sizing settle over the first thousand
 * or so requests (ours at 32 clients, slices of 384 taking turns after one pass over the photos: 222 req/s in the
 * first slice, 265 by the seventh). A server runs warm in production.
 */
async function warmUp(url: URL, uploads: Upload[], requests: number): Promise<void> {
  await closedLoop(url, uploads, { concurrency: WARMUP_CONCURRENCY, requests, maxSeconds: WARMUP_SECONDS, offset: 0 });
}

async function startServer(contender: Contender, uploads: Upload[], warmup: number): Promise<Live> {
  const port = await freePort();
  const base = new URL(`http://127.0.0.1:${port}`);
  const spec = contender.spec(port);
  console.error(`starting ${contender.title} (log: ${path.relative(ROOT, spec.logFile)})`);
  const server = ServerProcess.start(spec);
  try {
    await server.waitReady(() => contender.ready(base, uploads[0]), 300);
    const description = await contender.inspect?.(base);
    const url = new URL('/predict', base);
    // The warm-up pass also records every photo's answer for the agreement check.
    const agent = new http.Agent({ keepAlive: true });
    const answers: ServerRun['answers'] = new Map();
    for (const upload of uploads) {
      const answer = await post(url, upload, agent);
      answers.set(upload.name, answer.predictions ?? answer.error ?? 'no answer');
    }
    agent.destroy();
    await warmUp(url, uploads, warmup);
    return { contender, server, url, description, answers, peakRssMiB: await server.peakRssMiB() };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

interface Slices {
  samples: LoadSample[];
  serverCpu: number;
  otherCpu: number;
}

/**
 * One slice of closed-loop load on one server, with the server's CPU time and everyone else's over it. A server that
 * died during the slice gets its crash noted and the slice is dropped: its answers were refused connections.
 */
async function slice(
  live: Live,
  uploads: Upload[],
  opts: { concurrency: number; requests: number; maxSeconds: number; offset: number; round: number },
  into: Slices,
): Promise<void> {
  const [cpuBefore, busyBefore] = [await live.server.cpuSeconds(), await machineBusySeconds()];
  const sample = await closedLoop(live.url, uploads, opts);
  const serverCpu = (await live.server.cpuSeconds()) - cpuBefore;
  const busy = await machineBusySeconds();
  if (live.server.exitStatus !== undefined) {
    live.crash = `${live.server.exitStatus} during round ${opts.round + 1} at concurrency ${opts.concurrency}; ` +
      `the last line of its log: \`${await live.server.logTail(1)}\``;
    console.error(`${live.contender.title} ${live.crash}`);
    return;
  }
  live.peakRssMiB = Math.max(live.peakRssMiB, await live.server.peakRssMiB());
  into.samples.push(sample);
  into.serverCpu += serverCpu;
  into.otherCpu += Math.max(0, busy - busyBefore - serverCpu - sample.clientCpuMs / 1000);
}

/**
 * Runs the servers side by side: every concurrency level is split into `rounds` slices, and the servers take turns
 * slice by slice, so that load from other users of the machine, which comes and goes, falls on all of them alike.
 */
async function drive(lives: Live[], uploads: Upload[], opts: Options, betweenRounds: () => Promise<void>): Promise<ServerRun[]> {
  const slices = new Map(lives.map((l) => [l, new Map(opts.concurrency.map((c) => [c, { samples: [], serverCpu: 0, otherCpu: 0 } as Slices]))]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const concurrency of opts.concurrency) {
      // Twelve requests per connection at least: a slice starts with every connection's request arriving at once, and
      // must run long past that ramp to measure its level (ours at 32 clients, slices of 4, 12 and 24 per connection
      // taking turns: 140, 163 and 162 req/s).
      const perSlice = Math.max(Math.ceil(opts.requests / opts.rounds), 12 * concurrency);
      for (const live of lives.filter((l) => l.crash === undefined && (l.contender.levels?.includes(concurrency) ?? true))) {
        const sliceOpts = { concurrency, requests: perSlice, maxSeconds: opts.maxSeconds / opts.rounds, offset: round * perSlice, round };
        await slice(live, uploads, sliceOpts, slices.get(live)!.get(concurrency)!);
      }
    }
    await betweenRounds();
    console.error(`round ${round + 1}/${opts.rounds} done`);
  }
  const runs: ServerRun[] = [];
  for (const live of lives) {
    const levels = opts.concurrency.filter((c) => live.contender.levels?.includes(c) ?? true).map((concurrency) => {
      const { samples, serverCpu, otherCpu } = slices.get(live)!.get(concurrency)!;
      const result = summarize(concurrency, samples);
      console.error(
        `${live.contender.title}, concurrency ${concurrency}: ${result.throughput.toFixed(1)} req/s, p50 ${result.p50.toFixed(1)} ms, ` +
          `${result.errors} errors${result.firstError ? ` (first: ${result.firstError})` : ''}`,
      );
      // Whatever else ran meanwhile (other users of the machine), in cores: the noise indicator of this level.
      return { ...result, cpuMsPerRequest: (serverCpu * 1000) / result.requests, otherCores: otherCpu / result.seconds };
    });
    const { key, title } = live.contender;
    runs.push({ key, title, levels, peakRssMiB: live.peakRssMiB, answers: live.answers, description: live.description, crash: live.crash });
  }
  return runs;
}

/** bench/ceiling.ts in a process of its own, with the server's allocator settings and node flags; its JSON line. */
function runCeiling(opts: Options, photos: string[], mode: string[]): string {
  return execFileSync(
    process.execPath,
    [...serveNodeFlags(), '-r', 'tsx/cjs', path.join(ROOT, 'bench/ceiling.ts'), '--model-dir', opts.modelDir, ...mode, ...photos],
    // TF_CPP_MIN_LOG_LEVEL=1: TensorFlow's start-up INFO lines off, its warnings and errors kept.
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...serveMallocEnv(), TF_CPP_MIN_LOG_LEVEL: '1' } },
  );
}

async function measureCeiling(opts: Options, photos: string[]): Promise<Ceiling> {
  const [busyBefore, childBefore, selfBefore, start] = [await machineBusySeconds(), await reapedChildrenCpuSeconds(), process.cpuUsage(), Date.now()];
  const out = runCeiling(opts, photos, ['--onnx', path.join(opts.convertDir, 'model.onnx')]);
  const self = process.cpuUsage(selfBefore);
  const ours = (await reapedChildrenCpuSeconds()) - childBefore + (self.user + self.system) / 1e6;
  const otherCores = Math.max(0, ((await machineBusySeconds()) - busyBefore - ours) / ((Date.now() - start) / 1000));
  return { ...(JSON.parse(out) as Omit<Ceiling, 'otherCores'>), otherCores };
}

const HTTP_STAGE_REQUESTS = 2000;

/**
 * The HTTP stage of the ceiling: bench/http-stage.ts (the plain Koa + @koa/multer server, a constant answer) under
 * the same uploads at concurrency 32, warmed up like the servers; its CPU and the load generator's per request.
 */
async function measureHttpStage(opts: Options, uploads: Upload[], logDir: string): Promise<NonNullable<Ceiling['http']>> {
  const port = await freePort();
  const base = new URL(`http://127.0.0.1:${port}`);
  const server = ServerProcess.start({
    command: process.execPath,
    args: [mustExist(path.join(ROOT, 'dist/bench/http-stage.js'), 'run `make build` first'), '--port', String(port)],
    logFile: path.join(logDir, 'http-stage.log'),
  });
  try {
    await server.waitReady(() => predictsOk(base, uploads[0]), 60);
    const url = new URL('/predict', base);
    await warmUp(url, uploads, opts.warmup);
    const before = await server.cpuSeconds();
    const sample = await closedLoop(url, uploads, { concurrency: WARMUP_CONCURRENCY, requests: HTTP_STAGE_REQUESTS, maxSeconds: 60, offset: 0 });
    const requests = sample.latencies.length;
    if (sample.errors > 0) throw new Error(`the HTTP stage server failed ${sample.errors} requests (${sample.firstError}); see its log`);
    return { concurrency: WARMUP_CONCURRENCY, serverCpuMs: ((await server.cpuSeconds()) - before) * 1000 / requests, clientCpuMs: sample.clientCpuMs / requests };
  } finally {
    await server.stop();
  }
}

function versions(python: string, backend: string | undefined): string[] {
  const pkg = (name: string) => (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
  const py = execFileSync(
    python,
    ['-c', 'import importlib.metadata as m, platform, torch; print(f"Python {platform.python_version()}, torch {torch.__version__} ' +
      '(intra-op threads: {torch.get_num_threads()}), torchvision {m.version(\'torchvision\')}, Flask {m.version(\'flask\')}, ' +
      'Werkzeug {m.version(\'werkzeug\')}, Pillow {m.version(\'pillow\')}")'],
    { encoding: 'utf8' },
  ).trim();
  return [
    `Node ${process.versions.node}, @tensorflow/tfjs-node ${pkg('@tensorflow/tfjs-node')}` +
      `${backend ? ` (${backend})` : ''}, onnxruntime-node ${pkg('onnxruntime-node')}, jimp ${pkg('jimp')}, koa ${pkg('koa')}`,
    py,
  ];
}

async function main(): Promise<void> {
  const opts = readOptions(process.argv.slice(2));
  const exported = readExport(opts.convertDir);
  const python = ['flask', 'gunicorn', 'gunicorn-default'].some((key) => opts.only.has(key));
  const checkpoint = python ? convertedCheckpoint(exported) : '';
  if (opts.only.has('ours') || opts.only.has('ceiling')) mustExist(path.join(opts.modelDir, 'model.json'), 'run `make convert` first');
  if (opts.only.has('ort') || opts.only.has('ceiling')) mustExist(path.join(opts.convertDir, 'model.onnx'), 'run `make convert` first');
  const photos = readdirSync(mustExist(opts.images, 'pass --images <dir with the test photos>'))
    .filter((f) => /\.(jpe?g|png)$/i.test(f))
    .sort()
    .map((f) => path.join(opts.images, f));
  if (photos.length === 0) throw new UsageError(`no .jpg or .png photos in ${opts.images}`);
  const uploads = await loadUploads(photos);
  const logDir = path.join(ROOT, '.cache/bench/logs');
  mkdirSync(logDir, { recursive: true });

  // The ceiling runs first, on a quiet machine, in its own process (it loads the TensorFlow binding).
  const ceiling = opts.only.has('ceiling') ? await measureCeiling(opts, photos) : undefined;
  if (ceiling) {
    // PyTorch's forward alone (one thread) and the FLOPs of the graph, from Python.
    const costs = JSON.parse(execFileSync(opts.python, [path.join(ROOT, 'bench/model_costs.py'), path.join(opts.convertDir, 'model.onnx'),
      exported.arch, String(exported.num_classes), String(exported.image_size[0])], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } })) as { flops: number; torch_ms: Record<string, number> };
    ceiling.modelOnly = { ...ceiling.modelOnly, torch: costs.torch_ms, flops: costs.flops };
    // What the original spends before the model on the same photos: Pillow's decode, convert and resize.
    const pillow = JSON.parse(execFileSync(opts.python, [path.join(ROOT, 'bench/pillow_costs.py'), String(exported.image_size[0]),
      String(exported.image_size[1]), ...photos], { encoding: 'utf8' })) as { ms: number; cpu_ms: number };
    ceiling.pillow = { ms: pillow.ms, cpuMs: pillow.cpu_ms };
    ceiling.http = await measureHttpStage(opts, uploads, logDir);
  }
  const lives: Live[] = [];
  let runs: ServerRun[];
  try {
    for (const contender of contenders(opts, exported, checkpoint, logDir)) lives.push(await startServer(contender, uploads, opts.warmup));
    // The stages again after each round, the servers idle: the ceiling's figures are medians over the whole run.
    const between: StageCosts[] = [];
    const measureBetween = async () => {
      if (ceiling) between.push(JSON.parse(runCeiling(opts, photos, ['--stages-only'])) as StageCosts);
    };
    runs = lives.length > 0 ? await drive(lives, uploads, opts, measureBetween) : [];
    const inline = runs.find((r) => r.key === 'inline');
    runs = runs.filter((r) => r !== inline);
    const inlineC1 = inline?.levels.find((l) => l.concurrency === 1);
    if (ceiling && inlineC1) {
      if (inlineC1.errors > 0) throw new Error(`the inline stages server failed ${inlineC1.errors} requests (${inlineC1.firstError}); see its log`);
      ceiling.inline = { p50: inlineC1.p50, slices: inlineC1.slices.map((s) => s.p50), cpuMsPerRequest: inlineC1.cpuMsPerRequest };
    }
    if (ceiling && between.length > 0) {
      // The ceiling's own figures, copied (the median of one measurement is itself): Object.assign below overwrites
      // them with the medians. medianStages is the one place that lists the stages.
      const first = medianStages([ceiling]);
      Object.assign(ceiling, medianStages([first, ...between]), { measurements: [first, ...between] });
    }
  } finally {
    await Promise.all(lives.map((l) => l.server.stop()));
  }

  const cpus = os.cpus();
  const info: RunInfo = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine:
      `${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
      `${os.type()} ${os.release()}`,
    versions: versions(opts.python, ceiling?.backend),
    model:
      `Model: ${exported.arch}, ${exported.num_classes} classes, input ${exported.image_size.join('x')}, ` +
      `checkpoint \`${exported.checkpoint.path}\`` +
      (exported.demo
        ? ' (the seeded, untrained demo checkpoint of `make convert`: its classes mean nothing, but it is the same network ' +
          'and the same arithmetic as a trained one, so speed and agreement are measured just the same)'
        : ''),
    photos: photos.length,
    images: path.relative(path.dirname(ROOT), opts.images),
    requestsPerLevel: opts.requests,
    rounds: opts.rounds,
    maxSeconds: opts.maxSeconds,
    warmup: { requests: opts.warmup, concurrency: WARMUP_CONCURRENCY, seconds: WARMUP_SECONDS },
    command: ['npx tsx bench/run.ts', ...process.argv.slice(2)].join(' '),
  };
  const report = renderReport(info, runs, ceiling, uploads.map((u) => u.name));
  process.stdout.write(report);
  writeFileSync(opts.out, report);
  const plot = opts.out.replace(/\.md$/, '.svg');
  writeFileSync(plot, renderPlot(runs, `Throughput vs p99 latency (${info.machine.split(',')[0]})`));
  console.error(`written to ${path.relative(ROOT, opts.out)} and ${path.relative(ROOT, plot)}`);
}

main().catch((err: Error) => {
  console.error(err instanceof UsageError ? `${err.message}\n\n${USAGE}` : err.stack ?? err.message);
  process.exit(1);
});
