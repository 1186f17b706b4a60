// Keys for the tests' caches under .cache/: what a cached result depends on, so a change to any of it rebuilds it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

let versions: string | undefined;

/** The versions of the Python stack (and its BLAS) the references and exports run on, and of Node and TensorFlow.js. */
export function toolVersions(): string {
  versions ??= JSON.stringify({
    // The BLAS behind numpy and torch too: Debian switches it by alternatives, and results depend on it.
    python: execFileSync(PYTHON, ['-c', 'import os, sys, numpy, PIL, torch, torchvision, onnx; print(sys.version, numpy.__version__, PIL.__version__, torch.__version__, torchvision.__version__, onnx.__version__, os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"))'], { encoding: 'utf8' }).trim(),
    node: process.version,
    tfjs: (JSON.parse(readFileSync(require.resolve('@tensorflow/tfjs-node/package.json'), 'utf8')) as { version: string }).version,
  });
  return versions;
}

/** A short hex key over `parts` (strings as they are, files by their content) and the tool versions. */
export function cacheKey(parts: { text?: string[]; files?: string[] }): string {
  const hash = createHash('sha256').update(toolVersions());
  for (const text of parts.text ?? []) hash.update(`\0${text}`);
  for (const file of parts.files ?? []) hash.update(`\0${file}\0`).update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}
