// make convert's last step as a library: ONNX + export.json + reference -> a verified model folder, replaced atomically.
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Tf } from '../../src/runtime';
import { convertGraph } from './converter';
import { Model } from '../../src/engine/model';
import { checkParity, ParityResult, readReference, sessionParityModel } from './parity';
import { readOnnx } from './reader';
import { CONVERTER_NAME, CONVERTER_VERSION, writeGraphModel } from './writer';

/** export.json as tools/export_onnx.py writes it (docs/architecture.md). */
export interface ExportInfo {
  arch: string;
  num_classes: number;
  image_size: [number, number];
  mean: [number, number, number];
  std: [number, number, number];
  labels: string[] | null;
  checkpoint: { path: string; sha256: string };
  demo: boolean;
  opset: number;
}

/** A user-caused failure: one line for the terminal, nothing half-written. */
export class ConvertError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'ConvertError';
  }
}

export function readExportInfo(file: string): ExportInfo {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ConvertError(`cannot read export info ${file}: ${(e as Error).message}`);
  }
  const fail = (what: string): never => {
    throw new ConvertError(`export info ${file} is invalid: ${what} (re-run tools/export_onnx.py)`);
  };
  const nums = (v: unknown, n: number) => Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (typeof j.arch !== 'string') fail('arch must be a string');
  if (!Number.isInteger(j.num_classes) || (j.num_classes as number) < 1) fail('num_classes must be a positive integer');
  if (!nums(j.image_size, 2) || !(j.image_size as number[]).every((d) => Number.isInteger(d) && d > 0)) fail('image_size must be [height, width]');
  if (!nums(j.mean, 3) || !nums(j.std, 3)) fail('mean and std must be 3 numbers each');
  if (j.labels !== null && !(Array.isArray(j.labels) && j.labels.length === j.num_classes && j.labels.every((l) => typeof l === 'string'))) {
    fail('labels must be null or num_classes strings');
  }
  const ck = j.checkpoint as Record<string, unknown> | undefined;
  if (!ck || typeof ck.path !== 'string' || typeof ck.sha256 !== 'string') fail('checkpoint must be {path, sha256}');
  if (typeof j.demo !== 'boolean') fail('demo must be true or false');
  return j as unknown as ExportInfo;
}

export interface PackageOptions {
  onnxPath: string;
  exportInfoPath: string;
  referencePath: string;
  outDir: string;
  tf: Tf;
}

export interface PackageResult {
  parity: ParityResult;
  /** The same gate on the server's path (one TensorFlow session). */
  session: ParityResult;
  files: { path: string; bytes: number; sha256: string }[];
  convertMs: number;
}

function stagingDir(outDir: string): string {
  const parent = path.dirname(path.resolve(outDir));
  const fail = (why: string): never => {
    throw new ConvertError(`cannot write output folder ${outDir}: ${why}`);
  };
  if (!existsSync(parent)) fail(`its parent folder ${parent} does not exist`);
  if (!statSync(parent).isDirectory()) fail(`${parent} is not a folder`);
  try {
    const dir = mkdtempSync(path.join(parent, `.${path.basename(outDir)}.tmp-`));
    // mkdtemp makes the folder private; the model folder is meant to be readable like any other output.
    chmodSync(dir, 0o755);
    return dir;
  } catch (e) {
    return fail(`${(e as NodeJS.ErrnoException).code ?? (e as Error).message} creating a folder in ${parent}`);
  }
}

/** Swaps `staging` into `outDir`; an existing `outDir` is only removed once the new one is in place. */
function replaceDir(staging: string, outDir: string): void {
  const target = path.resolve(outDir);
  if (existsSync(target) && !statSync(target).isDirectory()) throw new ConvertError(`output ${outDir} exists and is not a folder`);
  const old = existsSync(target) ? `${staging}.old` : null;
  try {
    if (old) renameSync(target, old);
    renameSync(staging, target);
  } catch (e) {
    if (old && !existsSync(target)) renameSync(old, target);
    throw new ConvertError(`cannot replace ${outDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (old) rmSync(old, { recursive: true, force: true });
}

/**
 * Converts the ONNX export (input NCHW -> NHWC key `input`, output key `logits`), writes model.json, shards and
 * metadata.json into a temporary folder beside `outDir`, runs the parity gate on it and only then replaces `outDir`.
 * On any failure `outDir` is left as it was and the temporary folder is removed.
 */
export async function packageModel(opts: PackageOptions): Promise<PackageResult> {
  const info = readExportInfo(opts.exportInfoPath);
  const ref = (() => {
    try {
      return readReference(opts.referencePath);
    } catch (e) {
      throw new ConvertError(`cannot read reference ${opts.referencePath}: ${(e as Error).message}`);
    }
  })();
  let bytes: Buffer;
  try {
    bytes = readFileSync(opts.onnxPath);
  } catch (e) {
    throw new ConvertError(`cannot read ONNX model ${opts.onnxPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const t0 = Date.now();
  const graph = readOnnx(bytes);
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
    throw new ConvertError(`${opts.onnxPath} has ${graph.inputs.length} inputs and ${graph.outputs.length} outputs; a classifier has one of each`);
  }
  const [h, w] = info.image_size;
  const inShape = graph.inputs[0].shape;
  if (inShape.length !== 4 || inShape[1] !== 3 || (typeof inShape[2] === 'number' && inShape[2] !== h) || (typeof inShape[3] === 'number' && inShape[3] !== w)) {
    throw new ConvertError(`${opts.onnxPath} takes [${inShape.join(', ')}]; export info says [N, 3, ${h}, ${w}]`);
  }
  const model = convertGraph(graph, {
    nhwcInputs: [graph.inputs[0].name],
    rename: { [graph.inputs[0].name]: 'input', [graph.outputs[0].name]: 'logits' },
  });
  const outShape = model.outputs[0].shape;
  if (outShape.length !== 2 || outShape[1] !== info.num_classes) {
    throw new ConvertError(`${opts.onnxPath} answers [${outShape.join(', ')}]; export info says ${info.num_classes} classes`);
  }
  const convertMs = Date.now() - t0;
  const staging = stagingDir(opts.outDir);
  try {
    const files = writeGraphModel(staging, model);
    const metadata = {
      schema: 1,
      converter: `${CONVERTER_NAME} ${CONVERTER_VERSION}`,
      arch: info.arch,
      input: { name: 'input', dtype: 'float32', layout: 'NHWC', shape: [-1, h, w, 3] },
      output: { name: 'logits', shape: [-1, info.num_classes] },
      image_size: [h, w],
      mean: info.mean,
      std: info.std,
      num_classes: info.num_classes,
      labels: info.labels,
      source: { checkpoint: info.checkpoint.path, sha256: info.checkpoint.sha256, demo: info.demo },
      files,
    };
    const graphModel = await opts.tf.loadGraphModel(`file://${path.join(staging, 'model.json')}`);
    let parity: ParityResult;
    try {
      parity = checkParity(opts.tf, graphModel, ref);
    } finally {
      graphModel.dispose();
    }
    if (!parity.ok) {
      throw new ConvertError(`parity gate failed: max |logit_tfjs - logit_torch| = ${parity.maxAbsDiff.toExponential(3)} > tolerance ${parity.tolerance.toExponential(3)}; ${opts.outDir} was left unchanged`);
    }
    // The same gate on the path the server runs: the folder loaded as one TensorFlow session.
    writeFileSync(path.join(staging, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
    let session: ParityResult;
    try {
      const served = await Model.load(opts.tf, staging);
      try {
        session = checkParity(opts.tf, sessionParityModel(served), ref);
      } finally {
        served.dispose();
      }
    } catch (e) {
      throw new ConvertError(`the server's TensorFlow session cannot run the converted graph (${(e as Error).message}); ${opts.outDir} was left unchanged`);
    }
    if (!session.ok) {
      throw new ConvertError(`parity gate failed on the server's session: max |logit_session - logit_torch| = ${session.maxAbsDiff.toExponential(3)} > tolerance ${session.tolerance.toExponential(3)}; ${opts.outDir} was left unchanged`);
    }
    writeFileSync(path.join(staging, 'metadata.json'), `${JSON.stringify({ ...metadata, parity: { max_abs_diff: parity.maxAbsDiff, session_max_abs_diff: session.maxAbsDiff, tolerance: parity.tolerance } }, null, 2)}\n`);
    replaceDir(staging, opts.outDir);
    return { parity, session, files, convertMs };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
