// src/memory.ts: the native addon hands freed arena pages back to the system, and a collection frees the native
// memory of dead buffers within a turn of the event loop. Measured in child processes with make serve's allocator
// settings, so that the arena holds the freed buffers.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leavesMemoryBehind } from '../../src/image/decode';
import { IdleRelease, memoryAddonMissing } from '../../src/memory';
import { serveMallocEnv } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');

/** Runs `body` (TypeScript, with `rssMiB()` and the module's exports in scope) in a child; returns its JSON output. */
function child<T>(body: string): T {
  const script = `
    const { collectGarbage, releaseFreedMemory } = require(${JSON.stringify(path.join(ROOT, 'src/memory.ts'))});
    const rssMiB = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
    (async () => { ${body} })().then((r) => process.stdout.write(JSON.stringify(r)));`;
  const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', '-e', script], { cwd: ROOT, env: { ...process.env, ...serveMallocEnv() } });
  return JSON.parse(out.toString()) as T;
}

test('the addon is built (make build)', () => {
  assert.is(memoryAddonMissing(), null);
});

test('memory is given back after large images and libvips decodes, not after ordinary photos', () => {
  assert.is(leavesMemoryBehind({ format: 'jpeg', width: 1024, height: 683 }), false);
  assert.is(leavesMemoryBehind({ format: 'png', width: 3264, height: 2448 }), false, '24 MB decoded: under 32 MiB');
  assert.is(leavesMemoryBehind({ format: 'jpeg', width: 4000, height: 3000 }), true, '36 MB decoded');
  assert.is(leavesMemoryBehind({ format: 'tiff', width: 1, height: 30000 }), true);
  assert.is(leavesMemoryBehind({ format: 'webp', width: 64, height: 64 }), true);
});

test('an idle engine gives memory back at once after a large image, else once it has stayed idle', async () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  let releases = 0;
  const idle = new IdleRelease(() => (releases += 1), 50);
  idle.busy();
  idle.idle(true);
  assert.is(releases, 1, 'after a large image: at once');
  idle.busy();
  idle.idle(false);
  assert.is(releases, 1, 'after ordinary photos: not at once');
  await sleep(120);
  assert.is(releases, 2, 'after ordinary photos: once the delay has passed idle');
  await sleep(120);
  assert.is(releases, 2, 'once per idle spell');
  idle.idle(false);
  await sleep(20);
  idle.busy();
  await sleep(120);
  assert.is(releases, 2, 'work that started within the delay cancels the release');
  idle.idle(false);
  idle.close();
  await sleep(120);
  assert.is(releases, 2, 'close cancels a pending release');
});

test('releaseFreedMemory gives back the pages of buffers freed between live ones', () => {
  // 1 MiB buffers (below the 32 MiB mapping threshold: they live in the arena), every other one kept, so that the
  // freed ones are holes that glibc would never return by itself.
  const { held, trimmed, released } = child<{ held: number; trimmed: number; released: boolean }>(`
    let buffers = Array.from({ length: 400 }, () => Buffer.alloc(2 ** 20, 1));
    const keep = buffers.filter((_, i) => i % 2 === 1);
    buffers = null;
    await collectGarbage();
    const held = rssMiB();
    const released = releaseFreedMemory();
    return { held, trimmed: held - rssMiB(), released, keep: keep.length };`);
  assert.ok(released, 'malloc_trim reports memory released');
  assert.ok(trimmed > 150, `RSS fell by ${trimmed.toFixed(0)} MiB of the 200 MiB freed (held ${held.toFixed(0)} MiB)`);
});

test("collectGarbage frees a dead buffer's native memory before it resolves", () => {
  // 64 MiB: mapped on its own, so its pages leave the RSS as soon as it is freed.
  const { before, after } = child<{ before: number; after: number }>(`
    let big = Buffer.alloc(64 * 2 ** 20, 1);
    const before = rssMiB();
    big = null;
    await collectGarbage();
    return { before, after: rssMiB() };`);
  assert.ok(before - after > 60, `RSS fell by ${(before - after).toFixed(0)} MiB after the collection`);
});

test.run();
