// Optional int8 weights for decode. Batch-1 decode is bound by reading every weight once per token
// (≈ 500 MB for GPT-2 124M in fp32); blockwise int8 weights read a quarter of that. The rewrite
// works on the inspectable graph: every MatMul/Gemm whose weight is an initializer becomes
// ORT's MatMulNBits (com.microsoft), which dequantizes 32-value blocks on the fly.
// Numerics are no longer fp32-exact, so this is opt-in and only used for decode steps.
import type { Graph } from '../onnx/graph.js';

export const BLOCK = 32;

export interface QuantizedMatrix {
  q: Uint8Array; // [N, K/BLOCK, BLOCK]: each output column's weights, blockwise, offset by 128
  scales: Float32Array; // [N · K/BLOCK]
}

/**
 * Symmetric blockwise int8: w ≈ (q − 128) · scale with scale = max|w| / 127 per block of 32
 * consecutive K values of one output column. `layout` says how w is stored: 'KN' (GPT-2's Conv1D,
 * [in, out]) or 'NK' (the tied embedding read as the output head).
 */
export function quantizeInt8(w: Float32Array, K: number, N: number, layout: 'KN' | 'NK'): QuantizedMatrix {
  if (K % BLOCK) throw new Error(`int8 quantization needs the input width (${K}) to be a multiple of ${BLOCK}`);
  const blocks = K / BLOCK;
  const q = new Uint8Array(N * K);
  const scales = new Float32Array(N * blocks);
  const at = layout === 'KN' ? (k: number, n: number) => w[k * N + n]! : (k: number, n: number) => w[n * K + k]!;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let i = 0; i < BLOCK; i++) max = Math.max(max, Math.abs(at(b * BLOCK + i, n)));
      const scale = max / 127 || 1;
      scales[n * blocks + b] = scale;
      for (let i = 0; i < BLOCK; i++) q[(n * blocks + b) * BLOCK + i] = 128 + Math.round(at(b * BLOCK + i, n) / scale);
    }
  }
  return { q, scales };
}

/** The matrix ORT computes with: (q − 128) · scale, back in the original layout. */
export function dequantizeInt8(m: QuantizedMatrix, K: number, N: number, layout: 'KN' | 'NK'): Float32Array {
  const blocks = K / BLOCK;
  const w = new Float32Array(K * N);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const v = (m.q[n * K + k]! - 128) * m.scales[n * blocks + Math.floor(k / BLOCK)]!;
      w[layout === 'KN' ? k * N + n : n * K + k] = v;
    }
  return w;
}

/**
 * Rewrites the graph's weight matmuls to MatMulNBits with int8 weights. `read(name)` returns a
 * weight's float32 values. accuracy_level 4 lets ORT use int8 dot products for the activations too.
 */
export function quantizeGraph(g: Graph, read: (name: string) => Float32Array): void {
  for (const node of g.nodes) {
    const isMatMul = node.op === 'MatMul';
    const isHead = node.op === 'Gemm' && node.attrs.transB === 1 && node.inputs.length === 2;
    const weight = g.initializers.get(node.inputs[1] ?? '');
    if (!(isMatMul || isHead) || !weight || weight.dims.length !== 2) continue;
    const [K, N] = isHead ? [weight.dims[1]!, weight.dims[0]!] : [weight.dims[0]!, weight.dims[1]!];
    const { q, scales } = quantizeInt8(read(weight.name), K, N, isHead ? 'NK' : 'KN');
    const qv = g.initializer({ name: `${weight.name}.int8`, dtype: 'uint8', dims: [N, K / BLOCK, BLOCK], data: q });
    const sv = g.initializer({ name: `${weight.name}.scales`, dtype: 'float32', dims: [N * (K / BLOCK)], data: scales });
    Object.assign(node, {
      op: 'MatMulNBits',
      domain: 'com.microsoft',
      inputs: [node.inputs[0]!, qv.name, sv.name],
      attrs: { K, N, bits: 8, block_size: BLOCK, accuracy_level: 4 },
    });
  }
  // fp32 copies no longer read by any node would still be loaded by ORT: drop them
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const name of [...g.initializers.keys()]) if (!used.has(name)) g.initializers.delete(name);
}
