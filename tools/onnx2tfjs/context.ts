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
  /** For each run-time dimension symbol, a graph tensor holding it: reference, dtype and TF axis. */
  symbolSources: Map<string, { ref: string; dtype: DType; axis: number }>;
}

/** Remembers where each symbolic dim of `v` can be read at run time (first tensor seen wins). */
export function recordSymbols(env: Env, v: Value): void {
  if (v.kind !== 'tensor') return;
  v.shape.forEach((d, i) => {
    if (typeof d === 'string' && !env.symbolSources.has(d)) env.symbolSources.set(d, { ref: v.ref, dtype: v.dtype, axis: v.perm.indexOf(i) });
  });
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

  /** Whether output `i` of this node is read by another node or is a graph output. */
  outputUsed(i: number): boolean {
    const name = this.node.outputs[i];
    return !!name && (this.env.graphOutputs.has(name) || (this.env.consumers.get(name)?.length ?? 0) > 0);
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

  /** A run-time int32 scalar-vector [1] holding symbolic dim `sym` ("s" or "s*k" for a product with a constant). */
  private symbolTensor(sym: string, suffix: string): string {
    const product = /^(.*)\*(\d+)$/.exec(sym);
    if (product) {
      const base = this.symbolTensor(product[1], suffix);
      return this.op('Mul', [base, this.ints32([Number(product[2])], `${suffix}/factor`)], { T: attr.type('int32') }, `${suffix}/mul`);
    }
    const src = this.env.symbolSources.get(sym);
    if (!src) this.fail(`no tensor carries the run-time dimension ${sym}`);
    const shape = this.op('Shape', [src.ref], { T: attr.type(src.dtype), out_type: attr.type('int32') }, `${suffix}/shape`);
    return this.op('StridedSlice', [shape, this.ints32([src.axis], `${suffix}/b`), this.ints32([src.axis + 1], `${suffix}/e`), this.ints32([1], `${suffix}/s`)], {
      T: attr.type('int32'), Index: attr.type('int32'), begin_mask: attr.int(0), end_mask: attr.int(0),
      ellipsis_mask: attr.int(0), new_axis_mask: attr.int(0), shrink_axis_mask: attr.int(0),
    }, `${suffix}/dim`);
  }

  /** A 1-D int32 shape: a Const when static, else assembled at run time from the tensors carrying its symbols. */
  shapeTensor(dims: Dim[], suffix: string): string {
    if (dims.every((d) => typeof d === 'number')) return this.ints32(dims as number[], suffix);
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length) parts.push(this.ints32(run, `${suffix}/part${parts.length}`));
      run = [];
    };
    for (const d of dims) {
      if (typeof d === 'number') run.push(d);
      else {
        flush();
        parts.push(this.symbolTensor(d, `${suffix}/sym${parts.length}`));
      }
    }
    flush();
    return this.op('ConcatV2', [...parts, this.scalar('int32', 0, `${suffix}/axis`)], { T: attr.type('int32'), N: attr.int(parts.length), Tidx: attr.type('int32') }, suffix);
  }

  /** Emits a Reshape to `shape`: one run-time dim becomes -1; more are read from the tensors that carry them. */
  reshape(ref: string, shape: Dim[], dtype: DType, suffix = 'reshape'): string {
    const symbolic = shape.filter((d) => typeof d === 'string' || d === -1).length;
    const target = symbolic > 1 ? this.shapeTensor(shape, `${suffix}/shape`) : this.ints32(shape.map((d) => (typeof d === 'string' ? -1 : d)), `${suffix}/shape`);
    return this.op('Reshape', [ref, target], { T: attr.type(dtype), Tshape: attr.type('int32') }, suffix);
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
    const target = perm.map((a) => v.shape[a]);
    let ref: string;
    if (sameElementOrder(v, perm) && target.filter((d) => typeof d === 'string').length <= 1) {
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

/** True when storing `v` with `perm` keeps its elements in the same order (only size-1 axes move). */
export function sameElementOrder(v: TensorValue, perm: number[]): boolean {
  const big = (p: number[]) => p.filter((a) => v.shape[a] !== 1);
  return samePerm(big(v.perm), big(perm));
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
