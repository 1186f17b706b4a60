// Library entry of the ONNX -> TF.js graph-model converter (the CLI is cli.ts).
export { convertGraph, convertOnnx } from './converter';
export type { ConvertedModel, ConvertOptions, TensorSpec, WeightSpec } from './converter';
export { readOnnx, tensorFromProto } from './reader';
export type { OnnxGraph, OnnxNode } from './reader';
export { registry, families } from './ops';
export type { OpConverter, OpRegistry } from './ops';
export { toGraphModelFiles, writeGraphModel, CONVERTER_NAME, CONVERTER_VERSION, SHARD_BYTES } from './writer';
export { checkParity, readReference } from './parity';
export type { ParityResult, Reference } from './parity';
export { packageModel, readExportInfo, ConvertError } from './package-model';
export type { ExportInfo } from './package-model';
export { InvalidModelError, UnsupportedError } from './types';
export type { ConstTensor, Dim, DType, Value } from './types';
