// A SavedModel written from JavaScript: a GraphDef of ops, with one signature, as saved_model.pb bytes and no
// checkpoint (session.ts assigns variables with a session call). TensorFlow loads it as one session
// (tf.node.loadSavedModel) and runs the whole graph per call.
// The protobuf messages are the ones tfjs-node itself reads SavedModels with (google-protobuf, generated).

export interface JsonNode {
  name: string;
  op: string;
  input?: string[];
  device?: string;
  attr?: Record<string, JsonAttr>;
}

export type JsonList = { i?: (string | number)[]; s?: string[]; f?: number[]; b?: boolean[]; type?: string[]; shape?: JsonShape[] };
export type JsonShape = { dim?: { size: string | number }[]; unknownRank?: boolean };
export type JsonAttr = {
  type?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  s?: string;
  list?: JsonList;
  shape?: JsonShape;
  tensor?: { dtype: string; tensorShape?: JsonShape };
};

/** A node to write: attributes in model.json's JSON encoding, constant tensors as raw little-endian bytes. */
export interface GraphNode {
  name: string;
  op: string;
  inputs: string[];
  attrs?: Record<string, JsonAttr>;
  tensors?: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>;
}

/** A tensor of the signature: a node's first output, its TensorFlow dtype (DT_...) and shape (-1 for free dims). */
export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

/** The signature key the server loads; TensorFlow's default. */
export const SIGNATURE_KEY = 'serving_default';
export const TAGS = ['serve'];
// A recent GraphDef version: the graph uses today's op semantics (TensorFlow only checks it from below).
const GRAPH_PRODUCER = 1205;

// tfjs-node ships the generated protobuf messages of TensorFlow's SavedModel and GraphDef (google-protobuf).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pb = require('@tensorflow/tfjs-node/dist/proto/api_pb') as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function dtypeEnum(name: string): number {
  const value = (pb.DataType as Record<string, number>)[name];
  if (value === undefined) throw new Error(`unknown TensorFlow dtype ${name}`);
  return value;
}

function shapeProto(shape: JsonShape | number[]): unknown {
  const proto = new pb.TensorShape();
  if (!Array.isArray(shape) && shape.unknownRank) {
    proto.setUnknownRank(true);
    return proto;
  }
  const dims = Array.isArray(shape) ? shape : (shape.dim ?? []).map((d) => Number(d.size));
  for (const size of dims) proto.addDim(new pb.TensorShape.Dim().setSize(size));
  return proto;
}

function attrProto(attr: JsonAttr): unknown {
  const proto = new pb.AttrValue();
  if (attr.type !== undefined) proto.setType(dtypeEnum(attr.type));
  else if (attr.i !== undefined) proto.setI(Number(attr.i));
  else if (attr.f !== undefined) proto.setF(attr.f);
  else if (attr.b !== undefined) proto.setB(attr.b);
  else if (attr.s !== undefined) proto.setS(Buffer.from(attr.s, 'base64'));
  else if (attr.shape !== undefined) proto.setShape(shapeProto(attr.shape));
  else if (attr.list !== undefined) {
    const list = new pb.AttrValue.ListValue();
    for (const i of attr.list.i ?? []) list.addI(Number(i));
    for (const s of attr.list.s ?? []) list.addS(Buffer.from(s, 'base64'));
    for (const f of attr.list.f ?? []) list.addF(f);
    for (const b of attr.list.b ?? []) list.addB(b);
    for (const t of attr.list.type ?? []) list.addType(dtypeEnum(t));
    for (const s of attr.list.shape ?? []) list.addShape(shapeProto(s));
    proto.setList(list);
  } else throw new Error(`attribute ${JSON.stringify(attr)} has no value this converter knows`);
  return proto;
}

function tensorAttr(dtype: string, shape: number[], bytes: Uint8Array): unknown {
  const tensor = new pb.Tensor();
  tensor.setDtype(dtypeEnum(dtype));
  tensor.setTensorShape(shapeProto(shape));
  tensor.setTensorContent(bytes);
  return new pb.AttrValue().setTensor(tensor);
}

function nodeProto(node: GraphNode): unknown {
  const proto = new pb.NodeDef();
  proto.setName(node.name);
  proto.setOp(node.op);
  for (const input of node.inputs) proto.addInput(input);
  const map = proto.getAttrMap();
  for (const [key, value] of Object.entries(node.attrs ?? {})) map.set(key, attrProto(value));
  for (const [key, t] of Object.entries(node.tensors ?? {})) map.set(key, tensorAttr(t.dtype, t.shape, t.bytes));
  return proto;
}

/** saved_model.pb bytes: the graph of `nodes` under the tag `serve`, with the signature `serving_default`. */
export function savedModelBytes(nodes: GraphNode[], signature: { inputs: TensorSpec[]; outputs: TensorSpec[] }): Uint8Array {
  const graph = new pb.GraphDef();
  graph.setVersions(new pb.VersionDef().setProducer(GRAPH_PRODUCER));
  for (const node of nodes) graph.addNode(nodeProto(node));

  const info = ({ name, dtype, shape }: TensorSpec) => new pb.TensorInfo().setName(`${name}:0`).setDtype(dtypeEnum(dtype)).setTensorShape(shapeProto(shape));
  const signatureDef = new pb.SignatureDef();
  for (const input of signature.inputs) signatureDef.getInputsMap().set(input.name, info(input));
  for (const output of signature.outputs) signatureDef.getOutputsMap().set(output.name, info(output));
  signatureDef.setMethodName('tensorflow/serving/predict');

  const metaInfo = new pb.MetaGraphDef.MetaInfoDef();
  for (const tag of TAGS) metaInfo.addTags(tag);
  const metaGraph = new pb.MetaGraphDef();
  metaGraph.setMetaInfoDef(metaInfo);
  metaGraph.setGraphDef(graph);
  metaGraph.getSignatureDefMap().set(SIGNATURE_KEY, signatureDef);

  const saved = new pb.SavedModel();
  saved.setSavedModelSchemaVersion(1);
  saved.addMetaGraphs(metaGraph);
  return saved.serializeBinary() as Uint8Array;
}

/** A string attribute's text (model.json stores strings base64-encoded), and the encoding of one. */
export const fromBase64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
export const toBase64 = (s: string): string => Buffer.from(s).toString('base64');

/** Raw little-endian bytes of a typed array, for a constant. */
export const bytesOf = (values: Float32Array | Int32Array): Uint8Array => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
