// AdamW over flat buffers (llm.c's gpt2_update): one loop per tensor, outside the graph.
//
// Why not in the graph: ORT copies every output into fresh JS memory, so an in-graph update
// would return params, m and v (3× the model) per step instead of the gradients (1×); here the
// update reads the gradients where they already are and changes everything in place. The loop
// runs as a wasm SIMD kernel when the buffers live in a WasmArena (kernels.ts), else in JS.
// Semantics are PyTorch's torch.optim.AdamW (decoupled weight decay, bias-corrected moments).
import type { FlatLayout } from './flat.js';
import type { WasmArena } from './kernels.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

/**
 * Which tensors weight decay applies to. 'matrices' (default, as nanoGPT and GPT-3): the 2-D
 * weights of the linear layers only (an untied lm_head included), not biases, LayerNorm or the
 * embeddings.
 */
export type DecayPolicy = 'matrices' | 'matrices+embeddings' | 'all' | 'none';
export const DECAY_POLICIES: readonly DecayPolicy[] = ['matrices', 'matrices+embeddings', 'all', 'none'];

export function decays(name: string, policy: DecayPolicy): boolean {
  const embedding = name === 'wte.weight' || name === 'wpe.weight';
  const matrix = /\.(c_attn|c_proj|c_fc)\.weight$/.test(name) || /\.lora_[AB]$/.test(name) || name === 'score.weight' || name === 'lm_head.weight';
  switch (policy) {
    case 'matrices': return matrix;
    case 'matrices+embeddings': return matrix || embedding;
    case 'all': return true;
    case 'none': return false;
  }
}

export class AdamW {
  /** First and second moments, in the parameters' layout. */
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Updates done so far (bias correction uses step + 1 for the next one). */
  step = 0;
  private readonly decayed: boolean[];

  constructor(
    readonly layout: FlatLayout,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
    decayPolicy: DecayPolicy = 'matrices',
    /** Where m and v live; updates of parameters and gradients in the same arena use its kernel. */
    private readonly arena?: WasmArena,
  ) {
    this.m = arena ? arena.alloc(layout.size) : layout.alloc();
    this.v = arena ? arena.alloc(layout.size) : layout.alloc();
    this.decayed = layout.segments.map((s) => decays(s.name, decayPolicy));
  }

  /**
   * One update of `params` in place from `gradScale`·`grads` (the scale folds averaging over
   * accumulated micro-batches and norm clipping into this pass), at learning rate `lr`.
   */
  update(params: Float32Array, grads: Float32Array, lr: number, gradScale = 1): void {
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.config;
    const { m, v } = this;
    this.step++;
    const stepSize = lr / (1 - b1 ** this.step);
    const invBc2Sqrt = 1 / Math.sqrt(1 - b2 ** this.step);
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    const kernel = this.arena?.owns(params, grads, m, v) ? this.arena : undefined;
    this.layout.segments.forEach((seg, k) => {
      const keep = this.decayed[k] ? 1 - lr * weightDecay : 1;
      if (kernel) return kernel.adamw(params, grads, m, v, seg.offset, seg.size, { b1, b2, stepSize, invBc2Sqrt, eps, keep, gradScale });
      for (let i = seg.offset, end = seg.offset + seg.size; i < end; i++) {
        const g = grads[i]! * gradScale;
        const mi = (m[i] = b1 * m[i]! + c1 * g);
        const vi = (v[i] = b2 * v[i]! + c2 * g * g);
        params[i] = params[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) * invBc2Sqrt + eps);
      }
    });
  }
}

/** The L2 norm of all gradients together (the wasm kernel when the buffer is in `arena`). */
export function globalNorm(grads: Float32Array, arena?: WasmArena): number {
  if (arena?.owns(grads) && grads.length % 4 === 0) return Math.sqrt(arena.sumOfSquares(grads));
  let sum = 0;
  for (let i = 0; i < grads.length; i++) sum += grads[i]! * grads[i]!;
  return Math.sqrt(sum);
}

/** torch.nn.utils.clip_grad_norm_'s factor: scaling by it brings a norm down to at most maxNorm. */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}
