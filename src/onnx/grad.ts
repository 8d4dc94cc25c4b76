// Reverse-mode autodiff of the graph builder's graphs, after micrograd and tinygrad: one generic
// driver (`gradients`) and one table of vector-Jacobian products keyed by ONNX op type (`vjp`).
// Gradients are more graph: backward nodes are appended to the same Graph, serialised with it and
// run by onnxruntime, whose own gradient kernels are not in the npm build — so every rule is
// written with ordinary ONNX ops. A new differentiable op gets its rule here and nowhere else.
import { Value, type AttrValue, type DType, type Graph, type Node, type Shape } from './graph.js';
import * as op from './ops.js';
import { prune } from './rewrite.js';

/** What a rule sees of one forward node. */
export interface VJPContext {
  g: Graph;
  node: Node;
  /** The node's inputs (undefined where an optional input was omitted). */
  x: (Value | undefined)[];
  /** The node's outputs. */
  y: Value[];
  /** dLoss/dy for each output; null where no gradient flows back into that output. */
  dy: (Value | null)[];
  /** wants[i]: the driver will use dLoss/dx[i] (x[i] lies on a path from a `wrt` value). */
  wants: boolean[];
}

/**
 * A rule returns one gradient per input, shaped like that input, null for index/shape inputs
 * (trailing nulls may be left off). Rules may compute gradients nobody wants: the driver then
 * drops the backward nodes no result reads (tinygrad's laziness, as a final sweep), so a rule
 * stays one formula per input.
 */
export type VJPRule = (c: VJPContext) => (Value | null)[];

const FLOAT: ReadonlySet<DType> = new Set(['float32', 'float64', 'float16', 'bfloat16']);

/**
 * Appends the backward pass of `loss` (a float32 or float64 scalar) to its graph and returns, for
 * each value in `wrt` (graph inputs, initializers or intermediates), a Value holding dLoss/dValue
 * with the same shape; values the loss does not depend on get zeros. Forward nodes are left as
 * they are, except that LayerNormalization and SoftmaxCrossEntropyLoss may gain their optional
 * outputs (Mean/InvStdDev, log_prob) for the backward pass to read.
 */
export function gradients(g: Graph, loss: Value, wrt: Value[]): Value[] {
  if (loss.shape.some((d) => d !== 1)) throw new Error(`gradients: loss '${loss.name}' must be a scalar, has shape [${loss.shape}]`);
  for (const w of wrt) if (!FLOAT.has(w.dtype)) throw new Error(`gradients: cannot differentiate with respect to ${w.dtype} value '${w.name}'`);
  const forward = g.nodes.slice();
  const firstInit = new Set(g.initializers.keys());

  // Float values that depend on some wrt value: only their producers are differentiated, and
  // only they receive gradients (index, mask and shape inputs never do).
  const active = new Set(wrt.map((w) => w.name));
  for (const n of forward)
    if (n.inputs.some((i) => active.has(i))) for (const o of n.outputs) if (o && FLOAT.has(g.get(o).dtype)) active.add(o);

  // Gradient contributions per value, summed once all of a value's consumers have been visited
  // (reverse topological order guarantees that before its producer is reached).
  const parts = new Map<string, Value[]>([[loss.name, [ones(loss)]]]);
  const total = (name: string): Value | null => {
    const p = parts.get(name);
    if (!p) return null;
    if (p.length > 1) parts.set(name, [sumParts(g, p)]);
    return parts.get(name)![0]!;
  };

  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k]!;
    const wants = node.inputs.map((i) => active.has(i));
    if (!wants.some(Boolean)) continue;
    const dy = node.outputs.map((o) => (o ? total(o) : null));
    if (dy.every((d) => d === null)) continue; // not on a path to the loss
    const key = node.domain ? `${node.domain}.${node.op}` : node.op;
    const rule = vjp[key];
    if (!rule) throw new Error(`gradients: no VJP rule for op '${key}' (node ${describe(node, k)})`);
    const x = node.inputs.map((i) => (i ? g.get(i) : undefined));
    const dx = rule({ g, node, x, y: node.outputs.map((o) => g.get(o)), dy, wants });
    x.forEach((xi, i) => {
      const d = dx[i];
      if (!wants[i] || !xi) return;
      if (!d) throw new Error(`gradients: rule for ${key} gives no gradient for input ${i} '${xi.name}' (node ${describe(node, k)})`);
      checkLike(d, xi, `${key} input ${i} (node ${describe(node, k)})`);
      const p = parts.get(xi.name);
      if (p) p.push(d);
      else parts.set(xi.name, [d]);
    });
  }

  const grads = wrt.map((w) => total(w.name) ?? zerosLike(w));
  prune(g, forward.length, firstInit, grads);
  return grads;
}

/**
 * Σ of a value's gradient contributions. A scatter-add into zeros (Gather's gradient) among them
 * scatters into the sum of the others instead: for a tied embedding (wte read by Gather and by
 * the head) that saves a zero tensor and an Add the size of the table.
 */
function sumParts(g: Graph, p: Value[]): Value {
  const k = p.findIndex((v) => {
    const n = g.producer.get(v.name);
    const zeros = n?.op === 'ScatterND' && n.attrs.reduction === 'add' ? g.producer.get(n.inputs[0]!) : undefined;
    return zeros?.op === 'ConstantOfShape' && zeros.attrs.value !== undefined && isZero(zeros.attrs.value);
  });
  if (k >= 0) {
    const scatter = g.producer.get(p[k]!.name)!;
    const rest = sumParts(g, p.filter((_, i) => i !== k));
    return op.scatterND(rest, g.get(scatter.inputs[1]!), g.get(scatter.inputs[2]!), 'add');
  }
  return p.length === 1 ? p[0]! : p.length === 2 ? op.add(p[0]!, p[1]!) : op.sum(p);
}

const isZero = (v: AttrValue): boolean => typeof v === 'object' && 'tensor' in v && !!v.tensor.data && Array.from(v.tensor.data as Float64Array).every((x) => x === 0);

/** The node as an error message names it: serialize.ts's node name and its outputs. */
function describe(node: Node, index: number): string {
  return `${node.op}_${index} → ${node.outputs.join(', ')}`;
}

function checkLike(d: Value, x: Value, where: string): void {
  const clash = d.rank !== x.rank || d.shape.some((dim, i) => typeof dim === 'number' && typeof x.shape[i] === 'number' && dim !== x.shape[i]);
  if (clash || d.dtype !== x.dtype) throw new Error(`gradients: ${where}: gradient ${d.dtype}[${d.shape}] does not match ${x.dtype}[${x.shape}]`);
}

// ---- small graph-building helpers ----

const isStatic = (s: Shape): s is number[] => s.every((d) => typeof d === 'number');

/** x's shape as a 1-D int64 tensor (a constant when static), optionally permuted. */
function shapeTensor(x: Value, perm?: number[]): Value {
  const dims = perm ? perm.map((p) => x.shape[p]!) : x.shape;
  if (isStatic(dims)) return op.ints(x.graph, dims);
  const s = op.shapeOf(x);
  return perm ? op.gather(s, op.ints(x.graph, perm)) : s;
}

function floatDType(x: Value): 'float32' | 'float64' {
  if (x.dtype !== 'float32' && x.dtype !== 'float64') throw new Error(`gradients: ${x.dtype} '${x.name}' is not supported (float32/float64 only)`);
  return x.dtype;
}

function zerosLike(x: Value, perm?: number[]): Value {
  return op.constantOfShape(shapeTensor(x, perm), 0, floatDType(x), perm ? perm.map((p) => x.shape[p]!) : x.shape);
}

/** dLoss/dLoss = 1, shaped like the (scalar) loss. */
function ones(loss: Value): Value {
  const data = floatDType(loss) === 'float64' ? new Float64Array([1]) : new Float32Array([1]);
  return loss.graph.constant(data.fill(1), loss.shape as number[], 'dloss');
}

function reshapeLike(v: Value, x: Value): Value {
  return isStatic(x.shape) ? op.reshape(v, x.shape) : op.reshapeTo(v, op.shapeOf(x), x.shape);
}

const numel = (s: number[]): number => s.reduce((p, d) => p * d, 1);
const axesOf = (from: number, rank: number): number[] => Array.from({ length: rank - from }, (_, i) => from + i);
const normAxis = (a: number, rank: number): number => (a < 0 ? a + rank : a);
const swapLast = (v: Value): Value => op.transpose(v, [...axesOf(0, v.rank - 2), v.rank - 1, v.rank - 2]);

/** An int64 constant input's values (axes, starts…), or undefined when it is computed at run time. */
function constInts(v: Value | undefined): number[] | undefined {
  const data = v && v.graph.initializers.get(v.name)?.data;
  return data instanceof BigInt64Array ? Array.from(data, Number) : undefined;
}

/**
 * Undoes numpy broadcasting: sums gradient `d` (shaped like the broadcast result) down to the
 * shape of operand `x` — over the leading axes x lacks and the axes where x has size 1.
 */
function sumTo(d: Value, x: Value): Value {
  const lead = d.rank - x.rank;
  const axes = d.shape.flatMap((dim, i) => (i < lead || (x.shape[i - lead] === 1 && dim !== 1) ? [i] : []));
  if (!axes.length) return d;
  if (axes.length === lead) return op.reduceSum(d, axes, false);
  const r = op.reduceSum(d, axes, true);
  return lead ? op.squeeze(r, axesOf(0, lead)) : r;
}

function mean(x: Value, axes: number[]): Value {
  return op.reduceMean(x, axes, true);
}

/** Attaches optional output `k` of a forward node (e.g. LayerNorm's InvStdDev), or returns it. */
function outputOf(g: Graph, node: Node, k: number, dtype: DType, shape: Shape): Value {
  const existing = node.outputs[k];
  if (existing) return g.get(existing);
  while (node.outputs.length < k) node.outputs.push('');
  const v = new Value(g, g.fresh(`${node.op.toLowerCase()}_out${k}`), dtype, shape);
  g.values.set(v.name, v);
  g.producer.set(v.name, node);
  node.outputs[k] = v.name;
  return v;
}

const attr = (node: Node, name: string, fallback: number): number => (node.attrs[name] as number | undefined) ?? fallback;
const strAttr = (node: Node, name: string, fallback: string): string => (node.attrs[name] as string | undefined) ?? fallback;
const floatAttr = (node: Node, name: string, fallback: number): number => {
  const a = node.attrs[name] as { float: number } | undefined;
  return a ? Math.fround(a.float) : fallback; // attributes serialize as float32
};

// ---- the rules, in the order of the op helpers they differentiate (ops.ts) ----
// Notation: y = the forward output, g = dLoss/dy, and each comment gives dLoss/dx.

const K = Math.sqrt(2 / Math.PI); // GELU's tanh approximation constant
const GELU_C = 0.044715;

export const vjp: Record<string, VJPRule> = {
  // ---- elementwise ----
  // y = a + b, a − b, a·b, a / b (broadcasting): da = Σ_bcast g·∂y/∂a, likewise db.
  Add: ({ x: [a, b], dy: [g] }) => [sumTo(g!, a!), sumTo(g!, b!)],
  Sub: ({ x: [a, b], dy: [g] }) => [sumTo(g!, a!), op.neg(sumTo(g!, b!))],
  Mul: ({ x: [a, b], dy: [g] }) => [sumTo(op.mul(g!, b!), a!), sumTo(op.mul(g!, a!), b!)],
  // ∂(a/b)/∂b = −a/b² = −y/b
  Div: ({ x: [a, b], y: [y], dy: [g] }) => [sumTo(op.div(g!, b!), a!), op.neg(sumTo(op.div(op.mul(g!, y!), b!), b!))],
  // y = x^p with a constant exponent: dx = g·p·x^(p−1).
  Pow: ({ x: [x, p], dy: [g], wants, node }) => {
    if (wants[1]) throw new Error(`gradients: Pow (node → ${node.outputs[0]}) supports only a constant exponent`);
    return [sumTo(op.mul(g!, op.mul(p!, op.pow(x!, op.sub(p!, op.scalar(p!, 1))))), x!), null];
  },
  Neg: ({ dy: [g] }) => [op.neg(g!)],
  Identity: ({ dy: [g] }) => [g!],
  Exp: ({ y: [y], dy: [g] }) => [op.mul(g!, y!)], // d eˣ = eˣ
  Log: ({ x: [x], dy: [g] }) => [op.div(g!, x!)], // d ln x = 1/x
  Tanh: ({ y: [y], dy: [g] }) => [op.mul(g!, op.sub(op.scalar(y!, 1), op.mul(y!, y!)))], // 1 − tanh²
  Sqrt: ({ y: [y], dy: [g] }) => [op.div(g!, op.add(y!, y!))], // 1 / (2√x)

  // y = softmax(x): dx = y·(g − Σ g·y)
  Softmax: ({ y: [y], dy: [g], node }) => {
    const axis = attr(node, 'axis', -1);
    return [op.mul(y!, op.sub(g!, op.reduceSum(op.mul(g!, y!), [axis], true)))];
  },
  // y = x − logΣeˣ: dx = g − eʸ·Σ g
  LogSoftmax: ({ y: [y], dy: [g], node }) => [logSoftmaxBackward(y!, g!, attr(node, 'axis', -1))],

  // tanh: y = ½x(1 + t), t = tanh(u), u = k(x + c·x³), k = √(2/π):
  //   dy/dx = ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²)        (llm.c's gelu_backward)
  // none: y = x·Φ(x): dy/dx = Φ(x) + x·φ(x), Φ(x) = ½(1 + erf(x/√2)), φ(x) = e^(−x²/2)/√(2π).
  Gelu: ({ x: [x], dy: [g], node }) => {
    const s = (v: number) => op.scalar(x!, v);
    const x2 = op.mul(x!, x!);
    if (strAttr(node, 'approximate', 'none') === 'tanh') {
      const t = op.tanh(op.mul(x!, op.add(op.mul(x2, s(K * GELU_C)), s(K))));
      const du = op.add(op.mul(x2, s(1.5 * K * GELU_C)), s(0.5 * K)); // ½·du/dx
      const d = op.add(op.mul(op.add(t, s(1)), s(0.5)), op.mul(op.mul(x!, op.sub(s(1), op.mul(t, t))), du));
      return [op.mul(g!, d)];
    }
    const cdf = op.mul(op.add(op.erf(op.mul(x!, s(Math.SQRT1_2))), s(1)), s(0.5));
    const xpdf = op.mul(x!, op.mul(op.exp(op.mul(x2, s(-0.5))), s(1 / Math.sqrt(2 * Math.PI))));
    return [op.mul(g!, op.add(cdf, xpdf))];
  },
  // Float-to-float casts pass the gradient back in the input's precision.
  Cast: ({ x: [x], dy: [g] }) => [FLOAT.has(x!.dtype) ? op.cast(g!, x!.dtype) : null],

  // y = Where(c, a, b): the gradient goes to the branch each element was taken from.
  Where: ({ x: [c, a, b], dy: [g] }) => {
    const zero = op.scalar(g!, 0);
    return [null, sumTo(op.where(c!, g!, zero), a!), sumTo(op.where(c!, zero, g!), b!)];
  },

  // ---- linear algebra and normalisation ----
  // y = A·B over broadcast batch axes: dA = g·Bᵀ, dB = Aᵀ·g, summed over A's/B's broadcast axes.
  MatMul: ({ x: [a, b], dy: [g] }) => {
    if (a!.rank < 2 || b!.rank < 2) throw new Error('gradients: MatMul with 1-D operands is not supported');
    if (b!.rank === 2 && a!.rank > 2 && isStatic(b!.shape)) {
      // x[…, K] · W[K, N] (a linear layer): dW = Σ over all rows of xᵀg, as one 2-D Gemm.
      const [Kd, N] = b!.shape as [number, number];
      const dW = op.gemm(op.reshape(a!, [-1, Kd]), op.reshape(g!, [-1, N]), { transA: true });
      return [op.matmul(g!, swapLast(b!)), dW];
    }
    return [sumTo(op.matmul(g!, swapLast(b!)), a!), sumTo(op.matmul(swapLast(a!), g!), b!)];
  },

  // Y = α·A'·B' + β·C with A' = transA ? Aᵀ : A (B' likewise): dA' = α·g·B'ᵀ, dB' = α·A'ᵀ·g,
  // transposed back where the operand was read transposed; dC = β·Σ_bcast g.
  Gemm: ({ x: [a, b, c], dy: [g], node }) => {
    const [tA, tB] = [attr(node, 'transA', 0) === 1, attr(node, 'transB', 0) === 1];
    const alpha = floatAttr(node, 'alpha', 1);
    const beta = floatAttr(node, 'beta', 1);
    const ga = alpha === 1 ? g! : op.mul(g!, op.scalar(g!, alpha));
    // (tA, tB) = (0, 0): dA = g·Bᵀ, dB = Aᵀ·g   (0, 1): dA = g·B, dB = gᵀ·A
    //            (1, 0): dA = B·gᵀ, dB = A·g    (1, 1): dA = Bᵀ·gᵀ, dB = gᵀ·Aᵀ
    const dA = tA ? op.gemm(b!, ga, { transA: tB, transB: true }) : op.gemm(ga, b!, { transB: !tB });
    const dB = tB ? op.gemm(ga, a!, { transA: true, transB: tA }) : op.gemm(a!, ga, { transA: !tA });
    const dC = c && (beta === 1 ? sumTo(g!, c) : op.mul(sumTo(g!, c), op.scalar(c, beta)));
    return [dA, dB, dC ?? null];
  },

  // y = (x − μ)·σ⁻¹·scale + bias over axes [axis, rank); with x̂ = (x − μ)·σ⁻¹ and ĝ = g·scale:
  // dx = σ⁻¹·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dscale = Σ_rows g·x̂, dbias = Σ_rows g.
  // μ and σ⁻¹ come from the forward node's Mean/InvStdDev outputs when their type (stash_type,
  // float32) matches x; otherwise (float64 x) they are recomputed in x's precision.
  LayerNormalization: ({ g: graph, node, x: [x, scale, bias], dy: [g] }) => {
    const axes = axesOf(normAxis(attr(node, 'axis', -1), x!.rank), x!.rank);
    const statShape = x!.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    let xc: Value, rstd: Value; // x − μ, σ⁻¹
    if (x!.dtype === 'float32' && attr(node, 'stash_type', 1) === 1) {
      xc = op.sub(x!, outputOf(graph, node, 1, 'float32', statShape));
      rstd = outputOf(graph, node, 2, 'float32', statShape);
    } else {
      xc = op.sub(x!, mean(x!, axes));
      const eps = op.scalar(x!, floatAttr(node, 'epsilon', 1e-5));
      rstd = op.div(op.scalar(x!, 1), op.sqrt(op.add(mean(op.mul(xc, xc), axes), eps)));
    }
    const xhat = op.mul(xc, rstd);
    const gh = op.mul(g!, scale!);
    const dx = op.mul(op.sub(op.sub(gh, mean(gh, axes)), op.mul(xhat, mean(op.mul(gh, xhat), axes))), rstd);
    return [dx, sumTo(op.mul(g!, xhat), scale!), bias ? sumTo(g!, bias) : null];
  },

  // ---- reductions ----
  // y = Σ_axes x: every x element gets its row's g (put back the reduced axes, then broadcast).
  ReduceSum: ({ x: [x, axes], dy: [g], node }) => [reduceBackward(node, x!, axes, g!, 1)],
  // y = mean_axes x: as ReduceSum, divided by the number of elements averaged.
  ReduceMean: ({ x: [x, axes], y: [y], dy: [g], node }) => {
    if (!isStatic(x!.shape) || !isStatic(y!.shape)) fail(`ReduceMean over symbolic shape [${x!.shape}]`);
    return [reduceBackward(node, x!, axes, g!, numel(y!.shape) / numel(x!.shape))];
  },

  // ---- shape and data movement: the gradient takes the inverse path ----
  Reshape: ({ x: [x], dy: [g] }) => [reshapeLike(g!, x!)],
  Flatten: ({ x: [x], dy: [g] }) => [reshapeLike(g!, x!)],
  Transpose: ({ x: [x], dy: [g], node }) => {
    const perm = (node.attrs.perm as number[] | undefined) ?? axesOf(0, x!.rank).reverse();
    return [op.transpose(g!, perm.map((_, i) => perm.indexOf(i)))];
  },
  Unsqueeze: ({ x: [, axes], dy: [g] }) => [op.squeeze(g!, constInts(axes) ?? fail('Unsqueeze with run-time axes'))],
  Squeeze: ({ x: [x, axes], dy: [g] }) => [axes ? op.unsqueeze(g!, constInts(axes) ?? fail('Squeeze with run-time axes')) : reshapeLike(g!, x!)],
  Concat: ({ x, dy: [g], node }) => {
    const axis = normAxis(attr(node, 'axis', 0), g!.rank);
    const sizes = x.map((xi) => xi!.shape[axis]!);
    if (sizes.every((s) => typeof s === 'number')) return x.length === 1 ? [g!] : op.split(g!, sizes as number[], axis);
    let start = op.ints(g!.graph, [0]);
    return x.map((xi) => {
      const end = op.add(start, op.shapeOf(xi!, axis, axis + 1));
      const piece = op.sliceDynamic(g!, start, end, axis);
      start = end;
      return piece;
    });
  },
  // Outputs that got no gradient contribute zeros.
  Split: ({ y, dy, node }) => [op.concat(y.map((yi, i) => dy[i] ?? zerosLike(yi)), attr(node, 'axis', 0))],

  // y = x[starts:ends] (step 1): dx = g zero-padded back to x's shape.
  Slice: ({ x: [x, starts, ends, axesIn, steps], dy: [g] }) => {
    const [s, e] = [constInts(starts), constInts(ends)];
    const axes = axesIn ? constInts(axesIn) : s && s.map((_, i) => i);
    const st = steps && constInts(steps);
    if (!s || !e || !axes || (steps && (!st || st.some((v) => v !== 1)))) fail('Slice without constant starts/ends/axes and steps of 1');
    const r = x!.rank;
    const pads = new Array<number>(2 * r).fill(0);
    axes!.forEach((a, k) => {
      const ax = normAxis(a, r);
      const dim = x!.shape[ax];
      if (typeof dim !== 'number') fail(`Slice along symbolic axis ${ax}`);
      const clamp = (v: number) => Math.max(0, Math.min(dim as number, v < 0 ? v + (dim as number) : v));
      pads[ax] = clamp(s![k]!);
      pads[ax + r] = (dim as number) - Math.max(clamp(s![k]!), clamp(e![k]!));
    });
    return [op.pad(g!, pads)];
  },
  // Broadcast forward, sum backward.
  Expand: ({ x: [x], dy: [g] }) => [sumTo(g!, x!)],

  // ---- indexing ----
  // y = data[idx] along `axis` (embedding lookup): rows of g are added back at their indices;
  // ScatterND with reduction=add accumulates repeated indices.
  Gather: ({ x: [data, idx], dy: [g], node }) => {
    const axis = normAxis(attr(node, 'axis', 0), data!.rank);
    const at = op.unsqueeze(idx!.dtype === 'int64' ? idx! : op.cast(idx!, 'int64'), [-1]);
    if (axis === 0) return [op.scatterND(zerosLike(data!), at, g!, 'add'), null];
    // Move the gathered axis to the front, scatter rows, move it back.
    const r = idx!.rank;
    const rest = [...axesOf(0, axis), ...axesOf(axis + 1, data!.rank)];
    const gT = op.transpose(g!, [...axesOf(axis, axis + r), ...axesOf(0, axis), ...axesOf(axis + r, g!.rank)]);
    const perm = [axis, ...rest];
    const scattered = op.scatterND(zerosLike(data!, perm), at, gT, 'add');
    return [op.transpose(scattered, perm.map((_, i) => perm.indexOf(i))), null];
  },

  // ---- losses ----
  // Mean (or sum, or per-element) cross-entropy of softmax(x) against class targets along axis 1,
  // skipping targets = ignore_index (llm.c's fused crossentropy_softmax_backward):
  //   ℓᵢ = −log softmax(xᵢ)[tᵢ]  ⇒  dℓᵢ/dxᵢ = softmax(xᵢ) − onehot(tᵢ)
  //   L = Σᵢ kᵢℓᵢ / Σᵢ kᵢ (kᵢ = [tᵢ ≠ ignore_index])  ⇒  dxᵢ = g·kᵢ/Σk·(pᵢ − onehot(tᵢ))
  // softmax comes from exp of the node's log_prob output (attached if the model did not ask).
  // As dx = p·w − onehot·w with w = g·k/Σk, ignored rows are zero and the onehot part is one
  // ScatterElements(add) of −w at the targets.
  SoftmaxCrossEntropyLoss: ({ g: graph, node, x: [scores, targets, weights], dy: [g, glogp] }) => {
    if (weights) throw new Error('gradients: SoftmaxCrossEntropyLoss with class weights is not supported');
    const logp = outputOf(graph, node, 1, scores!.dtype, scores!.shape);
    let dx: Value | null = null;
    if (g) {
      const t = op.unsqueeze(targets!.dtype === 'int64' ? targets! : op.cast(targets!, 'int64'), [1]); // [N, 1, d…]: class axis 1, like the scores
      const ignore = node.attrs.ignore_index as number | undefined;
      const skip = ignore === undefined ? null : op.equal(t, op.scalar(t, ignore));
      const reduction = strAttr(node, 'reduction', 'mean');
      let w = reduction === 'none' ? op.unsqueeze(g, [1]) : g; // per-row weight on (p − onehot)
      if (reduction === 'mean') {
        if (!skip && !isStatic(t.shape)) fail('SoftmaxCrossEntropyLoss without ignore_index over symbolic shapes');
        const counted = skip ? op.reduceSum(op.where(skip, op.scalar(w, 0), op.scalar(w, 1)), [], false) : op.scalar(w, numel(t.shape as number[]));
        w = op.div(w, counted);
      }
      if (skip) w = op.where(skip, op.scalar(w, 0), w);
      if (w.rank < t.rank) w = op.expand(w, shapeTensor(t), t.shape); // ScatterElements wants updates shaped like indices
      const safe = skip ? op.where(skip, op.scalar(t, 0), t) : t;
      dx = op.scatterElements(op.mul(op.exp(logp), w), safe, op.neg(w), 1, 'add');
    }
    if (glogp) {
      const d = logSoftmaxBackward(logp, glogp, 1);
      dx = dx ? op.add(dx, d) : d;
    }
    return [dx, null];
  },
};

function fail(what: string): never {
  throw new Error(`gradients: ${what} is not supported`);
}

function logSoftmaxBackward(y: Value, g: Value, axis: number): Value {
  return op.sub(g, op.mul(op.exp(y), op.reduceSum(g, [axis], true)));
}

function reduceBackward(node: Node, x: Value, axesIn: Value | undefined, g: Value, scale: number): Value {
  const axes = axesIn ? constInts(axesIn) ?? fail(`${node.op} with run-time axes`) : [];
  if (!axes.length && attr(node, 'noop_with_empty_axes', 0) === 1) return g; // identity
  let d = scale === 1 ? g : op.mul(g, op.scalar(g, scale));
  // Put the reduced axes back as 1s, unless all were reduced: a scalar broadcasts as it is.
  if (axes.length && axes.length < x.rank && attr(node, 'keepdims', 1) === 0) d = op.unsqueeze(d, axes.map((a) => normAxis(a, x.rank)));
  return op.expand(d, shapeTensor(x), x.shape);
}
