// ONNX's official backend cases (libonnx-testdata) through onnx2tfjs on the native backend, for every claimed op.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { NamedTensorMap, Tensor } from '@tensorflow/tfjs-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { convertOnnx, registry, toGraphModelFiles } from '../../tools/onnx2tfjs';
import { Adaptation, adaptModel, CaseNode, DataSet, elemTypeName, listCases, OnnxCase, readDataSets, SUITES, TestTensor } from '../helpers/onnx-testdata';
import { tf } from '../helpers/runtime';

const EXCLUDED_FILE = path.join(__dirname, 'conformance-excluded.json');
/** Reason prefix of in-scope cases the converter gets wrong today: they still run, and must keep failing. */
const KNOWN_BUG = 'KNOWN CONVERTER BUG: ';
/** Reason prefix of cases judged out of scope by hand, where no rule below decides it. */
const OUT_OF_SCOPE = 'OUT OF SCOPE: ';
/** Reason prefix of cases whose reference values are less precise than float32: they run with ONNX_TOL. */
const LOOSE = 'ONNX TOLERANCE: ';
/** float32 tolerance: |actual - expected| <= atol + rtol * |expected|. Integer and bool outputs must be exact. */
const FLOAT_TOL = { atol: 1e-5, rtol: 1e-4 };
/** The default tolerance of ONNX's own backend test runner (onnx/backend/test/runner). */
const ONNX_TOL = { atol: 1e-7, rtol: 1e-3 };
/** Element types an exported classifier carries (shape math in int64, which tfjs holds as int32). */
const MODEL_TYPES = new Set(['FLOAT', 'INT32', 'INT64', 'BOOL']);
const TF_DTYPE: Record<string, 'float32' | 'int32' | 'bool'> = { FLOAT: 'float32', INT32: 'int32', INT64: 'int32', BOOL: 'bool' };

// Weights and parameters that exporters emit as initializers or constants and the converter needs at conversion
// time: the node cases feed them as graph inputs, so the harness bakes each data set's value into the model
// (op type -> input positions).
const PARAMETER_INPUTS: Record<string, number[]> = {
  BatchNormalization: [1, 2, 3, 4],
  Clip: [1, 2],
  ConstantOfShape: [0],
  Conv: [1, 2],
  Dropout: [1, 2],
  Gather: [1],
  LayerNormalization: [1, 2],
  Pad: [1, 2],
  ReduceSum: [1],
  Reshape: [1],
  Slice: [1, 2, 3, 4],
  Split: [1],
  Squeeze: [1],
  Unsqueeze: [1],
};
// Auxiliary outputs the converter does not produce (statistics, argmax, dropout mask): the harness removes
// them and compares the main output, which the same case fully determines.
const AUX_OUTPUTS: Record<string, number[]> = { Dropout: [1], LayerNormalization: [1, 2], MaxPool: [1] };

/** conformance-excluded.json: case name -> reason, and claimed op -> why no official case can pass for it. */
interface Exclusions {
  cases: Record<string, string>;
  ops: Record<string, string>;
}

/** 1, 2 or 3 for Conv/MaxPool/AveragePool (from kernel_shape, else the data input's rank); null when unknown. */
function spatialRank(c: OnnxCase, n: CaseNode): number | null {
  const k = n.attrs.get('kernel_shape');
  if (Array.isArray(k)) return k.length;
  const shape = c.inputs.find((i) => i.name === n.inputs[0])?.shape;
  return shape ? shape.length - 2 : null;
}

/**
 * Why a case that uses only claimed ops is still out of scope, by rule; undefined when it is in scope. (Dropout in
 * training mode depends on the data set's ratio, so it is judged by hand.)
 */
function ruleReason(c: OnnxCase): string | undefined {
  const types = [...c.inputs, ...c.outputs].map((v) => v.elemType).concat(c.constantTypes);
  const foreign = types.find((t) => !MODEL_TYPES.has(t));
  if (foreign) return `${foreign} values are outside the model path (float32, int32/int64, bool)`;
  for (const n of c.nodes) {
    const unclaimed = [...n.attrs.keys()].find((a) => !registry[n.opType].attrs.includes(a));
    if (unclaimed) return `attribute ${n.opType}.${unclaimed} is not claimed by the converter`;
    const to = n.attrs.get('to');
    if (n.opType === 'Cast' && typeof to === 'number' && !MODEL_TYPES.has(elemTypeName(to))) {
      return `Cast to ${elemTypeName(to)} is outside the model path (float32, int32/int64, bool)`;
    }
    if (['Conv', 'MaxPool', 'AveragePool'].includes(n.opType)) {
      const r = spatialRank(c, n);
      if (r !== null && r !== 2) return `${r}-D ${n.opType} is outside scope: torchvision classifiers are 2-D`;
    }
    if (n.opType === 'BatchNormalization' && (n.attrs.get('training_mode') === 1 || n.outputs.slice(1).some(Boolean))) {
      return 'training-mode BatchNormalization (batch statistics) is outside the eval-mode model path';
    }
  }
  return undefined;
}

/** Hand-written reasons carry a prefix; every other reason in the file must be what a rule says. */
function isManual(reason: string | undefined): reason is string {
  return reason !== undefined && [KNOWN_BUG, OUT_OF_SCOPE, LOOSE].some((p) => reason.startsWith(p));
}

function readExclusions(): Exclusions {
  return JSON.parse(readFileSync(EXCLUDED_FILE, 'utf8')) as Exclusions;
}

/** The cases to consider: those whose every node is an op the registry claims. */
function claimedCases(all: OnnxCase[]): OnnxCase[] {
  return all.filter((c) => c.nodes.length > 0 && c.nodes.every((n) => registry[n.opType] !== undefined));
}

/** Throws when `actual` and `expected` differ beyond atol + rtol * |expected|, naming the first index that does. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol: number }, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const same = Number.isNaN(e) ? Number.isNaN(a) : a === e || Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e);
    if (!same) throw new Error(`${what}: index ${i} is ${a}, expected ${e} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

function adaptation(c: OnnxCase, ds: DataSet): Adaptation {
  const fold = new Map<string, TestTensor>();
  c.inputs.forEach((inp, i) => {
    const uses = c.nodes.flatMap((n) => n.inputs.map((name, k) => ({ n, k, name }))).filter((u) => u.name === inp.name);
    if (uses.length > 0 && uses.every((u) => PARAMETER_INPUTS[u.n.opType]?.includes(u.k))) fold.set(inp.name, ds.inputs[i]);
  });
  const drop = new Set(c.nodes.flatMap((n) => (AUX_OUTPUTS[n.opType] ?? []).map((k) => n.outputs[k]).filter(Boolean)));
  return { fold, drop };
}

function feedTensor(t: TestTensor, what: string): Tensor {
  const dtype = TF_DTYPE[t.elemType];
  if (dtype === 'int32' && t.values.some((v) => v < -(2 ** 31) || v >= 2 ** 31)) throw new RangeError(`${what} holds values outside int32`);
  const values = dtype === 'float32' ? t.values : dtype === 'int32' ? Int32Array.from(t.values) : Uint8Array.from(t.values);
  return tf.tensor(values, t.dims, dtype);
}

/** Converts and runs one data set, comparing every output the adaptation keeps; throws on the first mismatch. */
function runDataSet(c: OnnxCase, ds: DataSet, a: Adaptation, floatTol: typeof FLOAT_TOL): void {
  if (ds.inputs.length !== c.inputs.length) throw new Error(`${ds.name} has ${ds.inputs.length} inputs for ${c.inputs.length} graph inputs`);
  const converted = convertOnnx(adaptModel(c, a), {});
  const { modelJson, shards } = toGraphModelFiles(converted);
  const weights = Buffer.concat(shards.map((s) => s.data));
  // Through JSON text, as model.json reaches tf.loadGraphModel (NaN/Infinity attributes would not survive).
  const model = tf.loadGraphModelSync([JSON.parse(JSON.stringify(modelJson)), weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength)]);
  try {
    const kept = c.outputs.map((o, i) => ({ o, expected: ds.outputs[i] })).filter(({ o }) => !a.drop.has(o.name));
    const got = tf.tidy(() => {
      const feed: NamedTensorMap = {};
      c.inputs.forEach((inp, i) => {
        if (!a.fold.has(inp.name)) feed[inp.name] = feedTensor(ds.inputs[i], `input "${inp.name}"`);
      });
      const out = model.execute(feed, kept.map(({ o }) => o.name));
      return (Array.isArray(out) ? out : [out]).map((t) => ({ dtype: t.dtype, shape: t.shape, values: t.dataSync() }));
    });
    kept.forEach(({ o, expected }, i) => {
      const what = `${ds.name} output "${o.name}"`;
      if (!expected) throw new Error(`${what}: the data set has no output_${i}.pb`);
      const want = TF_DTYPE[expected.elemType];
      if (got[i].dtype !== want) throw new Error(`${what}: dtype ${got[i].dtype}, expected ${want} (ONNX ${expected.elemType})`);
      if (got[i].shape.join() !== expected.dims.join()) throw new Error(`${what}: shape [${got[i].shape}], expected [${expected.dims}]`);
      const tol = want === 'float32' ? floatTol : { atol: 0, rtol: 0 };
      assertClose(got[i].values, expected.values, tol, what);
    });
  } finally {
    model.dispose();
  }
}

interface Outcome {
  c: OnnxCase;
  error?: string;
  adapted: boolean;
}

function runCase(c: OnnxCase, floatTol: typeof FLOAT_TOL): Outcome {
  let adapted = false;
  try {
    const dataSets = readDataSets(c);
    if (dataSets.length === 0) throw new Error('the case has no test_data_set_* folder');
    for (const ds of dataSets) {
      const a = adaptation(c, ds);
      adapted ||= a.fold.size > 0 || a.drop.size > 0;
      runDataSet(c, ds, a, floatTol);
    }
    return { c, adapted };
  } catch (e) {
    // TF's run-time errors put the useful part on later lines ("Invalid TF_Status: 3\nMessage: ...").
    return { c, adapted, error: `${(e as Error).name}: ${(e as Error).message.replace(/\s*\n\s*/g, ' | ').slice(0, 400)}` };
  }
}

const all = listCases();
const claimed = claimedCases(all);
let memo: Outcome[] | undefined;
/**
 * Runs every claimed case no rule excludes, once per process: hand-excluded ones too, so an entry whose case
 * passes now is caught. Rule-excluded cases are skipped even while the file lags (the first test says so).
 */
function outcomes(): Outcome[] {
  const { cases } = readExclusions();
  memo ??= claimed.filter((c) => !ruleReason(c)).map((c) => runCase(c, cases[c.name]?.startsWith(LOOSE) ? ONNX_TOL : FLOAT_TOL));
  return memo;
}

/** Whether an outcome counts as a pass: no error, and not a case excluded by hand. */
function passes(r: Outcome, cases: Record<string, string>): boolean {
  return !r.error && !cases[r.c.name]?.startsWith(KNOWN_BUG) && !cases[r.c.name]?.startsWith(OUT_OF_SCOPE);
}

test('the exclusion file lists every rule-excluded case with its rule, and only cases that use claimed ops', () => {
  let excluded = readExclusions();
  if (process.env.CONFORMANCE_UPDATE === '1') {
    // Regenerates the rule entries; hand-written entries stay while their case uses only claimed ops.
    const cases: Record<string, string> = {};
    for (const c of claimed) {
      const reason = ruleReason(c) ?? (isManual(excluded.cases[c.name]) ? excluded.cases[c.name] : undefined);
      if (reason) cases[c.name] = reason;
    }
    excluded = { cases, ops: excluded.ops };
    writeFileSync(EXCLUDED_FILE, `${JSON.stringify(excluded, null, 2)}\n`);
  }
  const byName = new Map(claimed.map((c) => [c.name, c]));
  const problems: string[] = [];
  for (const [name, reason] of Object.entries(excluded.cases)) {
    const c = byName.get(name);
    if (!c) problems.push(`${name}: not a case that uses only claimed ops (stale entry)`);
    else if (!ruleReason(c) && !isManual(reason)) problems.push(`${name}: no rule excludes it any more (stale entry)`);
  }
  for (const c of claimed) {
    const reason = ruleReason(c);
    if (reason && excluded.cases[c.name] !== reason) problems.push(`${c.name}: expected "${reason}", the file has ${JSON.stringify(excluded.cases[c.name] ?? null)}`);
  }
  for (const op of Object.keys(excluded.ops)) if (!registry[op]) problems.push(`ops.${op}: not claimed by the registry (stale entry)`);
  assert.equal(problems, [], `${path.relative(process.cwd(), EXCLUDED_FILE)} is out of date (CONFORMANCE_UPDATE=1 rewrites its rule entries)`);
});

test('every official case in scope converts and matches its expected outputs on the native backend', () => {
  const before = tf.memory().numTensors;
  const results = outcomes();
  assert.is(tf.memory().numTensors, before, 'no tensor left behind');
  const { cases } = readExclusions();
  const bugs = results.filter((r) => cases[r.c.name]?.startsWith(KNOWN_BUG));
  const byHand = results.filter((r) => cases[r.c.name]?.startsWith(KNOWN_BUG) || cases[r.c.name]?.startsWith(OUT_OF_SCOPE));
  const failed = results.filter((r) => r.error && !byHand.includes(r));
  const passed = results.filter((r) => passes(r, cases));
  const loose = passed.filter((r) => cases[r.c.name]?.startsWith(LOOSE));
  const byReason = new Map<string, number>();
  for (const c of claimed) {
    const reason = cases[c.name];
    if (reason && !reason.startsWith(KNOWN_BUG) && !reason.startsWith(LOOSE)) byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }
  const scopeExcluded = [...byReason.values()].reduce((a, b) => a + b, 0);
  console.log(
    `conformance: ${all.length} cases in ${SUITES.join(' + ')}, ${claimed.length} use only claimed ops: ` +
      `${passed.length} passed, ${failed.length} failed, ${scopeExcluded} excluded, ${bugs.length} known converter bugs ` +
      `(${passed.filter((r) => r.adapted).length} passing cases ran with parameter inputs folded or auxiliary outputs dropped, ` +
      `${loose.length} with ONNX's own tolerance)`,
  );
  for (const [reason, n] of [...byReason].sort((x, y) => y[1] - x[1])) console.log(`  excluded ${String(n).padStart(3)}: ${reason}`);
  for (const r of loose) console.log(`  passed with rtol ${ONNX_TOL.rtol}: ${r.c.name}: ${cases[r.c.name].slice(LOOSE.length)}`);
  for (const r of bugs) console.log(`  known bug: ${r.c.name}: ${cases[r.c.name].slice(KNOWN_BUG.length)}\n    now: ${r.error ?? 'passes'}`);
  // 408 passed when this bar was set: fewer means cases went missing (no test data) or stopped passing unnoticed.
  assert.ok(passed.length >= 400, `only ${passed.length} official cases passed, out of ${claimed.length} in scope`);
  assert.equal(
    [
      ...failed.map((r) => `${r.c.name}: ${r.error}`),
      ...byHand.filter((r) => !r.error).map((r) => `${r.c.name}: passes now; remove its "${cases[r.c.name].split(':')[0]}" entry`),
    ],
    [],
    'official cases that fail',
  );
});

test('every claimed op has at least one passing official case, or an entry saying why none can pass', () => {
  const { cases, ops } = readExclusions();
  const passing = new Map<string, number>(Object.keys(registry).map((op) => [op, 0]));
  for (const r of outcomes()) {
    if (!passes(r, cases)) continue;
    for (const op of new Set(r.c.nodes.map((n) => n.opType))) passing.set(op, (passing.get(op) ?? 0) + 1);
  }
  console.log(`  passing cases per op: ${[...passing].map(([op, n]) => `${op} ${n}`).join(', ')}`);
  for (const [op, reason] of Object.entries(ops)) console.log(`  no official case for ${op}: ${reason}`);
  const missing = [...passing].filter(([op, n]) => n === 0 && !ops[op]).map(([op]) => op);
  const stale = [...passing].filter(([op, n]) => n > 0 && ops[op]).map(([op, n]) => `${op} passes ${n} cases now; remove ops.${op}`);
  assert.equal([...missing, ...stale], [], 'claimed ops without a passing official case');
});

test.run();
