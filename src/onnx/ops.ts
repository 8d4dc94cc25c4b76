// One helper per ONNX op we use. Each appends a node to the inputs' graph and computes the
// output's dtype and (symbolic) shape, so later passes (autodiff) can reason about broadcasting.
import { type DType, type Dim, type Shape, type Value } from './graph.js';

let symbolCounter = 0;
/** A fresh symbolic dimension for sizes that are only known at run time. */
const unknownDim = (): string => `?${symbolCounter++}`;

function one(v: Value[]): Value {
  return v[0]!;
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Numpy-style broadcasting of two (symbolic) shapes. */
function broadcastShapes(a: Shape, b: Shape): Shape {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da === 1) out.push(db);
    else if (db === 1 || da === db) out.push(da);
    else if (typeof da === 'number' && typeof db === 'number') throw new Error(`cannot broadcast [${a}] with [${b}]`);
    else out.push(typeof da === 'number' ? da : db);
  }
  return out;
}

function i64(values: number[]): BigInt64Array {
  return BigInt64Array.from(values.map(BigInt));
}

/** A 1-D int64 constant (axes, shapes, indices). */
export function ints(g: Value['graph'], values: number[]): Value {
  return g.constant(i64(values), [values.length], 'ints');
}

/** A scalar constant with the dtype of `like`. */
export function scalar(like: Value, x: number): Value {
  const data = like.dtype === 'float64' ? new Float64Array([x]) : like.dtype === 'int64' ? i64([x]) : new Float32Array([x]);
  return like.graph.constant(data, [], 'scalar');
}

// ---- elementwise ----
function binary(op: string, a: Value, b: Value, dtype: DType = a.dtype): Value {
  return one(a.graph.node(op, [a, b], {}, [{ dtype, shape: broadcastShapes(a.shape, b.shape) }]));
}
export const add = (a: Value, b: Value) => binary('Add', a, b);
export const sub = (a: Value, b: Value) => binary('Sub', a, b);
export const mul = (a: Value, b: Value) => binary('Mul', a, b);
export const div = (a: Value, b: Value) => binary('Div', a, b);
export const pow = (a: Value, b: Value) => binary('Pow', a, b);
export const equal = (a: Value, b: Value) => binary('Equal', a, b, 'bool');

function unary(op: string, x: Value, attrs = {}): Value {
  return one(x.graph.node(op, [x], attrs, [{ dtype: x.dtype, shape: x.shape }]));
}
export const neg = (x: Value) => unary('Neg', x);
export const identity = (x: Value) => unary('Identity', x);
export const exp = (x: Value) => unary('Exp', x);
export const log = (x: Value) => unary('Log', x);
export const tanh = (x: Value) => unary('Tanh', x);
export const sqrt = (x: Value) => unary('Sqrt', x);
export const softmax = (x: Value, axis = -1) => unary('Softmax', x, { axis });
export const logSoftmax = (x: Value, axis = -1) => unary('LogSoftmax', x, { axis });
/** GELU; 'tanh' is GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export const gelu = (x: Value, approximate: 'tanh' | 'none' = 'tanh') => unary('Gelu', x, { approximate });
/** The Gauss error function (ORT 1.30 has float32 and float16 kernels only, no float64). */
export const erf = (x: Value) => unary('Erf', x);

export function cast(x: Value, to: DType): Value {
  const onnxType: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, bfloat16: 16 };
  return one(x.graph.node('Cast', [x], { to: onnxType[to] }, [{ dtype: to, shape: x.shape }]));
}

export function where(cond: Value, a: Value, b: Value): Value {
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape), b.shape);
  return one(a.graph.node('Where', [cond, a, b], {}, [{ dtype: a.dtype, shape }]));
}

/** Elementwise sum of any number of same-dtype tensors (numpy broadcasting). */
export function sum(xs: Value[]): Value {
  const first = xs[0]!;
  const shape = xs.slice(1).reduce((s, x) => broadcastShapes(s, x.shape), first.shape);
  return one(first.graph.node('Sum', xs, {}, [{ dtype: first.dtype, shape }]));
}

// ---- linear algebra and normalisation ----
export function matmul(a: Value, b: Value): Value {
  if (a.rank < 2 || b.rank < 2) throw new Error('matmul helper expects rank ≥ 2 operands');
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!];
  return one(a.graph.node('MatMul', [a, b], {}, [{ dtype: a.dtype, shape }]));
}

/** General matrix multiply on 2-D operands: alpha·A'·B' + C, with optional transposes. */
export function gemm(a: Value, b: Value, opts: { transA?: boolean; transB?: boolean; c?: Value } = {}): Value {
  const m = opts.transA ? a.shape[1]! : a.shape[0]!;
  const n = opts.transB ? b.shape[0]! : b.shape[1]!;
  const attrs = { transA: opts.transA ? 1 : 0, transB: opts.transB ? 1 : 0 };
  return one(a.graph.node('Gemm', opts.c ? [a, b, opts.c] : [a, b], attrs, [{ dtype: a.dtype, shape: [m, n] }]));
}

/** LayerNormalization over the last axis (autodiff attaches its mean and 1/σ outputs when it needs them). */
export function layerNorm(x: Value, scale: Value, bias: Value, epsilon: number): Value {
  return one(x.graph.node('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: epsilon } }, [{ dtype: x.dtype, shape: x.shape }]));
}

// ---- reductions ----
function reduce(op: string, x: Value, axes: number[], keepdims: boolean): Value {
  const ax = axes.map((a) => normAxis(a, x.rank));
  const shape = x.shape.flatMap((d, i) => (ax.includes(i) ? (keepdims ? [1] : []) : [d]));
  return one(x.graph.node(op, [x, ints(x.graph, ax)], { keepdims: keepdims ? 1 : 0 }, [{ dtype: x.dtype, shape }]));
}
export const reduceSum = (x: Value, axes: number[], keepdims = true) => reduce('ReduceSum', x, axes, keepdims);
export const reduceMean = (x: Value, axes: number[], keepdims = true) => reduce('ReduceMean', x, axes, keepdims);
export const reduceMax = (x: Value, axes: number[], keepdims = true) => reduce('ReduceMax', x, axes, keepdims);

// ---- shape manipulation ----
/** Reshape to a constant target; 0 copies the input's dim, -1 is inferred (ONNX semantics). */
export function reshape(x: Value, target: number[]): Value {
  const shape: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i]! : d));
  const inferred = shape.indexOf(-1);
  if (inferred >= 0) {
    const known = (s: Shape) => s.every((d) => typeof d === 'number');
    if (known(x.shape) && known(shape.filter((d) => d !== -1))) {
      const total = (x.shape as number[]).reduce((p, d) => p * d, 1);
      const rest = (shape.filter((d) => d !== -1) as number[]).reduce((p, d) => p * d, 1);
      shape[inferred] = total / rest;
    } else shape[inferred] = unknownDim();
  }
  return one(x.graph.node('Reshape', [x, ints(x.graph, target)], {}, [{ dtype: x.dtype, shape }]));
}

/** Reshape to a run-time shape (1-D int64, e.g. from shapeOf); outShape is the result's static shape. */
export function reshapeTo(x: Value, shape: Value, outShape: Shape): Value {
  return one(x.graph.node('Reshape', [x, shape], {}, [{ dtype: x.dtype, shape: outShape }]));
}

export function transpose(x: Value, perm: number[]): Value {
  return one(x.graph.node('Transpose', [x], { perm }, [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }]));
}

export function unsqueeze(x: Value, axes: number[]): Value {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis(a, rank));
  const shape: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[k++]!);
  return one(x.graph.node('Unsqueeze', [x, ints(x.graph, ax)], {}, [{ dtype: x.dtype, shape }]));
}

export function squeeze(x: Value, axes: number[]): Value {
  const ax = axes.map((a) => normAxis(a, x.rank));
  const shape = x.shape.filter((_, i) => !ax.includes(i));
  return one(x.graph.node('Squeeze', [x, ints(x.graph, ax)], {}, [{ dtype: x.dtype, shape }]));
}

export function concat(xs: Value[], axis: number): Value {
  const first = xs[0]!;
  const ax = normAxis(axis, first.rank);
  const dims = xs.map((x) => x.shape[ax]!);
  const size: Dim = dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((a, b) => a + b, 0) : unknownDim();
  const shape = first.shape.map((d, i) => (i === ax ? size : d));
  return one(first.graph.node('Concat', xs, { axis: ax }, [{ dtype: first.dtype, shape }]));
}

/** Split into pieces of the given sizes along `axis`. */
export function split(x: Value, sizes: number[], axis: number): Value[] {
  const ax = normAxis(axis, x.rank);
  const outs = sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? s : d)) }));
  return x.graph.node('Split', [x, ints(x.graph, sizes)], { axis: ax }, outs);
}

/** Split along `axis` into pieces whose sizes arrive at run time (`sizes`: int64 [pieces]); `dims` names each piece's size along it. */
export function splitDynamic(x: Value, sizes: Value, axis: number, dims: Dim[]): Value[] {
  const ax = normAxis(axis, x.rank);
  return x.graph.node('Split', [x, sizes], { axis: ax }, dims.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? s : d)) })));
}

/** Slice with constant starts/ends on the given axes (ONNX clamping semantics). */
export function slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
  const ax = axes.map((a) => normAxis(a, x.rank));
  const shape = x.shape.map((d, i) => {
    const k = ax.indexOf(i);
    if (k < 0) return d;
    const [s, e] = [starts[k]!, ends[k]!];
    if (typeof d === 'number') {
      const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
      return Math.max(0, clamp(e) - clamp(s));
    }
    return s >= 0 && e >= 0 && e < 2 ** 31 ? e - s : unknownDim();
  });
  const g = x.graph;
  return one(g.node('Slice', [x, ints(g, starts), ints(g, ends), ints(g, ax)], {}, [{ dtype: x.dtype, shape }]));
}

/** Slice along one axis with run-time starts/ends (1-element int64 tensors). */
export function sliceDynamic(x: Value, start: Value, end: Value, axis: number): Value {
  const ax = normAxis(axis, x.rank);
  const shape = x.shape.map((d, i) => (i === ax ? unknownDim() : d));
  return one(x.graph.node('Slice', [x, start, end, ints(x.graph, [ax])], {}, [{ dtype: x.dtype, shape }]));
}

/** Zero-pad: `pads` = [begin_0, …, begin_{r-1}, end_0, …, end_{r-1}] (ONNX order). */
export function pad(x: Value, pads: number[]): Value {
  const r = x.rank;
  const shape = x.shape.map((d, i) => (typeof d === 'number' ? d + pads[i]! + pads[i + r]! : pads[i] === 0 && pads[i + r] === 0 ? d : unknownDim()));
  return one(x.graph.node('Pad', [x, ints(x.graph, pads)], {}, [{ dtype: x.dtype, shape }]));
}

/** The input's shape as an int64 tensor; `start`/`end` select a range of dims (opset 15). */
export function shapeOf(x: Value, start = 0, end = x.rank): Value {
  const attrs: Record<string, number> = start === 0 && end === x.rank ? {} : { start, end };
  return one(x.graph.node('Shape', [x], attrs, [{ dtype: 'int64', shape: [end - start] }]));
}

export function expand(x: Value, shape: Value, outShape: Shape): Value {
  return one(x.graph.node('Expand', [x, shape], {}, [{ dtype: x.dtype, shape: outShape }]));
}

/** A tensor of the run-time shape `shape` (1-D int64) filled with `value`; outShape is its static shape. */
export function constantOfShape(shape: Value, value: number, dtype: 'float32' | 'float64', outShape: Shape): Value {
  const data = dtype === 'float64' ? new Float64Array([value]) : new Float32Array([value]);
  const attrs = { value: { tensor: { name: 'value', dtype, dims: [1], data } } };
  return one(shape.graph.node('ConstantOfShape', [shape], attrs, [{ dtype, shape: outShape }]));
}

// ---- indexing ----
/** Gather rows of `data` along `axis` (axis 0 of an embedding table = embedding lookup). */
export function gather(data: Value, indices: Value, axis = 0): Value {
  const ax = normAxis(axis, data.rank);
  const shape = [...data.shape.slice(0, ax), ...indices.shape, ...data.shape.slice(ax + 1)];
  return one(data.graph.node('Gather', [data, indices], { axis: ax }, [{ dtype: data.dtype, shape }]));
}

export function gatherElements(data: Value, indices: Value, axis: number): Value {
  return one(data.graph.node('GatherElements', [data, indices], { axis: normAxis(axis, data.rank) }, [{ dtype: data.dtype, shape: indices.shape }]));
}

/** ScatterND into `data`; reduction 'add' accumulates duplicate indices. */
export function scatterND(data: Value, indices: Value, updates: Value, reduction: 'none' | 'add' = 'add'): Value {
  return one(data.graph.node('ScatterND', [data, indices, updates], { reduction }, [{ dtype: data.dtype, shape: data.shape }]));
}

export function scatterElements(data: Value, indices: Value, updates: Value, axis: number, reduction: 'none' | 'add' = 'add'): Value {
  return one(data.graph.node('ScatterElements', [data, indices, updates], { axis: normAxis(axis, data.rank), reduction }, [{ dtype: data.dtype, shape: data.shape }]));
}

// ---- losses ----
/** Mean softmax cross-entropy over targets ≠ ignoreIndex; logits [N, V], targets [N]. */
export function softmaxCrossEntropy(logits: Value, targets: Value, ignoreIndex = -100): Value {
  return one(logits.graph.node('SoftmaxCrossEntropyLoss', [logits, targets], { reduction: 'mean', ignore_index: ignoreIndex }, [{ dtype: logits.dtype, shape: [] }]));
}
