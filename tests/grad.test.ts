// Gradient checks for src/onnx/grad.ts, micrograd-style: every VJP rule against central finite
// differences of the same graph in float64. Each check builds loss = Σ f(x)·R with a fixed random
// R (so every output element matters), appends the gradients, creates ONE session, reads the
// analytic gradients from the unperturbed run and the loss at x ± eps·eᵢ from perturbed runs.
//
// float64 kernel gaps in onnxruntime-node 1.30 (CPU): Erf (so Gelu approximate='none') and OneHot
// have none. Gelu 'none' is therefore checked in float32 with a looser tolerance. LayerNorm's
// float32 path (which reads the forward node's Mean/InvStdDev outputs, float32-only stats) is
// checked against the float64 path's gradients.
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { gradients } from '../src/onnx/grad.js';
import { Graph, type Dim, type Value } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops.js';
import { serialize } from '../src/onnx/serialize.js';
import { Rng } from '../src/model/rng.js';

type FloatType = 'float32' | 'float64';
/**
 * An input: its shape, the range its random values are drawn from (default [-1, 1]), and the
 * shape the graph declares if that differs (symbolic dims).
 */
type Spec = number[] | { shape: number[]; lo?: number; hi?: number; declared?: Dim[] };
const shapeOf = (s: Spec) => (Array.isArray(s) ? s : s.shape);
const declaredShape = (s: Spec) => (Array.isArray(s) ? s : s.declared ?? s.shape);
const numel = (s: readonly (number | string)[]) => s.reduce<number>((p, d) => p * (d as number), 1);
const f64 = (g: Graph, dims: number[], values: number[]) => g.constant(Float64Array.from(values), dims);
const i64 = (g: Graph, dims: number[], values: number[]) => g.constant(BigInt64Array.from(values.map(BigInt)), dims);
const positive = (...shape: number[]): Spec => ({ shape, lo: 0.5, hi: 2 });

async function createSession(g: Graph): Promise<ort.InferenceSession> {
  const { bytes, externalData } = serialize(g);
  return ort.InferenceSession.create(bytes, externalData ? { externalData: [externalData] } : {});
}

interface Built {
  graph: Graph;
  session: ort.InferenceSession;
  feeds: Record<string, ort.Tensor>;
  data: (Float32Array | Float64Array)[];
}

/** loss = Σ f(xs)·R and its gradients w.r.t. every input, as one session. */
async function build(specs: Spec[], f: (...xs: Value[]) => Value, dtype: FloatType = 'float64', seed = 1): Promise<Built> {
  const rng = new Rng(seed);
  const random = (n: number, lo: number, hi: number) => {
    const a = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
    return a;
  };
  const g = new Graph('gradcheck');
  const xs = specs.map((s, i) => g.input(`x${i}`, dtype, declaredShape(s)));
  const y = f(...xs);
  const R = g.constant(random(numel(y.shape), -1, 1), y.shape as number[], 'R');
  const loss = g.output(op.reduceSum(op.mul(y, y.dtype === dtype ? R : op.cast(R, y.dtype)), y.shape.map((_, i) => i), false), 'loss');
  gradients(g, loss, xs).forEach((d, i) => g.output(d, `grad${i}`));
  const session = await createSession(g);
  const data = specs.map((s) => {
    const [lo, hi] = Array.isArray(s) ? [-1, 1] : [s.lo ?? -1, s.hi ?? 1];
    return random(numel(shapeOf(s)), lo, hi);
  });
  const feeds = Object.fromEntries(data.map((d, i) => [`x${i}`, new ort.Tensor(dtype, d, shapeOf(specs[i]!))]));
  return { graph: g, session, feeds, data };
}

async function analytic(b: Built): Promise<Float64Array[]> {
  const out = await b.session.run(b.feeds);
  return b.data.map((_, i) => Float64Array.from(out[`grad${i}`]!.data as Float64Array));
}

interface Tolerance {
  eps?: number;
  rtol?: number;
  atol?: number;
}

/** Checks every input's analytic gradient against central differences of the loss. */
async function gradCheck(specs: Spec[], f: (...xs: Value[]) => Value, opts: Tolerance & { dtype?: FloatType } = {}): Promise<Built> {
  const { dtype = 'float64', eps = dtype === 'float64' ? 1e-6 : 1e-2, rtol = 1e-5, atol = 1e-6 } = opts;
  const b = await build(specs, f, dtype);
  const grads = await analytic(b);
  const lossAt = async () => Number((await b.session.run(b.feeds, ['loss'])).loss!.data[0]);
  const bad: string[] = [];
  let worst = 0;
  for (const [i, x] of b.data.entries()) {
    for (let j = 0; j < x.length; j++) {
      const x0 = x[j]!;
      x[j] = x0 + eps;
      const [xp, lp] = [x[j]!, await lossAt()]; // x[j] as stored (float32 rounds the step)
      x[j] = x0 - eps;
      const [xm, lm] = [x[j]!, await lossAt()];
      x[j] = x0;
      const fd = (lp - lm) / (xp - xm);
      const an = grads[i]![j]!;
      const err = Math.abs(fd - an) - rtol * Math.abs(an);
      worst = Math.max(worst, Math.abs(fd - an));
      if (err > atol && bad.length < 5) bad.push(`x${i}[${j}]: analytic ${an}, numeric ${fd}`);
    }
  }
  expect(bad, `max |diff| ${worst.toExponential(2)}`).toEqual([]);
  return b;
}

function expectClose(actual: Float64Array, expected: Float64Array, rtol: number, atol: number): void {
  const bad: string[] = [];
  actual.forEach((a, i) => {
    const e = expected[i]!;
    if (Math.abs(a - e) > atol + rtol * Math.abs(e) && bad.length < 5) bad.push(`[${i}] ${a} vs ${e}`);
  });
  expect(bad).toEqual([]);
}

const nodeOps = (g: Graph) => g.nodes.map((n) => n.op);

describe('gradients: the driver', () => {
  it('sums the contributions of a value used several times', async () => {
    await gradCheck([[2, 3]], (x) => op.add(op.mul(x, x), op.exp(x)));
  });

  it('differentiates w.r.t. intermediates and gives zeros to values the loss ignores', async () => {
    const g = new Graph();
    const x = g.input('x', 'float64', [2, 3]);
    const unused = g.input('unused', 'float64', [4]);
    const h = op.tanh(x);
    const R = f64(g, [2, 3], [1, 2, 3, 4, 5, 6]);
    const loss = op.reduceSum(op.mul(h, R), [0, 1], false);
    const [dh, dx, du] = gradients(g, loss, [h, x, unused]);
    g.output(loss, 'loss');
    g.output(dh!, 'dh');
    g.output(dx!, 'dx');
    g.output(du!, 'du');
    const s = await createSession(g);
    const xs = Float64Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6]);
    const out = await s.run({ x: new ort.Tensor('float64', xs, [2, 3]), unused: new ort.Tensor('float64', new Float64Array(4), [4]) });
    expect([...(out.dh!.data as Float64Array)]).toEqual([1, 2, 3, 4, 5, 6]); // dL/dh = R
    expectClose(out.dx!.data as Float64Array, Float64Array.from(xs, (v, i) => (i + 1) * (1 - Math.tanh(v) ** 2)), 1e-12, 0);
    expect(out.du!.dims).toEqual([4]);
    expect([...(out.du!.data as Float64Array)]).toEqual([0, 0, 0, 0]);
  });

  it('names the op and node when a rule is missing', () => {
    const g = new Graph();
    const x = g.input('x', 'float64', [3]);
    const [y] = g.node('Sin', [x], {}, [{ dtype: 'float64', shape: [3] }]);
    expect(() => gradients(g, op.reduceSum(y!, [0], false), [x])).toThrow(/no VJP rule for op 'Sin' \(node Sin_0 → sin_\d+\)/);
  });

  it('scatters a tied embedding\'s Gather gradient into the head\'s instead of into zeros', async () => {
    const b = await gradCheck([[5, 3], [4, 3]], (wte, h) => {
      const e = op.gather(wte!, i64(wte!.graph, [4], [1, 3, 1, 0])); // [4, 3]
      return op.gemm(op.mul(e, h!), wte!, { transB: true }); // [4, 5], reads wte again
    });
    expect(nodeOps(b.graph)).not.toContain('ConstantOfShape');
  });

  it('handles symbolic dims with run-time shapes (Reshape, Split zeros, Concat, ReduceSum, broadcasting)', async () => {
    const specs: Spec[] = [{ shape: [2, 4], declared: ['B', 4] }, { shape: [3, 4], declared: ['C', 4] }, [4]];
    const b = await gradCheck(specs, (x, z, b) => {
      const [, q] = op.split(op.add(x!, b!), [1, 3], 1); // ['B', 3]; the unused piece gets run-time zeros
      const c = op.concat([op.reshape(q!, [-1]), op.reshape(z!, [-1])], 0); // run-time sizes
      return op.reduceSum(op.mul(c, op.tanh(c)), [0], true); // [1]
    });
    expect(nodeOps(b.graph)).toEqual(expect.arrayContaining(['Shape', 'Slice', 'ConstantOfShape']));
  });

  it('emits only what the requested gradients need', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3, 4]); // data, not a parameter: no dx
    const w = g.input('w', 'float32', [4, 5]);
    const loss = op.reduceSum(op.matmul(x, w), [0, 1, 2], false);
    const before = g.nodes.length;
    const initsBefore = g.initializers.size;
    gradients(g, loss, [w]);
    // dW = reshape(x)ᵀ·reshape(g): the expanded seed, two reshapes and one Gemm; no dx MatMul.
    expect(nodeOps(g).slice(before).sort()).toEqual(['Expand', 'Gemm', 'Reshape', 'Reshape']);
    expect(g.initializers.size - initsBefore).toBe(4); // the seed, the Expand shape, two Reshape targets
  });
});

describe('VJP rules: elementwise with broadcasting (float64 finite differences)', () => {
  const pairs: [Spec, Spec][] = [
    [[2, 3, 4], [3, 1]],
    [[1, 3, 1], [2, 1, 4]],
    [[4], [2, 3, 4]],
    [[2, 3], []],
  ];
  const rhs = (s: Spec): Spec => ({ shape: shapeOf(s), lo: 0.5, hi: 2 }); // keeps Div away from 0
  for (const [name, f] of [['Add', op.add], ['Sub', op.sub], ['Mul', op.mul], ['Div', op.div]] as const)
    it(name, async () => {
      for (const [a, b] of pairs) await gradCheck([a, rhs(b)], f);
    });

  it('Where (gradient to the selected branch; the condition gets none)', async () => {
    await gradCheck([[2, 3], [3]], (a, b) => {
      const c = op.cast(a!.graph.constant(Uint8Array.from([1, 0, 0, 1, 1, 0]), [2, 3]), 'bool');
      return op.where(c, a!, b!);
    });
  });

  it('Neg, Exp, Log, Tanh, Sqrt, Identity', async () => {
    for (const f of [op.neg, op.exp, op.log, op.tanh, op.sqrt, op.identity]) await gradCheck([positive(2, 3)], f);
  });

  it('Pow with a constant exponent', async () => {
    for (const p of [3, 0.5, -1.5]) await gradCheck([positive(2, 3)], (x) => op.pow(x, op.scalar(x, p)));
    await gradCheck([positive(2, 3)], (x) => op.pow(x, f64(x.graph, [3], [2, 0.5, 1.5])));
  });

  it('Gelu (tanh approximation)', async () => {
    await gradCheck([{ shape: [3, 4], lo: -3, hi: 3 }], (x) => op.gelu(x, 'tanh'));
  });

  it('Gelu (exact, float32: no float64 Erf kernel)', async () => {
    await gradCheck([{ shape: [3, 4], lo: -3, hi: 3 }], (x) => op.gelu(x, 'none'), { dtype: 'float32', eps: 1e-2, rtol: 2e-3, atol: 2e-3 });
  });

  it('Cast between float types', async () => {
    // float32 input, computed in float64: the step is taken in float32, the loss is exact.
    await gradCheck([[2, 3]], (x) => op.tanh(op.cast(x, 'float64')), { dtype: 'float32', eps: 1e-3, rtol: 1e-5, atol: 1e-6 });
  });
});

describe('VJP rules: linear algebra and normalisation', () => {
  it('MatMul with batch broadcasting', async () => {
    await gradCheck([[2, 1, 3, 4], [5, 4, 2]], op.matmul);
    await gradCheck([[2, 3, 4], [2, 4, 5]], op.matmul);
    await gradCheck([[3, 4], [2, 4, 5]], op.matmul);
    await gradCheck([[2, 3, 4], [4, 5]], op.matmul); // a linear layer: dW as one Gemm
  });

  it('Gemm (transA, transB, alpha, beta, broadcast C)', async () => {
    for (const [tA, tB] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      const [A, B] = [tA ? [4, 3] : [3, 4], tB ? [5, 4] : [4, 5]];
      await gradCheck([A, B], (a, b) => op.gemm(a!, b!, { transA: !!tA, transB: !!tB }));
      await gradCheck([A, B, [5]], (a, b, c) => a!.graph.node('Gemm', [a, b, c], { transA: tA!, transB: tB!, alpha: { float: 0.75 }, beta: { float: 1.5 } }, [{ dtype: 'float64', shape: [3, 5] }])[0]!);
    }
  });

  it('LayerNormalization (last axis; dx, dscale, dbias)', async () => {
    await gradCheck([[2, 3, 5], [5], [5]], (x, s, b) => op.layerNorm(x!, s!, b!, 1e-5));
  });

  it('LayerNormalization over the last two axes', async () => {
    await gradCheck([[2, 3, 4], [3, 4], [3, 4]], (x, s, b) => x!.graph.node('LayerNormalization', [x, s, b], { axis: 1, epsilon: { float: 1e-3 } }, [{ dtype: 'float64', shape: x!.shape }])[0]!);
  });

  it('LayerNormalization in float32 (Mean/InvStdDev from the forward node) agrees with float64', async () => {
    const f = (x: Value, s: Value, b: Value) => op.layerNorm(x, s, b, 1e-5);
    const specs = [[4, 6], [6], [6]];
    const b32 = await build(specs, f as (...xs: Value[]) => Value, 'float32');
    expect(b32.graph.nodes.find((n) => n.op === 'LayerNormalization')!.outputs).toHaveLength(3);
    expect(nodeOps(b32.graph).filter((o) => o === 'Sqrt')).toEqual([]); // nothing recomputed
    const [g32, g64] = [await analytic(b32), await analytic(await build(specs, f as (...xs: Value[]) => Value, 'float64'))];
    g32.forEach((g, i) => expectClose(g, g64[i]!, 1e-4, 1e-5));
  });

  it('Softmax and LogSoftmax', async () => {
    await gradCheck([[3, 4]], (x) => op.softmax(x, -1));
    await gradCheck([[3, 4, 2]], (x) => op.softmax(x, 1));
    await gradCheck([[3, 4]], (x) => op.logSoftmax(x, -1));
  });
});

describe('VJP rules: indexing and the loss', () => {
  it('Gather along axis 0 (embedding) with repeated indices', async () => {
    await gradCheck([[5, 3]], (w) => op.gather(w, i64(w.graph, [2, 3], [2, 0, 2, 4, 2, 0])));
  });

  it('Gather along an inner axis, and with a scalar index', async () => {
    await gradCheck([[3, 5, 2]], (x) => op.gather(x, i64(x.graph, [4], [1, 4, 1, 1]), 1));
    await gradCheck([[3, 5, 2]], (x) => op.gather(x, i64(x.graph, [], [3]), 1));
  });

  const targets = [1, -100, 3, 3, -100, 0];
  const sce = (reduction: string, withLogp = false) => (x: Value) => {
    const out = [{ dtype: x.dtype, shape: reduction === 'none' ? [6] : [] }, ...(withLogp ? [{ dtype: x.dtype, shape: x.shape }] : [])];
    const ys = x.graph.node('SoftmaxCrossEntropyLoss', [x, i64(x.graph, [6], targets)], { reduction, ignore_index: -100 }, out);
    return withLogp ? op.add(op.unsqueeze(ys[0]!, [0]), ys[1]!) : ys[0]!;
  };

  it('SoftmaxCrossEntropyLoss, mean over targets ≠ -100 (the fused rule)', async () => {
    await gradCheck([{ shape: [6, 5], lo: -2, hi: 2 }], (x) => op.softmaxCrossEntropy(x, i64(x.graph, [6], targets), -100));
  });

  it('SoftmaxCrossEntropyLoss: sum, none, log_prob used too, and [N, C, d] scores', async () => {
    await gradCheck([[6, 5]], sce('sum'));
    await gradCheck([[6, 5]], sce('none'));
    await gradCheck([[6, 5]], sce('mean', true));
    await gradCheck([[2, 4, 3]], (x) => op.softmaxCrossEntropy(x, i64(x.graph, [2, 3], [1, -100, 3, 0, 0, -100])));
  });
});

describe('VJP rules: shapes and reductions', () => {
  it('Reshape, Transpose, Unsqueeze, Squeeze, Expand', async () => {
    await gradCheck([[2, 6]], (x) => op.reshape(x, [0, 3, -1]));
    await gradCheck([[2, 3, 4]], (x) => op.transpose(x, [2, 0, 1]));
    await gradCheck([[3, 4]], (x) => op.unsqueeze(x, [0, 2]));
    await gradCheck([[3, 1, 4, 1]], (x) => op.squeeze(x, [1, -1]));
    await gradCheck([[3, 1]], (x) => op.expand(x, op.ints(x.graph, [2, 3, 4]), [2, 3, 4]));
  });

  it('Split (an unused piece gets zeros) and Concat', async () => {
    await gradCheck([[3, 5]], (x) => {
      const [a, , c] = op.split(x, [2, 1, 2], 1);
      return op.concat([c!, a!], 1);
    });
    await gradCheck([[1, 3], [2, 3], [3, 3]], (a, b, c) => op.concat([a!, b!, c!], 0));
  });

  it('Slice (negative and clamped bounds)', async () => {
    await gradCheck([[4, 6]], (x) => op.slice(x, [1, -4], [3, 100], [0, 1]));
    await gradCheck([[4, 6]], (x) => op.slice(x, [2], [-1], [-1]));
  });

  it('ReduceSum and ReduceMean', async () => {
    for (const keep of [true, false]) {
      await gradCheck([[2, 3, 4]], (x) => op.reduceSum(x, [1], keep));
      await gradCheck([[2, 3, 4]], (x) => op.reduceMean(x, [0, -1], keep));
    }
    await gradCheck([[2, 3]], (x) => x.graph.node('ReduceSum', [x], { keepdims: 0 }, [{ dtype: x.dtype, shape: [] }])[0]!);
  });
});

describe('gradients of a whole graph', () => {
  // A 2-layer MLP with a residual LayerNorm + Gelu block and softmax cross-entropy, laid out like
  // GPT-2's pieces: x [2, 3, 6] · W1 + b1 → h + Gelu(LN(h)) → flatten → Gemm(Wᵀ, as the tied head).
  const mlp = (x: Value, w1: Value, b1: Value, lnw: Value, lnb: Value, w2: Value, b2: Value) => {
    const g = x.graph;
    const h = op.add(op.matmul(x, w1), b1); // [2, 3, 8]
    const r = op.add(h, op.gelu(op.layerNorm(h, lnw, lnb, 1e-5), 'tanh'));
    const logits = op.add(op.gemm(op.reshape(r, [6, 8]), w2, { transB: true }), b2); // [6, 5]
    return op.softmaxCrossEntropy(logits, i64(g, [6], [4, -100, 0, 2, 2, -100]), -100);
  };
  const specs: Spec[] = [[2, 3, 6], [6, 8], [8], { shape: [8], lo: 0.5, hi: 1.5 }, [8], [5, 8], [5]];

  it('matches finite differences for every parameter (float64)', async () => {
    const b = await gradCheck(specs, mlp as (...xs: Value[]) => Value);
    // 9 forward nodes, 3 for the check's Σ y·R, 7 output Identities; the backward stays lean.
    expect(b.graph.nodes.length).toBeLessThanOrEqual(80);
  });

  it('float32 (LayerNorm stats from the forward node) agrees with float64', async () => {
    const [g32, g64] = [await analytic(await build(specs, mlp as (...xs: Value[]) => Value, 'float32')), await analytic(await build(specs, mlp as (...xs: Value[]) => Value, 'float64'))];
    g32.forEach((g, i) => expectClose(g, g64[i]!, 1e-4, 1e-5));
  });
});
