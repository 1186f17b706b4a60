// Runs tools/reference_preprocess.py (Debian's torch, torchvision and Pillow) and caches its output under .cache/.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const SCRIPT = join(ROOT, 'tools/reference_preprocess.py');

import { cacheKey, PYTHON } from '../helpers/cache';

export { IMAGES } from '../helpers/fixtures';

export interface PipelineSpec {
  size: [number, number];
  mean: number[];
  std: number[];
  honour_exif: boolean;
  files: string[];
}

export type PipelineEntry =
  | { file: string; ok: true; mode: string; width: number; height: number; tensor: string; policy: string | null }
  | { file: string; ok: false; error: string };

export interface PipelineReference {
  entries: PipelineEntry[];
  /** torchvision's normalised input, float32 [3, H, W] (NCHW). */
  tensor(entry: PipelineEntry & { ok: true }): Float32Array;
}

/** torchvision's Resize + ToTensor + Normalize for each file, computed once per spec and file contents. */
export function pipelineReference(spec: PipelineSpec): PipelineReference {
  const dir = run('pipeline', { spec }, () => spec, spec.files);
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { files: PipelineEntry[] };
  if (index.files.length !== spec.files.length || index.files.some((e, i) => e.file !== spec.files[i])) {
    throw new Error(`${join(dir, 'index.json')} does not list the ${spec.files.length} files asked for, in order`);
  }
  return {
    entries: index.files,
    tensor: (entry) => {
      const bytes = readFileSync(join(dir, entry.tensor));
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    },
  };
}

export interface ResizeCase {
  name: string;
  /** RGB bytes [h, w, 3]. */
  pixels: Uint8Array;
  shape: [number, number, 3];
  size: [number, number];
}

/** Pillow's Image.resize(BILINEAR) of each case, as RGB bytes [H, W, 3] by case name. */
export function pillowResize(cases: ResizeCase[]): Map<string, Uint8Array> {
  const key = cases.map((c) => [c.name, c.shape, c.size, createHash('sha256').update(c.pixels).digest('hex')]);
  const dir = run('resize', key, (out) => ({
    cases: cases.map((c) => {
      const input = join(out, `${c.name}.in.u8`);
      writeFileSync(input, c.pixels);
      return { name: c.name, input, shape: c.shape, size: c.size };
    }),
  }));
  return new Map(cases.map((c) => [c.name, new Uint8Array(readFileSync(join(dir, `${c.name}.out.u8`)))]));
}

/**
 * Runs the script once per key, input file contents, script and tool versions into
 * .cache/pipeline-reference/<hash>/; `writeSpec` may put input files into that folder and returns the spec.
 */
function run(command: string, key: unknown, writeSpec: (dir: string) => object, inputs: string[] = []): string {
  const dir = join(ROOT, '.cache/pipeline-reference', cacheKey({ text: [command, JSON.stringify(key)], files: [SCRIPT, ...inputs] }));
  if (existsSync(join(dir, 'done'))) return dir;
  mkdirSync(dir, { recursive: true });
  const specPath = join(dir, 'spec.json');
  writeFileSync(specPath, JSON.stringify(writeSpec(dir)));
  execFileSync(PYTHON, [SCRIPT, command, specPath, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(join(dir, 'done'), '');
  return dir;
}
