// Rewrites of a built graph, each in place through Graph.replaceNode or by dropping nodes:
// `prune` (dead backward nodes, after autodiff), `lastAxisCrossEntropy` (the loss node as ops
// ORT runs fast), `fuseSkipLayerNorm` (residual sums and their LayerNorms as one node) and
// `quantizeGraph` (weight matmuls as blockwise int8 or int4 MatMulNBits).
import type { Graph, Node, Value } from './graph.js';
import * as op from './ops.js';

/**
 * Drops the nodes from index `from` on that no value in `keep` and no graph output reads, and
 * the initializers added since (not in `before`) that no kept node reads.
 */
export function prune(g: Graph, from: number, before: ReadonlySet<string>, keep: Value[]): void {
  const live = new Set([...keep, ...g.outputs].map((v) => v.name));
  const kept: Node[] = [];
  for (let k = g.nodes.length - 1; k >= from; k--) {
    const n = g.nodes[k]!;
    if (n.outputs.some((o) => live.has(o))) {
      kept.push(n);
      for (const i of n.inputs) live.add(i);
    } else
      for (const o of n.outputs) {
        g.values.delete(o);
        g.producer.delete(o);
      }
  }
  g.nodes.splice(from, g.nodes.length - from, ...kept.reverse());
  for (const name of [...g.initializers.keys()])
    if (!before.has(name) && !live.has(name)) {
      g.initializers.delete(name);
      g.values.delete(name);
    }
}

/**
 * ORT runs SoftmaxCrossEntropyLoss as its function body, whose LogSoftmax over [N, V, 1] is
 * slower than LogSoftmax over the last axis of [N, V] (src/train/README.md), more so under the
 * memory pressure of a training step. Each mean-reduced node over 2-D logits is replaced by the
 * same mean over targets ≠ ignore_index of -log_softmax(x)[target], written with last-axis ops.
 * Run it after autodiff, which differentiates the loss node itself.
 */
export function lastAxisCrossEntropy(g: Graph, opts: { elementwiseLogSoftmax?: boolean } = {}): void {
  for (const node of [...g.nodes]) {
    if (node.op !== 'SoftmaxCrossEntropyLoss' || node.attrs.reduction !== 'mean' || node.inputs.length !== 2) continue;
    const [logits, targets] = node.inputs.map((n) => g.get(n)) as [Value, Value];
    if (logits.rank !== 2) continue;
    g.replaceNode(node, () => {
      const N = logits.shape[0]!;
      const ignore = op.scalar(targets, node.attrs.ignore_index as number);
      const skip = op.equal(targets, ignore); // [N]
      const safe = op.where(skip, op.scalar(targets, 0), targets);
      const logp = opts.elementwiseLogSoftmax ? elementwiseLogSoftmax(logits) : op.logSoftmax(logits, -1); // [N, V]
      const picked = op.reshape(op.gatherElements(logp, op.reshape(safe, [N as number, 1]), 1), [N as number]);
      const zero = op.scalar(logp, 0);
      const keep = op.where(skip, zero, op.scalar(logp, 1));
      const loss = op.div(op.neg(op.reduceSum(op.where(skip, zero, picked), [0], false)), op.reduceSum(keep, [0], false));
      return node.outputs.length > 1 ? [loss, logp] : [loss];
    });
  }
}

/**
 * log_softmax over the last axis as x − max − log Σ exp(x − max), for execution providers with
 * no LogSoftmax kernel (WebGPU), where ORT would otherwise run that node on the CPU and move the
 * logits across and back every step.
 */
function elementwiseLogSoftmax(x: Value): Value {
  const shifted = op.sub(x, op.reduceMax(x, [-1]));
  return op.sub(shifted, op.log(op.reduceSum(op.exp(shifted), [-1])));
}

/**
 * Each LayerNormalization over a residual sum (Add of two [B, T, C] values) becomes one
 * SkipLayerNormalization (com.microsoft) that returns both the normalized values and the sum,
 * which the next residual Add reads: a node less per sum. ORT's own fusion skips a sum that
 * other nodes read too, which is every residual sum but the last. Inference graphs only: the
 * gradient table has no rule for it.
 */
export function fuseSkipLayerNorm(g: Graph): void {
  for (const ln of [...g.nodes]) {
    const add = g.producer.get(ln.inputs[0] ?? '');
    if (ln.op !== 'LayerNormalization' || ln.attrs.axis !== -1 || ln.outputs.length !== 1 || add?.op !== 'Add') continue;
    const [a, b] = add.inputs.map((n) => g.get(n)) as [Value, Value];
    if (a.rank !== 3 || b.rank !== 3) continue;
    let normalized: Value | undefined;
    g.replaceNode(add, () => {
      const [y, mean, invStd, sum] = g.node('SkipLayerNormalization', [a, b, g.get(ln.inputs[1]!), g.get(ln.inputs[2]!)], { epsilon: ln.attrs.epsilon! }, Array(4).fill({ dtype: a.dtype, shape: a.shape }), undefined, 'com.microsoft') as [Value, Value, Value, Value];
      for (const unused of [mean, invStd]) [g.values, g.producer].forEach((m) => m.delete(unused.name));
      g.producer.get(y.name)!.outputs.splice(1, 2, '', ''); // the optional mean and 1/σ: not computed
      normalized = y;
      return [sum];
    });
    g.replaceNode(ln, () => [normalized!]);
  }
}

// ---- blockwise int8 / int4 weights ----
// Batch-1 decode is bound by reading every weight once per token; blockwise int8 weights read a
// quarter of the fp32 bytes, int4 an eighth. ORT's MatMulNBits (com.microsoft) dequantizes
// blocks on the fly. Numerics are no longer fp32-exact, so callers opt in.

/**
 * Block sizes, preferred first. int8: ORT's kernels run 128-value blocks fastest (fewer scales per
 * dot product), and with 255 levels the block's width barely moves accuracy. int4: 32, as
 * llama.cpp's Q4_0; with 15 levels a wider block's larger maximum costs accuracy (docs/server.md).
 */
export const BLOCKS: Record<WeightBits, readonly number[]> = { 8: [128, 64, 32], 4: [32] };

/** The block size for input width K: the first of BLOCKS[bits] that divides it (gpt2-xl's 1600 takes 64 at int8). */
export function blockFor(K: number, bits: WeightBits): number {
  const block = BLOCKS[bits].find((b) => K % b === 0);
  if (!block) throw new Error(`int${bits} quantization needs the input width (${K}) to be a multiple of ${BLOCKS[bits].at(-1)}`);
  return block;
}

export type WeightBits = 4 | 8;

/** Bits a weight takes with its block's float32 scale, at the preferred block size. */
export const weightBits = (bits: WeightBits) => bits + 32 / BLOCKS[bits][0]!;

export interface QuantizedMatrix {
  block: number; // values per block, along K
  /** [N, K/block, block·bits/8]: each output column's weights, blockwise, offset by 2^(bits−1); int4 packs two per byte, the first in the low nibble */
  q: Uint8Array;
  scales: Float32Array; // [N · K/block]
}

/** MatMulNBits' default zero point: 128 for int8, 8 for int4. */
const zeroOf = (bits: WeightBits) => 1 << (bits - 1);

/**
 * Symmetric blockwise quantization: w ≈ (q − zero) · scale with zero = 2^(bits−1) and scale =
 * max|w| / (zero − 1) per block of `block` consecutive K values of one output column (int8: q − 128
 * in ±127; int4: q − 8 in ±7). `layout` says how w is stored: 'KN' ([in, out], a MatMul's weight)
 * or 'NK' ([out, in], a Gemm's weight read transposed).
 */
export function quantizeBlockwise(w: Float32Array, K: number, N: number, layout: 'KN' | 'NK', bits: WeightBits, block = blockFor(K, bits)): QuantizedMatrix {
  if (K % block) throw new Error(`int${bits} quantization in blocks of ${block} needs the input width (${K}) to be a multiple of it`);
  const blocks = K / block;
  const zero = zeroOf(bits);
  const q = new Uint8Array((N * K * bits) / 8);
  const scales = new Float32Array(N * blocks);
  const at = layout === 'KN' ? (k: number, n: number) => w[k * N + n]! : (k: number, n: number) => w[n * K + k]!;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let i = 0; i < block; i++) max = Math.max(max, Math.abs(at(b * block + i, n)));
      const scale = max / (zero - 1) || 1;
      scales[n * blocks + b] = scale;
      for (let i = 0; i < block; i++) {
        const code = zero + Math.round(at(b * block + i, n) / scale);
        const j = (n * blocks + b) * block + i; // the value's index in [N, K]
        if (bits === 8) q[j] = code;
        else q[j >> 1]! |= code << ((j & 1) * 4);
      }
    }
  }
  return { block, q, scales };
}

/** The matrix ORT computes with: (q − zero) · scale, back in the original layout. */
export function dequantizeBlockwise(m: QuantizedMatrix, K: number, N: number, layout: 'KN' | 'NK', bits: WeightBits): Float32Array {
  const blocks = K / m.block;
  const zero = zeroOf(bits);
  const w = new Float32Array(K * N);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const j = n * K + k;
      const code = bits === 8 ? m.q[j]! : (m.q[j >> 1]! >> ((j & 1) * 4)) & 15;
      w[layout === 'KN' ? k * N + n : n * K + k] = (code - zero) * m.scales[n * blocks + Math.floor(k / m.block)]!;
    }
  return w;
}

/**
 * Rewrites every MatMul, and every Gemm reading its weight transposed, whose weight is a 2-D
 * initializer to MatMulNBits with `bits`-bit weights. `read(name)` returns a weight's float32
 * values. accuracy_level 4 lets ORT use int8 dot products for the activations too.
 */
export function quantizeGraph(g: Graph, read: (name: string) => Float32Array, bits: WeightBits = 8): void {
  for (const node of g.nodes) {
    const isMatMul = node.op === 'MatMul';
    const isHead = node.op === 'Gemm' && node.attrs.transB === 1 && node.inputs.length === 2;
    const weight = g.initializers.get(node.inputs[1] ?? '');
    if (!(isMatMul || isHead) || !weight || weight.dims.length !== 2) continue;
    const [K, N] = isHead ? [weight.dims[1]!, weight.dims[0]!] : [weight.dims[0]!, weight.dims[1]!];
    const { block, q, scales } = quantizeBlockwise(read(weight.name), K, N, isHead ? 'NK' : 'KN', bits);
    const qv = g.initializer({ name: `${weight.name}.int${bits}`, dtype: 'uint8', dims: [N, K / block, (block * bits) / 8], data: q });
    const sv = g.initializer({ name: `${weight.name}.scales`, dtype: 'float32', dims: [N * (K / block)], data: scales });
    Object.assign(node, {
      op: 'MatMulNBits',
      domain: 'com.microsoft',
      inputs: [node.inputs[0]!, qv.name, sv.name],
      attrs: { K, N, bits, block_size: block, accuracy_level: 4 },
    });
  }
  // fp32 copies no longer read by any node would still be loaded by ORT: drop them
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const name of [...g.initializers.keys()]) if (!used.has(name)) g.initializers.delete(name);
}
