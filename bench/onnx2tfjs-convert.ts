// Benchmark: TypeScript conversion time of an ONNX model (default ResNet18 at 64x64); target under 2 s for ResNet18.
// Usage: npx tsx bench/onnx2tfjs-convert.ts [model.onnx] [--runs N]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertGraph } from '../tools/onnx2tfjs/converter';
import { readOnnx } from '../tools/onnx2tfjs/reader';
import { toGraphModelFiles } from '../tools/onnx2tfjs/writer';

const TARGET_MS = 2000;
const ROOT = path.join(__dirname, '..');

/** ResNet18 exported once by the test fixture script (seeded random init), cached beside the matrix exports. */
function defaultModel(): string {
  const dir = path.join(ROOT, '.cache', 'onnx2tfjs', 'bench-resnet18-64');
  const file = path.join(dir, 'model.onnx');
  if (!existsSync(file)) {
    const r = spawnSync(process.env.PYTHON ?? '/usr/bin/python3', [path.join(ROOT, 'test', 'onnx2tfjs', 'export-torchvision.py'), '--arch', 'resnet18', '--size', '64', '--out', dir], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('exporting ResNet18 failed; is Debian python3-torch installed (make deps-python)?');
  }
  return file;
}

function main(): void {
  const { values, positionals } = parseArgs({ options: { runs: { type: 'string', default: '5' } }, allowPositionals: true });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`--runs must be a positive integer, got ${values.runs}`);
  const file = positionals[0] ?? defaultModel();
  const bytes = readFileSync(file);
  const times: { read: number; convert: number; serialise: number; total: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const graph = readOnnx(bytes);
    const t1 = performance.now();
    const model = convertGraph(graph, { nhwcInputs: [graph.inputs[0].name] });
    const t2 = performance.now();
    JSON.stringify(toGraphModelFiles(model).modelJson);
    const t3 = performance.now();
    times.push({ read: t1 - t0, convert: t2 - t1, serialise: t3 - t2, total: t3 - t0 });
  }
  const med = (k: keyof (typeof times)[number]) => [...times.map((t) => t[k])].sort((a, b) => a - b)[times.length >> 1];
  const first = times[0].total;
  console.log(JSON.stringify({
    model: path.relative(ROOT, file),
    bytes: bytes.byteLength,
    runs,
    first_run_ms: Math.round(first),
    median_ms: { read: Math.round(med('read')), convert: Math.round(med('convert')), serialise: Math.round(med('serialise')), total: Math.round(med('total')) },
    target_ms: TARGET_MS,
    within_target: first <= TARGET_MS,
  }, null, 2));
}

main();
