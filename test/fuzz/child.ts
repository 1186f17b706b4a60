// The fuzzing process fuzz.ts supervises: replays the regression files, then runs each target for its share of the
// time in this process, reporting over IPC. Every input is written to a file before it runs, so that a native
// crash or a hang, which take this process down, still leaves the input behind.
import { closeSync, ftruncateSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe } from '../../src/errors';
import { tf } from '../helpers/runtime';
import { loadSeeds } from './seeds';
import { allTargets, type Target } from './targets';
import type { ChildMessage, ChildOptions, FindingReport, TargetReport } from './fuzz';

/** Saved inputs that once broke a target, named `<target>--<what>.bin`. */
const REGRESSIONS = path.join(__dirname, '../fixtures/fuzz-regressions');
/** fast-check's limit for one async execution; fuzz.ts catches the synchronous hangs this cannot. */
const ASYNC_TIMEOUT_MS = 30_000;

type Job = { target: Target<unknown> } & ({ regression: string } | { ms: number });

const options = JSON.parse(process.argv[2]) as ChildOptions;
const current = openSync(options.currentFile, 'w');

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, undefined, {}, (err) => (err ? reject(err) : resolve())));
}

function record(data: Uint8Array): void {
  writeSync(current, data, 0, data.length, 0);
  ftruncateSync(current, data.length);
}

/** Regression files of the chosen targets, then the targets, each with its share of the time (by weight). */
function plan(): Job[] {
  const targets = allTargets(tf, loadSeeds()).filter((t) => options.filter.length === 0 || options.filter.some((f) => t.name.includes(f)));
  if (targets.length === 0) throw new Error(`no fuzz target matches ${options.filter.join(', ')}`);
  if (options.path !== undefined && targets.length > 1) throw new Error(`FUZZ_PATH replays one target; ${options.filter.join(', ')} matches ${targets.map((t) => t.name).join(', ')}`);
  const byName = new Map(targets.map((t) => [t.name, t]));
  const regressions = readdirSync(REGRESSIONS)
    .filter((file) => file.endsWith('.bin') && byName.has(file.split('--')[0]))
    .sort()
    .map((file) => ({ target: byName.get(file.split('--')[0])!, regression: file }));
  const weights = targets.reduce((sum, t) => sum + t.weight, 0);
  return [...(options.path === undefined ? regressions : []), ...targets.map((target) => ({ target, ms: (options.seconds * 1000 * target.weight) / weights }))];
}

async function replay(target: Target<unknown>, file: string): Promise<TargetReport> {
  const bytes = new Uint8Array(readFileSync(path.join(REGRESSIONS, file)));
  record(bytes);
  const findings: FindingReport[] = [];
  try {
    await target.checkBytes!(bytes);
  } catch (err) {
    findings.push({ target: target.name, kind: 'regression', message: describe(err), file: path.join(REGRESSIONS, file) });
  }
  return { target: `regression ${file}`, execs: 1, seconds: 0, findings };
}

async function fuzz(target: Target<unknown>, budgetMs: number): Promise<TargetReport> {
  let execs = 0;
  // fast-check's time limit abandons a run still awaiting; it must settle before the next target counts tensors.
  const running = new Set<Promise<unknown>>();
  const run = (value: unknown) => {
    const input = target.input(value);
    record(input);
    execs++;
    const result = target.check(value, input);
    if (result instanceof Promise) {
      running.add(result);
      void result.then(() => running.delete(result), () => running.delete(result));
    }
    return result;
  };
  const property: fc.IRawProperty<[unknown]> = target.async
    ? fc.asyncProperty(target.arbitrary, async (v) => run(v))
    : fc.property(target.arbitrary, (v) => run(v) as void);
  const started = performance.now();
  const details = await fc.check<[unknown]>(property, {
    seed: options.seed,
    // Bounded by time, not by count; a replay runs the one counterexample.
    numRuns: options.path === undefined ? Number.MAX_SAFE_INTEGER : 1,
    plugins: [fc.interruptAfterTimeLimit(budgetMs), ...(target.async ? [fc.timeout(ASYNC_TIMEOUT_MS)] : [])],
    ...(options.path === undefined ? {} : { path: options.path, endOnFailure: true }),
  });
  await Promise.allSettled(running);
  const seconds = (performance.now() - started) / 1000;
  const findings: FindingReport[] = [];
  if (details.failed) {
    const value = details.counterexample?.[0];
    const file = value === undefined ? undefined : path.join(options.outDir, `${target.name}-${details.seed}.${target.inputExt}`);
    if (file !== undefined) writeFileSync(file, target.input(value));
    findings.push({
      target: target.name,
      kind: 'property',
      message: details.errorInstance === null ? `no execution finished within ${Math.round(budgetMs)} ms` : describe(details.errorInstance),
      seed: details.seed,
      path: details.counterexamplePath ?? undefined,
      input: value === undefined ? undefined : target.explain(value),
      file,
    });
  }
  return { target: target.name, execs, seconds, findings };
}

async function main(): Promise<void> {
  const jobs = plan();
  for (const [index, job] of jobs.entries()) {
    if (index < options.from) continue;
    await send({ type: 'start', index, total: jobs.length, target: job.target.name, ext: job.target.inputExt });
    const report = 'regression' in job ? await replay(job.target, job.regression) : await fuzz(job.target, job.ms);
    await send({ type: 'done', index, report });
  }
  closeSync(current);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(describe(err));
    process.exit(2);
  },
);
