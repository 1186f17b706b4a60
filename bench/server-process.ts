// Starts a server under test as a child process, waits until it answers, and reads its CPU time and peak RSS from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** What to run: `command args...` with extra env; `logFile` receives its stdout and stderr. */
export interface ServerSpec {
  command: string;
  args: string[];
  env?: Record<string, string>;
  logFile: string;
}

/** Asks the kernel for a free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

// USER_HZ: /proc reports CPU times in clock ticks of 1/100 s on Linux.
const TICKS_PER_SECOND = 100;

async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Fields after the parenthesised command name: state, ppid, ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid) found.push(Number(entry));
  }
  return found;
}

/** CPU seconds the whole machine spent busy (all cores, everything but idle and iowait) since boot. */
export async function machineBusySeconds(): Promise<number> {
  const [, ...ticks] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).map(Number);
  // Fields of the "cpu" line: user nice system idle iowait irq softirq steal (guest time is already in user).
  const [user, nice, system, , , irq, softirq, steal] = ticks;
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** CPU seconds of this process's children that have exited and been waited for (cutime + cstime of /proc/self/stat). */
export async function reapedChildrenCpuSeconds(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17, i.e. 13 and 14 after the command name.
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
}

/** The process and all its descendants (a server may run workers in child processes). */
async function processTree(pid: number): Promise<number[]> {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(await childrenOf(tree[i])));
  return tree;
}

export class ServerProcess {
  private exited: string | undefined;
  private constructor(
    private readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    child.once('exit', (code, signal) => {
      this.exited = `exited with ${signal ?? `code ${code}`}`;
    });
  }

  static start(spec: ServerSpec): ServerProcess {
    const log = createWriteStream(spec.logFile);
    const child = spawn(spec.command, spec.args, {
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    return new ServerProcess(child, spec.logFile);
  }

  /** How the process ended ("exited with SIGABRT"), or undefined while it runs. */
  get exitStatus(): string | undefined {
    return this.exited;
  }

  /** The last `lines` lines of its log (trailing blank lines dropped), to say why it ended. */
  async logTail(lines: number): Promise<string> {
    const log = await readFile(this.logFile, 'utf8').catch(() => '');
    return log.trimEnd().split('\n').slice(-lines).join('\n');
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`server did not start; see ${this.logFile}`);
    return this.child.pid;
  }

  /** Polls `probe` until it returns true; fails early if the process exits, or after `timeoutSeconds`. */
  async waitReady(probe: () => Promise<boolean>, timeoutSeconds: number): Promise<void> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    while (Date.now() < deadline) {
      if (this.exited !== undefined) {
        throw new Error(`server ${this.exited} before it was ready; last log lines:\n${await this.logTail(15)}`);
      }
      if (await probe().catch(() => false)) return;
      await sleep(250);
    }
    throw new Error(`server not ready after ${timeoutSeconds} s; see ${this.logFile}`);
  }

  /** User + system CPU seconds consumed so far by the server and its live descendants. */
  async cpuSeconds(): Promise<number> {
    let ticks = 0;
    for (const pid of await processTree(this.pid)) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime are fields 14 and 15 of /proc/PID/stat, i.e. 11 and 12 after the command name.
      ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    }
    return ticks / TICKS_PER_SECOND;
  }

  /** Peak resident set size (VmHWM) in MiB, summed over the process tree. */
  peakRssMiB(): Promise<number> {
    return this.statusMiB('VmHWM');
  }

  /** Resident set size now (VmRSS) in MiB, summed over the process tree. */
  rssMiB(): Promise<number> {
    return this.statusMiB('VmRSS');
  }

  /** A kB field of /proc/PID/status in MiB, summed over the process tree. */
  private async statusMiB(field: 'VmHWM' | 'VmRSS'): Promise<number> {
    let kib = 0;
    for (const pid of await processTree(this.pid)) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      kib += Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    }
    return kib / 1024;
  }

  /** SIGTERM, then SIGKILL if it is still there after 5 s. */
  async stop(): Promise<void> {
    if (this.exited !== undefined) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}
