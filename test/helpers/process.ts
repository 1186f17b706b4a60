// A child process whose JSON log lines (one per line on stderr) tests can wait for, and that is always cleaned up.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface LoggingProcess {
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Everything written so far to stdout and stderr. */
  output(): string;
  /** Resolves with the first JSON log line whose msg is `msg` (also one logged before the call); rejects on exit. */
  logged(msg: string): Promise<Record<string, unknown>>;
  /** SIGKILLs the process group if it still runs and waits for the exit. */
  kill(): Promise<void>;
}

/** Spawns `command` in a process group of its own (so `kill` also ends what it started, e.g. make's children). */
export function spawnLogging(command: string, args: string[], options: SpawnOptions = {}): LoggingProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  let output = '';
  let partial = '';
  const lines: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  const onLine = (line: string) => {
    if (!line.startsWith('{')) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not a log line (e.g. JSON printed by a tool)
    }
    lines.push(parsed);
    for (const w of waiters.filter((x) => x.msg === parsed.msg)) w.resolve(parsed);
  };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    // Chunks end anywhere: only complete lines are parsed.
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    parts.forEach(onLine);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));
  return {
    child,
    exited,
    output: () => output,
    logged: (msg) =>
      new Promise((resolve, reject) => {
        const earlier = lines.find((l) => l.msg === msg);
        if (earlier) return resolve(earlier);
        waiters.push({ msg, resolve });
        void exited.then((code) => reject(new Error(`process exited (${code}) before logging "${msg}":\n${output}`)));
      }),
    async kill() {
      if (running && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
  };
}

/**
 * The allocator settings `make serve` starts the server with (SERVE_MALLOC_ENV in the Makefile), for tests and the
 * benchmark that start it themselves: read from the Makefile so that they cannot drift apart.
 */
export function serveMallocEnv(): Record<string, string> {
  // A value may hold '=' itself (GLIBC_TUNABLES=glibc.malloc.hugetlb=1): the name ends at the first one.
  return Object.fromEntries(makefileWords('SERVE_MALLOC_ENV').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
}

/** The flags `make serve` gives node (SERVE_NODE_FLAGS in the Makefile), read from it for the same reason. */
export function serveNodeFlags(): string[] {
  return makefileWords('SERVE_NODE_FLAGS');
}

function makefileWords(variable: string): string[] {
  const makefile = readFileSync(path.join(__dirname, '../../Makefile'), 'utf8');
  const line = makefile.split('\n').find((l) => l.startsWith(`${variable} :=`));
  if (!line) throw new Error(`the Makefile no longer sets ${variable}`);
  return line.split(':=')[1].trim().split(/\s+/);
}
