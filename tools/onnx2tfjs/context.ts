// What an op converter sees: its node's inputs and attributes, the graph builder, and layout helpers (NCHW <-> NHWC).
import { attr, GraphBuilder } from './graph-builder';
import { AttrValue, OnnxNode } from './reader';
import { identityPerm, isIdentity, makeConst, samePerm, transposeConst } from './const-math';
import { ConstTensor, Dim, DType, TensorValue, UnsupportedError, Value } from './types';

/** NCHW logical axes stored as NHWC. */
export const NHWC = [0, 2, 3, 1];

/** Graph-wide state shared by all node contexts of one conversion. */
export interface Env {
  values: Map<string, Value>;
  consumers: Map<string, OnnxNode[]>;
  graphOutputs: Set<string>;
  /** Nodes fused into an earlier one, with the name whose value their first output takes. */
  absorbed: Map<OnnxNode, string>;
  symbols: { next: number };
}

export class NodeContext {
  constructor(
    readonly g: GraphBuilder,
    readonly node: OnnxNode,
    readonly opset: number,
    private readonly env: Env,
  ) {}

  /** Base for the names of the TF nodes this ONNX node becomes. */
  get name(): string {
    return this.node.name;
  }

  /** Throws the one error kind for anything the converter cannot translate exactly. */
  fail(what: string): never {
    throw new UnsupportedError(`${this.node.opType} node "${this.node.name}" (opset ${this.opset}): ${what}`);
  }

  has(i: number): boolean {
    return i < this.node.inputs.length && this.node.inputs[i] !== '';
  }

  input(i: number): Value | undefined {
    if (!this.has(i)) return undefined;
    const v = this.env.values.get(this.node.inputs[i]);
    if (!v) this.fail(`input "${this.node.inputs[i]}" is produced by no earlier node (graph not topologically sorted?)`);
    return v;
  }

  need(i: number): Value {
    const v = this.input(i);
    if (!v) this.fail(`required input ${i} is missing`);
    return v;
  }

  private attrOf(name: string): AttrValue | undefined {
    return this.node.attrs.get(name);
  }

  int(name: string, def?: number): number {
    const v = this.attrOf(name) ?? def;
    if (typeof v !== 'number') this.fail(`attribute "${name}" must be an int`);
    return v;
  }

  ints(name: string, def?: number[]): number[] {
    const v = this.attrOf(name) ?? def;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) this.fail(`attribute "${name}" must be a list of ints`);
    return v as number[];
  }

  float(name: string, def?: number): number {
    const v = this.attrOf(name) ?? def;
    if (typeof v !== 'number') this.fail(`attribute "${name}" must be a float`);
    return v;
  }

  str(name: string, def?: string): string {
    const v = this.attrOf(name) ?? def;
    if (typeof v !== 'string') this.fail(`attribute "${name}" must be a string`);
    return v;
  }

  attrTensor(name: string): ConstTensor | undefined {
    const v = this.attrOf(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(`attribute "${name}" must be a tensor`);
    return v;
  }

  hasAttr(name: string): boolean {
    return this.node.attrs.has(name);
  }

  /** A fresh symbolic dimension (a size known only at run time). */
  symbol(): string {
    return `?${++this.env.symbols.next}`;
  }

  /** The only node reading `output` when fusing it away is safe (not a graph output, one consumer). */
  soleConsumer(output: string): OnnxNode | undefined {
    if (this.env.graphOutputs.has(output)) return undefined;
    const c = this.env.consumers.get(output) ?? [];
    return c.length === 1 ? c[0] : undefined;
  }

  /** Marks a following node as folded into this one: its first output becomes an alias of `source`. */
  absorb(node: OnnxNode, source: string): void {
    this.env.absorbed.set(node, source);
  }

  /** Current value of a graph name (used when looking ahead at nodes to fuse). */
  valueOf(name: string): Value | undefined {
    return name === '' ? undefined : this.env.values.get(name);
  }

  // ---- values and layout ----

  /** Constant value of an input, or a failure naming what had to be constant. */
  constInput(i: number, what: string): ConstTensor {
    const v = this.need(i);
    if (v.kind !== 'const') this.fail(`${what} (input ${i}) must be a constant known at conversion time`);
    return v.tensor;
  }

  /** Integer vector of an input that may hold symbolic entries (a shape computed from a dynamic batch). */
  dimsInput(i: number, what: string): Dim[] {
    const v = this.need(i);
    if (v.kind === 'const') return Array.from(v.tensor.data);
    if (v.kind === 'dims') return v.dims;
    this.fail(`${what} (input ${i}) must be computable at conversion time`);
  }

  constRef(t: ConstTensor, suffix = 'const'): string {
    return this.g.constant(t, `${this.name}/${suffix}`);
  }

  /** A graph tensor for any value; constants are emitted as Const nodes. */
  tensor(v: Value): TensorValue {
    if (v.kind === 'tensor') return v;
    if (v.kind === 'dims') {
      if (v.dims.some((d) => typeof d === 'string')) this.fail('a shape with run-time dimensions is used as data; only static shapes are supported here');
      const t = makeConst(v.dtype, v.scalar ? [] : [v.dims.length], v.dims as number[]);
      return { kind: 'tensor', ref: this.constRef(t), dtype: t.dtype, shape: [...t.shape], perm: identityPerm(t.shape.length) };
    }
    const t = v.tensor;
    return { kind: 'tensor', ref: this.constRef(t), dtype: t.dtype, shape: [...t.shape], perm: identityPerm(t.shape.length) };
  }

  op(op: string, inputs: string[], attrs: Parameters<GraphBuilder['op']>[2] = {}, suffix = op): string {
    return this.g.op(op, inputs, attrs, `${this.name}/${suffix}`);
  }

  ints32(values: number[], suffix: string): string {
    return this.constRef(makeConst('int32', [values.length], values), suffix);
  }

  scalar(dtype: DType, v: number, suffix: string): string {
    return this.constRef(makeConst(dtype, [], [v]), suffix);
  }

  /** Emits a Reshape to `shape` (at most one entry may be symbolic; it becomes -1). */
  reshape(ref: string, shape: Dim[], dtype: DType, suffix = 'reshape'): string {
    const symbolic = shape.filter((d) => typeof d === 'string' || d === -1).length;
    if (symbolic > 1) this.fail(`reshape to [${shape.join(', ')}] needs more than one run-time dimension`);
    const target = shape.map((d) => (typeof d === 'string' ? -1 : d));
    return this.op('Reshape', [ref, this.ints32(target, `${suffix}/shape`)], { T: attr.type(dtype), Tshape: attr.type('int32') }, suffix);
  }

  /**
   * The value stored with TF axis i = logical axis perm[i]. A transpose that only moves size-1 axes is a Reshape.
   * Constants are transposed at conversion time.
   */
  withPerm(value: Value, perm: number[]): TensorValue {
    if (value.kind === 'const' && value.tensor.shape.length === perm.length) {
      const t = transposeConst(value.tensor, perm);
      return { kind: 'tensor', ref: this.constRef(t), dtype: t.dtype, shape: [...value.tensor.shape], perm: [...perm] };
    }
    const v = this.tensor(value);
    if (v.shape.length !== perm.length) this.fail(`internal: layout of rank ${perm.length} asked for a rank-${v.shape.length} tensor`);
    if (samePerm(v.perm, perm)) return v;
    const big = (p: number[]) => p.filter((a) => v.shape[a] !== 1);
    const target = perm.map((a) => v.shape[a]);
    let ref: string;
    if (samePerm(big(v.perm), big(perm)) && target.filter((d) => typeof d === 'string').length <= 1) {
      ref = this.reshape(v.ref, target, v.dtype, 'relayout');
    } else {
      const p = perm.map((a) => v.perm.indexOf(a));
      ref = this.op('Transpose', [v.ref, this.ints32(p, 'relayout/perm')], { T: attr.type(v.dtype), Tperm: attr.type('int32') }, 'relayout');
    }
    return { ...v, ref, perm: [...perm] };
  }

  /** NCHW tensor stored NHWC (what TF's convolutions and pools take). */
  nhwc(value: Value): TensorValue {
    const v = this.tensor(value);
    if (v.shape.length !== 4) this.fail(`expects a 4-D NCHW input, got rank ${v.shape.length}`);
    return this.withPerm(v, NHWC);
  }

  /** The tensor in ONNX's own element order. */
  plain(value: Value): TensorValue {
    const v = this.tensor(value);
    return isIdentity(v.perm) ? v : this.withPerm(v, identityPerm(v.shape.length));
  }

  /** Result value helper. */
  result(ref: string, dtype: DType, shape: Dim[], perm: number[] = identityPerm(shape.length)): TensorValue {
    return { kind: 'tensor', ref, dtype, shape, perm };
  }
}

/** A 0-D/1-D integer vector known at conversion time up to symbolic entries, or null for anything else. */
export function dimsOf(v: Value): { dims: Dim[]; scalar: boolean; dtype: DType } | null {
  if (v.kind === 'dims') return { dims: v.dims, scalar: v.scalar, dtype: v.dtype };
  if (v.kind === 'const' && v.tensor.dtype !== 'float32' && v.tensor.shape.length <= 1) {
    return { dims: Array.from(v.tensor.data), scalar: v.tensor.shape.length === 0, dtype: v.tensor.dtype };
  }
  return null;
}

/** Wraps a symbolic vector back into a value: a plain constant once every entry is known. */
export function dimsValue(dims: Dim[], scalar: boolean, dtype: DType): Value {
  if (dims.every((d) => typeof d === 'number')) {
    return { kind: 'const', tensor: makeConst(dtype, scalar ? [] : [dims.length], dims as number[]) };
  }
  return { kind: 'dims', dtype, scalar, dims };
}
