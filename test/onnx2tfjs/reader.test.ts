// reader.ts: every tensor encoding ONNX files use (raw_data, typed fields, int64 as Long), refusals, graph metadata.
import { onnx } from 'onnx-proto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildModel } from './harness';
import { readOnnx, tensorFromProto } from '../../tools/onnx2tfjs/reader';
import { InvalidModelError, UnsupportedError } from '../../tools/onnx2tfjs/types';

const T = onnx.TensorProto.DataType;
/** Round-trips through protobuf bytes, so int64 fields come back as Long objects as they do from a file. */
const decoded = (t: onnx.ITensorProto) => onnx.TensorProto.decode(onnx.TensorProto.encode(t).finish());

test('float32 from float_data and from raw_data (also at an odd byte offset in the file)', () => {
  const values = [1.5, -2.25, 3e-8, 0];
  const a = tensorFromProto(decoded({ name: 'a', dims: [2, 2], dataType: T.FLOAT, floatData: values }));
  assert.equal(a, { dtype: 'float32', shape: [2, 2], data: Float32Array.from(values) });
  const raw = new Uint8Array(Float32Array.from(values).buffer);
  const b = tensorFromProto(decoded({ name: 'b', dims: [4], dataType: T.FLOAT, rawData: raw }));
  assert.equal(Array.from(b.data), Array.from(Float32Array.from(values)));
  const padded = new Uint8Array(raw.length + 1);
  padded.set(raw, 1);
  const c = tensorFromProto({ name: 'c', dims: [4], dataType: T.FLOAT, rawData: padded.subarray(1) });
  assert.equal(Array.from(c.data), Array.from(Float32Array.from(values)));
});

test('int64 from int64_data (Long after decoding) and raw_data, including INT64_MAX and negatives', () => {
  const a = tensorFromProto(decoded({ name: 'a', dims: [3], dataType: T.INT64, int64Data: [0, -7, 123456789] }));
  assert.equal(a, { dtype: 'int64', shape: [3], data: Float64Array.from([0, -7, 123456789]) });
  const raw = new Uint8Array(BigInt64Array.from([9223372036854775807n, -1n]).buffer);
  const b = tensorFromProto(decoded({ name: 'b', dims: [2], dataType: T.INT64, rawData: raw }));
  assert.is(b.data[0], 9223372036854775807);
  assert.is(b.data[1], -1);
});

test('double, float16, int8, uint8, int32 and bool in their typed fields and raw', () => {
  assert.equal(Array.from(tensorFromProto(decoded({ dims: [2], dataType: T.DOUBLE, doubleData: [0.1, -3] })).data), [Math.fround(0.1), -3]);
  // 0x3c00 = 1.0, 0xc000 = -2.0, 0x3555 ~ 0.333 in IEEE half precision.
  const half = tensorFromProto(decoded({ dims: [3], dataType: T.FLOAT16, int32Data: [0x3c00, 0xc000, 0x3555] }));
  assert.equal(Array.from(half.data), [1, -2, Math.fround(0.333251953125)]);
  const halfRaw = tensorFromProto(decoded({ dims: [1], dataType: T.FLOAT16, rawData: new Uint8Array(Uint16Array.from([0xc000]).buffer) }));
  assert.equal(Array.from(halfRaw.data), [-2]);
  assert.equal(tensorFromProto(decoded({ dims: [2], dataType: T.INT8, rawData: Uint8Array.from([0xff, 5]) })).data, Float64Array.from([-1, 5]));
  assert.equal(tensorFromProto(decoded({ dims: [2], dataType: T.UINT8, int32Data: [200, 3] })).data, Float64Array.from([200, 3]));
  assert.equal(tensorFromProto(decoded({ dims: [1], dataType: T.INT32, int32Data: [-5] })), { dtype: 'int32', shape: [1], data: Float64Array.from([-5]) });
  assert.equal(tensorFromProto(decoded({ dims: [2], dataType: T.BOOL, int32Data: [1, 0] })), { dtype: 'bool', shape: [2], data: Float64Array.from([1, 0]) });
  assert.equal(tensorFromProto(decoded({ dims: [], dataType: T.FLOAT, floatData: [4] })).shape, []);
});

test('external data, strings, and a raw_data of the wrong size are refused with the tensor name', () => {
  const ext = decoded({ name: 'w', dims: [2], dataType: T.FLOAT, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: 'w.bin' }] });
  assert.throws(() => tensorFromProto(ext), (e: Error) => e instanceof UnsupportedError && /tensor "w" keeps its data in an external file/.test(e.message));
  assert.throws(() => tensorFromProto(decoded({ name: 's', dims: [1], dataType: T.STRING })), (e: Error) => e instanceof UnsupportedError && /"s": ONNX element type STRING/.test(e.message));
  assert.throws(() => tensorFromProto(decoded({ name: 'r', dims: [3], dataType: T.FLOAT, rawData: new Uint8Array(8) })), (e: Error) => e instanceof InvalidModelError && /"r": raw_data holds 8 bytes, expected 12/.test(e.message));
  assert.throws(() => tensorFromProto(decoded({ name: 'f', dims: [3], dataType: T.FLOAT, floatData: [1] })), /"f": 1 values for shape \[3\]/);
});

test('readOnnx: opset, inputs without initializers, symbolic and unset dims', () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', shape: ['batch', 3, 8, 8] }],
    initializers: { w: { dtype: 'float32', shape: [1], data: [2] } },
    nodes: [{ op: 'Mul', inputs: ['x', 'w'], outputs: ['y'] }],
    outputs: ['y'],
    opset: 17,
  });
  const g = readOnnx(bytes);
  assert.is(g.opset, 17);
  assert.equal(g.inputs, [{ name: 'x', dtype: 'float32', shape: ['batch', 3, 8, 8] }]);
  assert.equal([...g.initializers.keys()], ['w']);
  assert.equal(g.nodes.map((n) => [n.opType, n.inputs, n.outputs]), [['Mul', ['x', 'w'], ['y']]]);
  const unset = onnx.ModelProto.encode({
    irVersion: 8, opsetImport: [{ version: 13 }],
    graph: { node: [], input: [{ name: 'a', type: { tensorType: { elemType: T.FLOAT, shape: { dim: [{}, { dimValue: 4 }] } } } }], output: [] },
  }).finish();
  const shape = readOnnx(unset).inputs[0].shape;
  assert.type(shape[0], 'string');
  assert.is(shape[1], 4);
});

test('bytes that are not an ONNX model are an InvalidModelError', () => {
  assert.throws(() => readOnnx(Buffer.from('this is a text file, not protobuf')), (e: Error) => e instanceof InvalidModelError && /not an ONNX model/.test(e.message));
  assert.throws(() => readOnnx(new Uint8Array(0)), (e: Error) => e instanceof InvalidModelError && /no graph/.test(e.message));
});

test.run();
