// The graph builder's data structure: values with dtypes and (symbolic) shapes, nodes in
// topological order, inputs, outputs and initializers. Op helpers (ops.ts) append nodes;
// serialize.ts turns the graph into ModelProto bytes; grad.ts reads it to emit a backward pass;
// rewrite.ts replaces nodes in place. Everything stays an inspectable plain structure until
// serialization.

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';
/** A dimension is a number, or a symbol (e.g. 'batch') that ORT resolves at run time. */
export type Dim = number | string;
export type Shape = Dim[];

export type TypedArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

/** Attributes: integers and integer lists as numbers; floats are tagged so they serialize as FLOAT. */
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | { tensor: Initializer };

export interface Node {
  op: string;
  domain: string;
  inputs: string[]; // '' for an omitted optional input
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

/** Initializer data either lives in memory or points into a file (ORT memory-maps it). */
export interface Initializer {
  name: string;
  dtype: DType;
  dims: number[];
  data?: TypedArray;
  external?: { location: string; offset: number; length: number };
}

export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, Initializer>();
  readonly values = new Map<string, Value>();
  /** The node that produced each value (absent for inputs and initializers). */
  readonly producer = new Map<string, Node>();
  private counter = 0;

  constructor(readonly name = 'scratchgpt') {}

  /** A fresh, unique value name with a readable prefix. */
  fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.values.has(name));
    return name;
  }

  private define(name: string, dtype: DType, shape: Shape): Value {
    if (this.values.has(name)) throw new Error(`graph value '${name}' defined twice`);
    const v = new Value(this, name, dtype, shape);
    this.values.set(name, v);
    return v;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v = this.define(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  initializer(init: Initializer): Value {
    const v = this.define(init.name, init.dtype, init.dims);
    this.initializers.set(init.name, init);
    return v;
  }

  /** A small in-memory constant (scalars, shapes, axes). */
  constant(data: TypedArray, dims: number[], prefix = 'const'): Value {
    return this.initializer({ name: this.fresh(prefix), dtype: dtypeOf(data), dims, data });
  }

  /**
   * Declares `v` an output, named `name` if given. A value that only a node made (not an input, an
   * initializer or an output already) takes the name itself, since an Identity node would cost a
   * kernel call every run; Value objects holding the old name are then stale and node() refuses them.
   */
  output(v: Value, name?: string): Value {
    if (name && name !== v.name) v = this.named(v, name);
    this.outputs.push(v);
    return v;
  }

  /** `v` under `name`, for an output: renamed in place where only a node made it, else through an Identity. */
  private named(v: Value, name: string): Value {
    return this.producer.has(v.name) && !this.outputs.includes(v) ? this.rename(v, name) : this.node('Identity', [v], {}, [{ dtype: v.dtype, shape: v.shape }], [name])[0]!;
  }

  private rename(v: Value, name: string): Value {
    const renamed = this.define(name, v.dtype, v.shape);
    const node = this.producer.get(v.name)!;
    node.outputs = node.outputs.map((o) => (o === v.name ? name : o));
    for (const n of this.nodes) n.inputs = n.inputs.map((i) => (i === v.name ? name : i));
    this.values.delete(v.name);
    this.producer.delete(v.name);
    this.producer.set(name, node);
    return renamed;
  }

  /** Append a node; outTypes gives each output's dtype and shape (computed by the op helper). */
  node(
    op: string,
    inputs: (Value | undefined)[],
    attrs: Record<string, AttrValue>,
    outTypes: { dtype: DType; shape: Shape }[],
    outNames?: string[],
    domain = '',
  ): Value[] {
    for (const i of inputs) {
      if (i && i.graph !== this) throw new Error(`${op}: input '${i.name}' belongs to another graph`);
      if (i && this.values.get(i.name) !== i) throw new Error(`${op}: input '${i.name}' is no longer in the graph (renamed as an output, or pruned)`);
    }
    const outputs = outTypes.map((t, k) => this.define(outNames?.[k] ?? this.fresh(op.toLowerCase()), t.dtype, t.shape));
    const node: Node = { op, domain, inputs: inputs.map((i) => i?.name ?? ''), outputs: outputs.map((o) => o.name), attrs };
    this.nodes.push(node);
    for (const o of outputs) this.producer.set(o.name, node);
    return outputs;
  }

  get(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new Error(`graph has no value '${name}'`);
    return v;
  }

  /** Replaces `node` by the nodes `build` appends, in its place; consumers read the new outputs. */
  replaceNode(node: Node, build: () => Value[]): void {
    const at = this.nodes.indexOf(node);
    const before = this.nodes.length;
    const outs = build();
    const added = this.nodes.splice(before);
    this.nodes.splice(at, 1, ...added);
    const rename = new Map(node.outputs.map((o, i) => [o, outs[i]!]));
    for (const n of this.nodes) n.inputs = n.inputs.map((i) => rename.get(i)?.name ?? i);
    for (const o of node.outputs) this.producer.delete(o);
    // a graph output keeps its name and place: the value replacing it takes the name
    this.outputs.forEach((o, i) => {
      const r = rename.get(o.name);
      if (!r) return;
      this.values.delete(o.name);
      this.outputs[i] = this.named(r, o.name);
    });
  }
}

export function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'float16';
  return 'uint8';
}
