// Preprocess cost per photo (PIL-exact resize + normalise), this tree against an earlier commit's, interleaved in one run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Tensor3D } from '@tensorflow/tfjs-node';
import { decodeImage } from '../src/image/decode';
import { createPreprocessor } from '../src/image/preprocess';
import { loadRuntime, readOut } from '../src/runtime';

const USAGE = 'usage: preprocess.ts [--baseline <git revision>] [--runs N] [photo...]  (default: the test photos)';
const ROOT = resolve(__dirname, '..');
const OPTIONS = { height: 64, width: 64, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

type Preprocess = (pixels: Tensor3D) => Tensor3D;

/** The preprocessor of `revision`: its src/preprocess.ts and src/pil-resize.ts, copied out of git. */
function baseline(tf: ReturnType<typeof loadRuntime>['tf'], revision: string): { preprocess: Preprocess; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'preprocess-baseline-'));
  for (const file of ['preprocess.ts', 'pil-resize.ts']) {
    writeFileSync(join(dir, file), execFileSync('git', ['show', `${revision}:src/${file}`], { cwd: ROOT }));
  }
  // Both only type-import ./runtime, which the loader drops.
  const module = require(join(dir, 'preprocess.ts')) as { createPreprocessor: typeof createPreprocessor };
  return { preprocess: module.createPreprocessor(tf, OPTIONS), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Wall ms and CPU ms (all threads of this process) of one call, its output read back as the pipeline does. */
function once(tf: ReturnType<typeof loadRuntime>['tf'], preprocess: Preprocess, pixels: Tensor3D): { ms: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  readOut(tf, () => preprocess(pixels));
  const used = process.cpuUsage(cpu);
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, cpuMs: (used.user + used.system) / 1000 };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { baseline: { type: 'string' }, runs: { type: 'string', default: '7' } },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}\n${USAGE}`);
  const images = resolve(ROOT, 'test/fixtures/images');
  const photos = positionals.length > 0 ? positionals
    : readdirSync(images).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => join(images, f));
  const { tf } = loadRuntime({ device: 'cpu' });
  const contenders: { name: string; preprocess: Preprocess }[] = [{ name: 'this tree', preprocess: createPreprocessor(tf, OPTIONS) }];
  const old = values.baseline === undefined ? undefined : baseline(tf, values.baseline);
  if (old) contenders.push({ name: values.baseline!, preprocess: old.preprocess });

  const totals = contenders.map(() => ({ ms: 0, cpuMs: 0, firstMs: 0 }));
  for (const photo of photos) {
    const { pixels } = await decodeImage(tf, new Uint8Array(readFileSync(photo)), { maxPixels: 50_000_000, honourExif: false });
    // The first call also computes the weights for this size (what a new upload size costs); then the contenders
    // take turns, so load spikes hit both.
    const first = contenders.map((c) => once(tf, c.preprocess, pixels).ms);
    const best = contenders.map(() => Infinity);
    const cpu = contenders.map(() => 0);
    for (let r = 0; r < runs; r++) {
      contenders.forEach((c, i) => {
        const t = once(tf, c.preprocess, pixels);
        best[i] = Math.min(best[i], t.ms);
        cpu[i] += t.cpuMs / runs;
      });
    }
    const [h, w] = pixels.shape;
    pixels.dispose();
    contenders.forEach((_, i) => {
      totals[i].ms += best[i] / photos.length;
      totals[i].cpuMs += cpu[i] / photos.length;
      totals[i].firstMs += first[i] / photos.length;
    });
    const cells = contenders.map((c, i) => `${c.name}: ${best[i].toFixed(2)} ms, ${cpu[i].toFixed(2)} CPU ms, first ${first[i].toFixed(2)} ms`);
    const ratio = old ? `  (x${(best[1] / best[0]).toFixed(2)} wall, x${(cpu[1] / cpu[0]).toFixed(2)} CPU)` : '';
    process.stdout.write(`${photo.slice(photo.lastIndexOf('/') + 1).padEnd(26)} ${`${w}x${h}`.padStart(9)}  ${cells.join('  |  ')}${ratio}\n`);
  }
  old?.cleanup();
  const summary = contenders.map((c, i) =>
    `${c.name}: ${totals[i].ms.toFixed(2)} ms, ${totals[i].cpuMs.toFixed(2)} CPU ms, first call ${totals[i].firstMs.toFixed(2)} ms`);
  const ratio = old ? `  (x${(totals[1].ms / totals[0].ms).toFixed(2)} wall, x${(totals[1].cpuMs / totals[0].cpuMs).toFixed(2)} CPU)` : '';
  process.stdout.write(`mean over ${photos.length} photos (best wall of ${runs}, mean CPU): ${summary.join('  |  ')}${ratio}\n`);
}

main().then(
  // TensorFlow's thread pools would keep the process alive.
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
