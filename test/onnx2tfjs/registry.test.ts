// The op registry: explicit merge refusing duplicates, refusals naming op/node/opset, and the generated coverage doc.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { A, buildModel, randConst } from './harness';
import { convertOnnx } from '../../tools/onnx2tfjs/converter';
import { COVERAGE_DOC, README, README_MARKERS, renderCoverage, renderOpTable, syncedReadme } from '../../tools/onnx2tfjs/coverage';
import { families, mergeFamilies, registry } from '../../tools/onnx2tfjs/ops';
import { UnsupportedError } from '../../tools/onnx2tfjs/types';

const isUnsupported = (pattern: RegExp) => (e: Error) => e instanceof UnsupportedError && pattern.test(e.message);

test('the registry is the union of the families, and a type claimed twice is refused naming both files', () => {
  const total = Object.values(families).reduce((a, f) => a + Object.keys(f).length, 0);
  assert.is(Object.keys(registry).length, total);
  assert.throws(() => mergeFamilies({ conv: families.conv, other: { Conv: families.conv.Conv } }), /op "Conv" is claimed by both ops\/conv.ts and ops\/other.ts/);
});

test('an unsupported op fails with its type, node name and opset', () => {
  const bytes = buildModel({ inputs: [{ name: 'x', shape: [2, 3] }], nodes: [{ op: 'Hardmax', name: 'hm', inputs: ['x'], outputs: ['y'] }], outputs: ['y'], opset: 15 });
  assert.throws(() => convertOnnx(bytes), isUnsupported(/unsupported ONNX op "Hardmax" \(node "hm", opset 15\)/));
});

test('an unknown attribute fails with the attribute, op type, node name and opset', () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', shape: [1, 3, 4, 4] }],
    nodes: [{ op: 'MaxPool', name: 'mp', inputs: ['x'], outputs: ['y'], attrs: { kernel_shape: A.ints([2, 2]), fancy: A.i(1) } }],
    outputs: ['y'],
  });
  assert.throws(() => convertOnnx(bytes), isUnsupported(/MaxPool node "mp" \(opset 13\): attribute "fancy" is not supported/));
});

test('an unsupported attribute value and a foreign domain are refused', () => {
  const pad = buildModel({
    inputs: [{ name: 'x', shape: [1, 3, 4, 4] }],
    initializers: { p: { dtype: 'int64', shape: [8], data: [0, 0, 1, 1, 0, 0, 1, 1] } },
    nodes: [{ op: 'Pad', name: 'pd', inputs: ['x', 'p'], outputs: ['y'], attrs: { mode: A.s('edge') } }],
    outputs: ['y'],
  });
  assert.throws(() => convertOnnx(pad), isUnsupported(/Pad node "pd" \(opset 13\): mode "edge" is not supported/));
  const conv = buildModel({
    inputs: [{ name: 'x', shape: [1, 3, 4, 4] }],
    initializers: { w: randConst([2, 3, 1, 1], 1) },
    nodes: [{ op: 'Conv', name: 'c', inputs: ['x', 'w'], outputs: ['y'], attrs: { auto_pad: A.s('SOMETIMES') } }],
    outputs: ['y'],
  });
  assert.throws(() => convertOnnx(conv), isUnsupported(/Conv node "c" \(opset 13\): auto_pad "SOMETIMES"/));
});

test('nhwcInputs names a missing or non-4-D input: RangeError with the inputs listed', () => {
  const bytes = buildModel({ inputs: [{ name: 'x', shape: [2, 3] }], nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['y'] }], outputs: ['y'] });
  assert.throws(() => convertOnnx(bytes, { nhwcInputs: ['img'] }), (e: Error) => e instanceof RangeError && /no input "img" \(inputs: x\)/.test(e.message));
  assert.throws(() => convertOnnx(bytes, { nhwcInputs: ['x'] }), /input "x" has rank 2; only 4-D NCHW inputs/);
});

test('docs/op-coverage.md is the registry as generated (run `npx tsx tools/onnx2tfjs/coverage.ts` after changing ops)', () => {
  assert.fixture(readFileSync(COVERAGE_DOC, 'utf8'), renderCoverage());
  for (const op of Object.keys(registry)) assert.ok(renderCoverage().includes(`| ${op} |`), op);
});

test('README.md: its op table between the op-coverage markers is the registry as generated', () => {
  const [start, end] = README_MARKERS;
  assert.is(syncedReadme('no markers here'), null);
  assert.is(syncedReadme(`a\n${start}\nstale\n${end}\nb`), `a\n${start}\n${renderOpTable()}\n${end}\nb`);
  const readme = readFileSync(README, 'utf8');
  assert.ok(readme.includes(start) && readme.includes(end), 'README.md lost its op-coverage markers');
  assert.fixture(readme, syncedReadme(readme) as string);
});

test.run();
