// The end-to-end suites' shared set-up: the converted demo model served over HTTP, and the original demo's PyTorch
// answers (reference_predict.py) on the very checkpoint the model was converted from.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { createApp } from '../../src/http/app';
import { startWorkerPool } from '../../src/engine/worker-pool';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import { prepareRuntime } from '../../src/runtime';
import type { AppConfig } from '../../src/http/state';
import { appConfig, convertedDemoModel, memoryLogger, serve } from '../helpers/app';

const ROOT = path.join(__dirname, '../..');
export const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
/** Probabilities closer than this are a tie whose order float rounding may flip. */
const TIE = 1e-4;

export interface Prediction {
  label: string;
  probability: number;
}

export interface DemoServer {
  url: string;
  /** PyTorch's softmax over every class for each file, in the order given. */
  reference(files: string[]): number[][];
  /** Tensors the engine's workers hold, as reported after their last batch. */
  tensors(): number;
  close(): Promise<void>;
}

/** Serves the converted demo model on an ephemeral port, the way main.ts wires it (two engine workers). */
export async function serveDemoModel(overrides: Partial<AppConfig> = {}): Promise<DemoServer> {
  const modelDir = convertedDemoModel();
  // The demo checkpoint is byte-identical on every run, so the reference rebuilds the one the model came from.
  const checkpoint = path.join(path.dirname(modelDir), 'reference-best.pth');
  execFileSync(PYTHON, [path.join(ROOT, 'tools/demo_checkpoint.py'), '--out', checkpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  const meta = JSON.parse(readFileSync(path.join(modelDir, 'metadata.json'), 'utf8')) as { source: { sha256: string } };
  assert.is(createHash('sha256').update(readFileSync(checkpoint)).digest('hex'), meta.source.sha256, 'reference checkpoint is the converted one');

  // The engine the server runs: worker threads, batches across them, TensorFlow's settings as main.ts gives them
  // (the workers read them from the process's environment when they load the binding).
  prepareRuntime({ device: 'cpu' });
  const pool = await startWorkerPool({ modelDir, workers: 2, device: 'cpu', maxPixels: 36_000_000, honourExif: false, decodeTimeoutMs: 2000, workerHeapMb: 512, maxBatch: 32, maxDelayMs: 0, idleCoreMaxBatch: 1, logger: memoryLogger() });
  const app = createApp({
    config: appConfig({ requestTimeoutMs: 60_000, maxInFlight: 256, ...overrides }),
    logger: memoryLogger(),
    ready: { pipeline: pool.pipeline, health: healthInfo(pool.metadata, runtimeHealth(pool.runtime)), engine: () => ({ threads: pool.workers, tensors: pool.tensors() }) },
  });
  const server = await serve(app.koa.callback());
  return {
    url: server.url,
    tensors: () => pool.tensors(),
    reference(files) {
      const script = path.join(__dirname, 'reference_predict.py');
      const out = execFileSync(PYTHON, [script, '--checkpoint', checkpoint, ...files], { maxBuffer: 64 << 20 }).toString();
      const { files: rows } = JSON.parse(out) as { files: { file: string; probabilities: number[] }[] };
      assert.equal(rows.map((r) => r.file), files, 'one reference row per file, in order');
      return rows.map((r) => r.probabilities);
    },
    async close() {
      await server.close();
      await pool.close();
    },
  };
}

/**
 * Asserts that `got` is PyTorch's top-3: the same labels (except where PyTorch itself has a tie with the next
 * class) and probabilities within 1e-4. Returns the largest probability difference.
 */
export function assertTop3(got: Prediction[], probabilities: number[], name: string): number {
  const ranked = probabilities.map((p, i) => ({ label: String(i), probability: p })).sort((a, b) => b.probability - a.probability);
  assert.is(got.length, 3, name);
  let worst = 0;
  for (let rank = 0; rank < 3; rank++) {
    const want = ranked[rank];
    if (want.probability - ranked[rank + 1].probability > TIE) {
      assert.is(got[rank].label, want.label, `${name}: rank ${rank + 1} label (reference ${JSON.stringify(ranked.slice(0, 4))})`);
    }
    const diff = Math.abs(got[rank].probability - probabilities[Number(got[rank].label)]);
    worst = Math.max(worst, diff);
    assert.ok(diff <= 1e-4, `${name}: rank ${rank + 1} probability ${got[rank].probability} vs PyTorch ${probabilities[Number(got[rank].label)]}`);
  }
  return worst;
}
