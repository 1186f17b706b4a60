// Writes a converted model as a TF.js graph model folder: model.json plus weight shards of at most 4 MiB.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConvertedModel } from './converter';

export const SHARD_BYTES = 4 * 1024 * 1024;
export const CONVERTER_NAME = 'onnx2tfjs';
export const CONVERTER_VERSION = '0.1.0';

export interface WrittenFile {
  path: string;
  bytes: number;
  sha256: string;
}

/** model.json content and the shards it names (`group1-shard{i}of{n}.bin`). */
export function toGraphModelFiles(m: ConvertedModel): { modelJson: object; shards: { path: string; data: Uint8Array }[] } {
  const n = Math.max(1, Math.ceil(m.weightData.byteLength / SHARD_BYTES));
  const shards = Array.from({ length: n }, (_, i) => ({
    path: `group1-shard${i + 1}of${n}.bin`,
    data: m.weightData.subarray(i * SHARD_BYTES, Math.min((i + 1) * SHARD_BYTES, m.weightData.byteLength)),
  }));
  const modelJson = {
    format: 'graph-model',
    generatedBy: `${CONVERTER_NAME} ${CONVERTER_VERSION}`,
    convertedBy: `${CONVERTER_NAME} ${CONVERTER_VERSION}`,
    modelTopology: m.modelTopology,
    weightsManifest: [{ paths: shards.map((s) => s.path), weights: m.weightSpecs }],
    signature: m.signature,
  };
  return { modelJson, shards };
}

/** Writes model.json and shards into `dir` (created if missing); returns each file with size and sha256. */
export function writeGraphModel(dir: string, m: ConvertedModel): WrittenFile[] {
  mkdirSync(dir, { recursive: true });
  const { modelJson, shards } = toGraphModelFiles(m);
  const files = [{ path: 'model.json', data: Buffer.from(JSON.stringify(modelJson)) }, ...shards];
  return files.map((f) => {
    writeFileSync(path.join(dir, f.path), f.data);
    return { path: f.path, bytes: f.data.byteLength, sha256: createHash('sha256').update(f.data).digest('hex') };
  });
}
