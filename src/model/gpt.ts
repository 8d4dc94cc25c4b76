// GPTModel as an ONNX graph: the whole of GPT-2 on one page, in the order of nanoGPT's model.py.
// `transformer` is shared by the inference graph below (KV cache) and the training graphs
// (src/train), which differ only in how attention sees the past and where dropout applies.
import { Graph, type Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { hasUntiedHead, type GPTConfig } from './config.js';
import { LM_HEAD, parameterSpecs } from './params.js';

/** Looks up a parameter by its GPT-2 checkpoint name (an initializer or a graph input). */
export type ParamFn = (name: string) => Value;

/**
 * Attention over what a layer may see. q, k, v: [B, T, C] for the new tokens, returns [B, T, C].
 * Inference attends over the KV cache plus the new tokens; training masks a full causal square.
 */
export type AttendFn = (layer: number, q: Value, k: Value, v: Value) => Value;

/** Dropout hook (identity in inference); `site` names where it applies, as in the book. */
export type DropoutFn = (x: Value, site: string) => Value;

/**
 * Hook on each linear layer of the blocks: gets the layer's name (e.g. `h.0.attn.c_attn`), its
 * input x and output y = x·W + b, and returns the output to use. LoRA adds its low-rank path
 * here (src/train/lora.ts); without a hook the layer is just x·W + b.
 */
export type AdaptFn = (prefix: string, x: Value, y: Value) => Value;

const noDropout: DropoutFn = (x) => x;

/** Split [B, T, C] into heads: [B, H, T, hd]. */
export function splitHeads(x: Value, nHead: number, headDim: number): Value {
  return op.transpose(op.reshape(x, [0, 0, nHead, headDim]), [0, 2, 1, 3]);
}

/** Merge heads back: [B, H, T, hd] → [B, T, C]. */
export function mergeHeads(y: Value, nEmbd: number): Value {
  return op.reshape(op.transpose(y, [0, 2, 1, 3]), [0, 0, nEmbd]);
}

/** Scaled dot-product attention with an additive mask [B|1, 1, T, S] (0 = see, -1e9 = hidden). */
export function scaledDotProduct(q: Value, kT: Value, v: Value, mask: Value, headDim: number, dropout = noDropout, site = ''): Value {
  const scores = op.add(op.matmul(op.mul(q, op.scalar(q, 1 / Math.sqrt(headDim))), kT), mask); // [B, H, T, S]
  return op.matmul(dropout(op.softmax(scores, -1), site), v); // [B, H, T, hd]
}

function linear(x: Value, p: ParamFn, prefix: string, bias: boolean, adapt: AdaptFn | undefined): Value {
  let y = op.matmul(x, p(`${prefix}.weight`));
  if (bias) y = op.add(y, p(`${prefix}.bias`));
  return adapt ? adapt(prefix, x, y) : y;
}

function layerNorm(x: Value, p: ParamFn, prefix: string, eps: number): Value {
  return op.layerNorm(x, p(`${prefix}.weight`), p(`${prefix}.bias`), eps);
}

function attention(cfg: GPTConfig, x: Value, p: ParamFn, l: number, attend: AttendFn, dropout: DropoutFn, adapt?: AdaptFn): Value {
  const C = cfg.nEmbd;
  const [q, k, v] = op.split(linear(x, p, `h.${l}.attn.c_attn`, cfg.qkvBias, adapt), [C, C, C], -1) as [Value, Value, Value];
  const y = attend(l, q, k, v); // [B, T, C], heads merged
  return dropout(linear(y, p, `h.${l}.attn.c_proj`, true, adapt), `h.${l}.resid_attn`);
}

function mlp(x: Value, p: ParamFn, l: number, dropout: DropoutFn, adapt?: AdaptFn): Value {
  const h = op.gelu(linear(x, p, `h.${l}.mlp.c_fc`, true, adapt), 'tanh'); // GPT-2's gelu_new
  return dropout(linear(h, p, `h.${l}.mlp.c_proj`, true, adapt), `h.${l}.resid_mlp`);
}

function block(cfg: GPTConfig, x: Value, p: ParamFn, l: number, attend: AttendFn, dropout: DropoutFn, adapt?: AdaptFn): Value {
  const eps = cfg.layerNormEpsilon;
  x = op.add(x, attention(cfg, layerNorm(x, p, `h.${l}.ln_1`, eps), p, l, attend, dropout, adapt)); // pre-LN
  return op.add(x, mlp(layerNorm(x, p, `h.${l}.ln_2`, eps), p, l, dropout, adapt));
}

/** tokens, positions: int64 [B, T] → final hidden states after ln_f: [B, T, C]. */
export function transformer(cfg: GPTConfig, p: ParamFn, tokens: Value, positions: Value, attend: AttendFn, dropout = noDropout, adapt?: AdaptFn): Value {
  let x = op.add(op.gather(p('wte.weight'), tokens), op.gather(p('wpe.weight'), positions)); // [B, T, C]
  x = dropout(x, 'emb');
  for (let l = 0; l < cfg.nLayer; l++) x = block(cfg, x, p, l, attend, dropout, adapt);
  return layerNorm(x, p, 'ln_f', cfg.layerNormEpsilon);
}

/**
 * Output head: h [N, C] → logits [N, V] = h · Wᵀ, W the token embedding wte [V, C] (tied, GPT-2)
 * or, for a config with tieWordEmbeddings false, its own `lm_head.weight`, also [V, C].
 */
export function lmHead(cfg: GPTConfig, p: ParamFn, h: Value): Value {
  const W = p(hasUntiedHead(cfg) ? LM_HEAD : 'wte.weight');
  return op.gemm(h, W, { transB: true }); // Gemm reads W transposed in place: no copy
}

/**
 * Classification head (GPT2ForSequenceClassification's `score`, no bias): h [N, C] → logits
 * [N, K] = h · scoreᵀ, score stored [K, C] as torch's nn.Linear keeps it.
 */
export function classifierHead(p: ParamFn, h: Value): Value {
  return op.gemm(h, p('score.weight'), { transB: true });
}

/** Places a parameter in graph `g` (an initializer, external data) given its name and shape. */
export type WeightFn = (g: Graph, name: string, shape: number[]) => Value;

/** A ParamFn over `cfg`'s parameters that places each one in `g` the first time it is used. */
export function placeParams(g: Graph, cfg: GPTConfig, weight: WeightFn): ParamFn {
  const shapes = new Map(parameterSpecs(cfg).map((s) => [s.name, s.shape]));
  const placed = new Map<string, Value>();
  return (name) => {
    let v = placed.get(name);
    if (!v) placed.set(name, (v = weight(g, name, shapes.get(name)!)));
    return v;
  };
}

/**
 * The inference graph, used for both prefill and decode, for a batch of sequences of different
 * lengths. The KV cache lives in JS buffers laid out [slot, head, position, hd] (kv-cache.ts): the
 * batch's slots arrive as one zero-copy input per layer, already in the layout attention reads, and
 * the graph returns only the new tokens' K/V rows and the logits that were asked for. Scores
 * against the cache and against the new tokens are computed apart and joined, so the cache itself
 * is never concatenated or transposed (copies that cost more than the matmuls at batch 16).
 *
 * Inputs:  tokens, positions int64 [B, T]; mask float [B, 1, T, P+T] (additive: 0 = visible);
 *          logit_rows int64 [N] (rows of the flattened [B·T] batch whose logits to return);
 *          past_k.l, past_v.l float [B, H, P, hd] (P = cache capacity, or 0 for a fresh batch).
 * Outputs: logits [N, V]; present_k.l, present_v.l [B, T, C].
 */
export function buildInferenceGraph(cfg: GPTConfig, weight: WeightFn): Graph {
  const g = new Graph('gpt2_infer');
  const p = placeParams(g, cfg, weight);
  const C = cfg.nEmbd;
  const H = cfg.nHead;
  const hd = C / H;
  const tokens = g.input('tokens', 'int64', ['B', 'T']);
  const positions = g.input('positions', 'int64', ['B', 'T']);
  const mask = g.input('mask', 'float32', ['B', 1, 'T', 'PT']);
  const logitRows = g.input('logit_rows', 'int64', ['N']);
  const presents: Value[] = [];

  const attend: AttendFn = (l, q, k, v) => {
    presents.push(k, v);
    const pastK = g.input(`past_k.${l}`, 'float32', ['B', H, 'P', hd]);
    const pastV = g.input(`past_v.${l}`, 'float32', ['B', H, 'P', hd]);
    const qh = op.mul(splitHeads(q, H, hd), op.scalar(q, 1 / Math.sqrt(hd))); // [B, H, T, hd]
    const [kh, vh] = [splitHeads(k, H, hd), splitHeads(v, H, hd)];
    const scores = op.concat([op.matmul(qh, op.transpose(pastK, [0, 1, 3, 2])), op.matmul(qh, op.transpose(kh, [0, 1, 3, 2]))], -1);
    const probs = op.softmax(op.add(scores, mask), -1); // [B, H, T, P+T]
    const P = op.shapeOf(pastK, 2, 3); // [P]
    const probsPast = op.sliceDynamic(probs, op.ints(g, [0]), P, -1); // [B, H, T, P]
    const probsNew = op.sliceDynamic(probs, P, op.ints(g, [2 ** 31]), -1); // [B, H, T, T]
    return mergeHeads(op.add(op.matmul(probsPast, pastV), op.matmul(probsNew, vh)), C);
  };

  const h = transformer(cfg, p, tokens, positions, attend); // [B, T, C]
  const rows = op.gather(op.reshape(h, [-1, C]), logitRows); // [N, C]: only the positions asked for
  g.output(lmHead(cfg, p, rows), 'logits');
  presents.forEach((x, i) => g.output(x, `present_${i % 2 ? 'v' : 'k'}.${i >> 1}`));
  return g;
}
