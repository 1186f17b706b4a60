// Fuzzing of the upload entry points (readImageHeader, checkPixelLimit, decodeImage, preprocess) with fast-check;
// docs/fuzzing.md. `make fuzz` runs this file; test/fuzz/fuzz.test.ts calls runFuzz for the bounded run of the suite.
// The targets run in a child process (child.ts) so that a native crash or a hang is reported with its input.
//
// Env: FUZZ_SECONDS (default 600), FUZZ_SEED (default random), FUZZ_TARGETS (comma-separated parts of target
// names), FUZZ_PATH (with FUZZ_SEED and one target: replay a counterexample).
import { fork } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

export interface ChildOptions {
  seconds: number;
  seed: number;
  filter: string[];
  path?: string;
  /** Index of the first job to run (after a crash, the one after the crashed job). */
  from: number;
  outDir: string;
  currentFile: string;
}

export interface FindingReport {
  target: string;
  kind: 'property' | 'regression' | 'crash' | 'hang';
  message: string;
  seed?: number;
  path?: string;
  /** The counterexample as seed and mutations. */
  input?: string;
  /** The failing input, as a file. */
  file?: string;
}

export interface TargetReport {
  target: string;
  execs: number;
  seconds: number;
  findings: FindingReport[];
}

export type ChildMessage =
  | { type: 'start'; index: number; total: number; target: string; ext: string }
  | { type: 'done'; index: number; report: TargetReport };

export interface FuzzOptions {
  seconds: number;
  seed: number;
  filter?: string[];
  path?: string;
  log?: (line: string) => void;
}

/** A child that has not written an input for this long is hung (a synchronous loop; async ones time out in child.ts). */
const HANG_MS = 60_000;
const OUT_DIR = path.join(__dirname, '../../.cache/fuzz');

/** Runs the targets for `seconds` in all (plus start-up), restarting the child after a crash; one report per target. */
export async function runFuzz(options: FuzzOptions): Promise<TargetReport[]> {
  const log = options.log ?? (() => {});
  mkdirSync(OUT_DIR, { recursive: true });
  const reports: TargetReport[] = [];
  const base = { seconds: options.seconds, seed: options.seed, filter: options.filter ?? [], path: options.path, outDir: OUT_DIR };
  const currentFile = path.join(OUT_DIR, `current-${process.pid}`);
  const stderrFile = path.join(OUT_DIR, `child-${process.pid}.log`);
  try {
    for (let from = 0; ;) {
      const outcome = await runChild({ ...base, from, currentFile }, stderrFile, (report) => {
        reports.push(report);
        log(formatReport(report));
      });
      if (outcome.failure === undefined) return reports;
      const { failure, active } = outcome;
      if (active === undefined) throw new Error(`the fuzz process failed before it started a target (${failure}):\n${tail(stderrFile)}`);
      const file = path.join(OUT_DIR, `${active.target}-${options.seed}-${outcome.hung ? 'hang' : 'crash'}.${active.ext}`);
      copyFileSync(currentFile, file);
      const stderr = tail(stderrFile);
      const report: TargetReport = {
        target: active.target,
        execs: 0,
        seconds: 0,
        findings: [{ target: active.target, kind: outcome.hung ? 'hang' : 'crash', message: stderr ? `${failure}; its stderr ends:\n${stderr}` : failure, seed: options.seed, file }],
      };
      reports.push(report);
      log(formatReport(report));
      from = active.index + 1;
      if (from >= active.total) return reports;
    }
  } finally {
    rmSync(currentFile, { force: true });
    rmSync(stderrFile, { force: true });
  }
}

interface ChildOutcome {
  /** Why the child did not finish; undefined when it did. */
  failure?: string;
  hung?: boolean;
  /** The job it was running. */
  active?: { index: number; total: number; target: string; ext: string };
}

function runChild(options: ChildOptions, stderrFile: string, onReport: (report: TargetReport) => void): Promise<ChildOutcome> {
  const stderr = openSync(stderrFile, 'w');
  const child = fork(path.join(__dirname, 'child.ts'), [JSON.stringify(options)], {
    execArgv: ['-r', 'tsx/cjs'],
    stdio: ['ignore', 'inherit', stderr, 'ipc'],
  });
  closeSync(stderr);
  let active: ChildOutcome['active'];
  let startedAt = 0;
  let hung = false;
  // Progress is the input file being rewritten; a job's start counts as progress too.
  const watchdog = setInterval(() => {
    if (active === undefined) return;
    const lastInput = Math.max(startedAt, statSync(options.currentFile, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    if (Date.now() - lastInput > HANG_MS) {
      hung = true;
      child.kill('SIGKILL');
    }
  }, 1000);
  child.on('message', (message: ChildMessage) => {
    if (message.type === 'start') {
      active = message;
      startedAt = Date.now();
    } else {
      active = undefined;
      onReport(message.report);
    }
  });
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearInterval(watchdog);
      if (code === 0 && active === undefined) resolve({});
      else resolve({ failure: hung ? `no progress for ${HANG_MS / 1000} s (killed)` : `the fuzz process ended with ${signal ?? `exit code ${code}`}`, hung, active });
    });
  });
}

function tail(file: string, lines = 40): string {
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

function formatReport(r: TargetReport): string {
  const rate = r.seconds > 0 ? `${(r.execs / r.seconds).toFixed(1)}/s` : '';
  return `  ${r.target.padEnd(16)} ${String(r.execs).padStart(9)} execs ${rate.padStart(10)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.findings.length} finding(s)`;
}

export function formatFinding(f: FindingReport): string {
  const replay = f.path === undefined ? '' : `\n    replay: FUZZ_TARGETS=${f.target} FUZZ_SEED=${f.seed} FUZZ_PATH=${f.path} make fuzz`;
  return [
    `- ${f.target} (${f.kind}): ${f.message.replace(/\n/g, '\n    ')}`,
    f.input === undefined ? '' : `\n    input: ${f.input}`,
    f.seed === undefined ? '' : `\n    seed ${f.seed}${f.path === undefined ? '' : `, path ${f.path}`}`,
    replay,
    f.file === undefined ? '' : `\n    file: ${path.relative(process.cwd(), f.file)}`,
  ].join('');
}

async function main(): Promise<void> {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 600);
  if (!(seconds > 0)) throw new Error(`FUZZ_SECONDS must be a positive number, got ${process.env.FUZZ_SECONDS}`);
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
  if (!Number.isSafeInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${process.env.FUZZ_SEED}`);
  const filter = (process.env.FUZZ_TARGETS ?? '').split(',').filter((t) => t !== '');
  const replayPath = process.env.FUZZ_PATH || undefined;
  if (replayPath !== undefined && filter.length !== 1) throw new Error('FUZZ_PATH replays one target: give its name in FUZZ_TARGETS');
  console.log(`fuzz: seed ${seed} (FUZZ_SEED=${seed} repeats this run), ${seconds} s${filter.length ? ` on ${filter.join(', ')}` : ''}; failing inputs go to ${path.relative(process.cwd(), OUT_DIR)}/`);
  const reports = await runFuzz({ seconds, seed, filter, path: replayPath, log: console.log });
  const findings = reports.flatMap((r) => r.findings);
  console.log(`\n${findings.length} finding(s)${findings.length ? `:\n${findings.map(formatFinding).join('\n')}` : ''}`);
  process.exitCode = findings.length > 0 ? 1 : 0;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(2);
  });
}
