// LoRA (Hu et al. 2021; the book's appendix E): every linear layer of the blocks keeps its
// pretrained W frozen and learns a low-rank update beside it,
//
//   y = x·W + b + (alpha / rank)·(x·A)·B,    A [in, rank], B [rank, out],
//
// on c_attn (q, k, v fused, as GPT-2 stores them), attn.c_proj, mlp.c_fc and mlp.c_proj. B starts
// at zero, so training starts exactly at the pretrained model. The scale is alpha/rank (the
// paper, PEFT, and the book since 2025; its first printing multiplied by alpha alone, so its
// rank=16, alpha=16 is the same run here).
//
// W stays a graph initializer (prepacked by ORT, no gradient computed for it): a step pays only
// the two skinny matmuls per layer and their gradients, on top of the forward and the input
// gradients every method needs.
import type { Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import type { GPTConfig } from '../model/config.js';
import { parameterSpecs, type AdaptFn, type ParamFn } from '../model/gpt.js';
import { mergeLowRank } from '../model/lora-merge.js';
import type { ParamSpec, Params } from '../model/params.js';
import { Rng } from '../model/rng.js';

export interface LoraConfig {
  rank: number;
  alpha: number;
}

/** The linear layers of each block that get an adapter (GPT-2's Conv1D names). */
export const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

export const loraScale = (c: LoraConfig): number => c.alpha / c.rank;

export function validateLora(c: LoraConfig): void {
  if (!(Number.isInteger(c.rank) && c.rank > 0)) throw new Error(`LoRA rank must be a positive integer, got ${c.rank}`);
  if (!(Number.isFinite(c.alpha) && c.alpha > 0)) throw new Error(`LoRA alpha must be a positive number, got ${c.alpha}`);
}

/** `h.{l}.{target}.lora_A` [in, rank] and `.lora_B` [rank, out] for every adapted layer, in layer order. */
export function loraSpecs(cfg: GPTConfig, rank: number): ParamSpec[] {
  const shapes = new Map(parameterSpecs(cfg).map((s) => [s.name, s.shape]));
  const specs: ParamSpec[] = [];
  for (let l = 0; l < cfg.nLayer; l++) {
    for (const target of LORA_TARGETS) {
      const prefix = `h.${l}.${target}`;
      const [inDim, outDim] = shapes.get(`${prefix}.weight`)! as [number, number]; // Conv1D: [in, out]
      specs.push({ name: `${prefix}.lora_A`, shape: [inDim, rank] }, { name: `${prefix}.lora_B`, shape: [rank, outDim] });
    }
  }
  return specs;
}

/**
 * Initial adapters, deterministic for a seed: A ~ U(-1/√rank, 1/√rank), which is what the book's
 * torch.nn.init.kaiming_uniform_(A, a=√5) draws for an [in, rank] tensor (torch takes fan_in =
 * size(1) = rank: bound = √(2/(1+5))·√(3/rank) = 1/√rank); B = 0.
 */
export function loraInit(cfg: GPTConfig, lora: LoraConfig, seed: number): Params {
  const rng = new Rng(seed);
  const bound = 1 / Math.sqrt(lora.rank);
  const params: Params = new Map();
  for (const s of loraSpecs(cfg, lora.rank)) {
    const data = new Float32Array(s.shape[0]! * s.shape[1]!);
    if (s.name.endsWith('.lora_A')) for (let i = 0; i < data.length; i++) data[i] = (2 * rng.next() - 1) * bound;
    params.set(s.name, { shape: [...s.shape], data });
  }
  return params;
}

/** The graph side: y + ((x·A)·scale)·B; scaling the [.., rank] product is the cheapest place. */
export function loraAdapt(lora: LoraConfig, p: ParamFn): AdaptFn {
  const scale = loraScale(lora);
  return (prefix: string, x: Value, y: Value): Value => {
    const xa = op.matmul(x, p(`${prefix}.lora_A`)); // [B, T, rank]
    return op.add(y, op.matmul(op.mul(xa, op.scalar(xa, scale)), p(`${prefix}.lora_B`)));
  };
}

/**
 * W' = W + (alpha/rank)·A·B for every adapted layer: a plain GPT-2 again, with the same
 * outputs as base + adapters. Serving the merged model costs nothing extra per decoded token
 * (an unmerged adapter adds two matmuls and their latency to every linear layer at every step,
 * and keeps the model from being an ordinary checkpoint); a PEFT adapter folder (peft-adapter.ts)
 * is merged the same way at load. Returns a new map; tensors without an adapter are shared with `base`.
 */
export function mergeLora(cfg: GPTConfig, base: Params, adapters: Params, lora: LoraConfig): Params {
  const scale = loraScale(lora);
  const merged: Params = new Map(base);
  for (let l = 0; l < cfg.nLayer; l++) {
    for (const target of LORA_TARGETS) {
      const prefix = `h.${l}.${target}`;
      const W = base.get(`${prefix}.weight`);
      const A = adapters.get(`${prefix}.lora_A`);
      const B = adapters.get(`${prefix}.lora_B`);
      if (!W || !A || !B) throw new Error(`mergeLora: missing ${!W ? 'weight' : 'adapter'} for ${prefix}`);
      merged.set(`${prefix}.weight`, mergeLowRank(W, A, B, scale, `mergeLora ${prefix}`));
    }
  }
  return merged;
}
