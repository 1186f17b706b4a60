// The test runner behind `make test` and `npm test`: uvu's suites, plus what uvu 0.5 lacks. A set-up or tear-down
// hook that throws, a test that never ran, and a test that outlives its time limit each fail the run, named.
//
// Usage: node -r tsx/cjs test/run.ts [filter ...]   (a filter keeps the test files whose path contains it)
// Env: TEST_TIMEOUT_MS, the limit for one test or hook (default 600000).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type * as Uvu from 'uvu';

const ROOT = __dirname;
const TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS ?? 600_000);
if (!Number.isSafeInteger(TIMEOUT_MS) || TIMEOUT_MS < 1) throw new Error(`TEST_TIMEOUT_MS must be a positive integer, got ${process.env.TEST_TIMEOUT_MS}`);

type Handler = Uvu.Callback;
type Test = Uvu.Test;

const problems: string[] = [];
const registered = new Map<string, number>();
const ran = new Map<string, number>();

function testFiles(filters: string[]): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? (e.name === 'fixtures' ? [] : walk(path.join(dir, e.name))) : e.name.endsWith('.test.ts') ? [path.join(dir, e.name)] : [],
    );
  const all = walk(ROOT).map((f) => path.relative(ROOT, f)).sort();
  return filters.length === 0 ? all : all.filter((f) => filters.some((x) => f.includes(x)));
}

/** Runs `handler`, failing with a message naming `what` if it has not settled within the limit. */
function limited(what: string, handler: Handler): Handler {
  return (context) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        problems.push(`timed out: ${what} ran longer than ${TIMEOUT_MS} ms`);
        reject(new Error(`${what} did not finish within ${TIMEOUT_MS} ms (TEST_TIMEOUT_MS)`));
      }, TIMEOUT_MS);
    });
    return Promise.race([Promise.resolve().then(() => handler(context)), timeout]).finally(() => clearTimeout(timer));
  };
}

/**
 * uvu's runner swallows what a before hook throws (a `return` in its `finally`), and an after hook that throws
 * escapes it and ends the whole run: record either, rethrow only from before hooks (their suite must stop).
 */
function hook(what: string, handler: Handler, rethrow: boolean): Handler {
  const bounded = limited(what, handler);
  return async (context) => {
    try {
      await bounded(context);
    } catch (err) {
      problems.push(`${what} threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (rethrow) throw err;
    }
  };
}

/** Wraps one uvu suite so that its tests and hooks are bounded, counted and their failures named. */
function guard(real: Test, label: string): Test {
  const key = (name: string) => `${label} › ${name}`;
  const wrapped = ((name: string, handler: Handler) => {
    registered.set(key(name), (registered.get(key(name)) ?? 0) + 1);
    real(name, limited(`test "${key(name)}"`, async (context) => {
      ran.set(key(name), (ran.get(key(name)) ?? 0) + 1);
      await handler(context);
    }));
  }) as unknown as Test;
  const hooks = (kind: string, add: (h: Handler) => void) => (h: Handler) => add(hook(`${kind} hook of ${label}`, h, kind.startsWith('before')));
  wrapped.before = Object.assign(hooks('before', real.before), { each: hooks('before.each', real.before.each) });
  wrapped.after = Object.assign(hooks('after', real.after), { each: hooks('after.each', real.after.each) });
  wrapped.only = ((name: string, handler: Handler) => {
    problems.push(`${key(name)} uses test.only, which skips the rest of its suite`);
    real.only(name, handler);
  }) as Test['only'];
  wrapped.skip = real.skip;
  wrapped.run = real.run;
  return wrapped;
}

/** The variables the service and its tools read: a developer's shell settings must not change what tests see. */
function clearServiceEnvironment(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { OPTIONS } = require('../src/config') as typeof import('../src/config');
  for (const name of [...OPTIONS.map((o) => o.env), 'TF_ENABLE_ONEDNN_OPTS', 'PREDICT_URL', 'CHECKPOINT', 'ARCH', 'LABELS', 'IMAGE_SIZE']) {
    delete process.env[name];
  }
}

async function main(): Promise<void> {
  clearServiceEnvironment();
  (globalThis as { UVU_DEFER?: number }).UVU_DEFER = 1;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const uvu = require('uvu') as typeof Uvu;
  const realSuite = uvu.suite;
  const realTest = uvu.test;
  const files = testFiles(process.argv.slice(2));
  if (files.length === 0) throw new Error(`no test file matches ${process.argv.slice(2).join(' ')}`);
  const queue = (globalThis as unknown as { UVU_QUEUE: unknown[][] }).UVU_QUEUE;

  let current = '';
  // The suites a test file makes are wrapped as it makes them: files import { test, suite } from 'uvu'.
  Object.defineProperty(uvu, 'suite', { value: (name?: string, state?: object) => guard(realSuite(name, state), `${current}${name ? ` › ${name}` : ''}`) });
  for (const [index, file] of files.entries()) {
    current = file;
    queue.push([file]);
    (globalThis as { UVU_INDEX?: number }).UVU_INDEX = index;
    Object.defineProperty(uvu, 'test', { value: guard(realTest, file), configurable: true });
    try {
      require(path.join(ROOT, file));
    } catch (err) {
      problems.push(`${file} failed to load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  try {
    await uvu.exec();
  } catch (err) {
    problems.push(`the run stopped: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }

  for (const [name, count] of registered) {
    const missing = count - (ran.get(name) ?? 0);
    if (missing > 0) problems.push(`did not run: ${name}${count > 1 ? ` (${missing} of ${count} with this name)` : ''}`);
  }
  if (problems.length > 0) {
    process.stdout.write(`\n  Not passed outside the assertions above (${problems.length}):\n${problems.map((p) => `  - ${p.replace(/\n/g, '\n    ')}`).join('\n')}\n\n`);
  }
  // Handles a hung or careless test left open must not keep the run alive.
  process.exit(problems.length > 0 || process.exitCode ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
