// GPT-2 on one page, in the order of nanoGPT's model.py: the parameters (named and shaped as in
// Hugging Face checkpoints) and their initialisation; the forward pass (embeddings, pre-LN
// blocks of attention and MLP, ln_f); the heads; and the two kinds of attention the graphs use,
// causal over the new tokens (training, classification) and over a KV cache (generation).
// The graphs are thin variants that declare inputs and outputs around `transformer`:
// inference in session.ts, classification in classifier.ts, training in src/train/training-graph.ts.
//
// B batch rows, T new tokens per row, P cached positions, C = n_embd, H = n_head, hd = C / H,
// V = vocab size. Linear weights use GPT-2's Conv1D layout [in, out], which is what MatMul wants:
// checkpoints load key for key with no transpose.
import type { Graph, Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { hasUntiedHead, type GPTConfig } from './config.js';
import { numel, type ParamSpec, type Params } from './params.js';
import { Rng } from './rng.js';

// ---- parameters ----

/** The classification head's tensor name; it sits outside `transformer.` in HF checkpoints. */
export const CLASSIFIER_HEAD = 'score.weight';

/**
 * An untied language-model head's tensor name (GPT2LMHeadModel's `lm_head`, outside
 * `transformer.` in HF checkpoints). Only a config with tieWordEmbeddings false has one.
 */
export const LM_HEAD = 'lm_head.weight';

/** Every parameter of `c`'s GPT-2, without the `transformer.` prefix, in checkpoint order. */
export function parameterSpecs(c: GPTConfig): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [
    { name: 'wte.weight', shape: [c.vocabSize, C] }, // token embeddings, also the output head when tied
    { name: 'wpe.weight', shape: [c.contextLength, C] }, // position embeddings
  ];
  for (let l = 0; l < c.nLayer; l++) {
    const h = `h.${l}`;
    specs.push(
      { name: `${h}.ln_1.weight`, shape: [C] },
      { name: `${h}.ln_1.bias`, shape: [C] },
      { name: `${h}.attn.c_attn.weight`, shape: [C, 3 * C] }, // q, k, v side by side
      ...(c.qkvBias ? [{ name: `${h}.attn.c_attn.bias`, shape: [3 * C] }] : []),
      { name: `${h}.attn.c_proj.weight`, shape: [C, C] },
      { name: `${h}.attn.c_proj.bias`, shape: [C] },
      { name: `${h}.ln_2.weight`, shape: [C] },
      { name: `${h}.ln_2.bias`, shape: [C] },
      { name: `${h}.mlp.c_fc.weight`, shape: [C, 4 * C] },
      { name: `${h}.mlp.c_fc.bias`, shape: [4 * C] },
      { name: `${h}.mlp.c_proj.weight`, shape: [4 * C, C] },
      { name: `${h}.mlp.c_proj.bias`, shape: [C] },
    );
  }
  specs.push({ name: 'ln_f.weight', shape: [C] }, { name: 'ln_f.bias', shape: [C] });
  // A classifier's head (GPT2ForSequenceClassification's nn.Linear(n_embd, num_labels, bias=False),
  // stored [out, in] as torch does); wte then only embeds.
  if (c.labels) specs.push({ name: CLASSIFIER_HEAD, shape: [c.labels.length, C] });
  // An untied output head (nn.Linear(n_embd, vocab_size, bias=False)), stored [out, in] as torch
  // and HF keep it, so logits = h · lm_headᵀ exactly as the tied h · wteᵀ.
  else if (hasUntiedHead(c)) specs.push({ name: LM_HEAD, shape: [c.vocabSize, C] });
  return specs;
}

// ---- initialisation ----

/** Weight initialisation schemes for randomInit. */
export const INIT_SCHEMES = ['gpt2', 'pytorch'] as const;
export type InitScheme = (typeof INIT_SCHEMES)[number];

/**
 * Random weights, deterministic for a seed, by one of two schemes:
 *
 * 'gpt2' (default), GPT-2's initialisation: weights N(0, 0.02) (an untied lm_head too, as HF's
 * _init_weights does); the two projections that write into the residual stream scaled by
 * 1/sqrt(2·n_layer) so its variance does not grow with depth (GPT-2 paper §2.3); biases 0;
 * LayerNorm gain 1 and shift 0.
 *
 * 'pytorch', what the book's GPTModel gets from PyTorch's defaults: nn.Embedding N(0, 1) for wte
 * and wpe; every nn.Linear's weight and bias U(−1/√fan_in, 1/√fan_in) (kaiming_uniform_ with
 * a=√5 gives exactly that bound for the weight); LayerNorm scale 1, shift 0. fan_in is the
 * layer's input width: shape[0] of our Conv1D [in, out] weights (c_attn's q, k, v are three
 * nn.Linear(C, C), fan_in C each), shape[1] of the [out, in] heads lm_head and score.
 */
export function randomInit(config: GPTConfig, seed: number, scheme: InitScheme = 'gpt2'): Params {
  if (!INIT_SCHEMES.includes(scheme)) throw new Error(`randomInit: unknown scheme '${scheme}' (known: ${INIT_SCHEMES.join(', ')})`);
  const rng = new Rng(seed);
  const specs = parameterSpecs(config);
  const shapes = new Map(specs.map((s) => [s.name, s.shape]));
  const params: Params = new Map();
  const fill = scheme === 'gpt2' ? gpt2Init(config) : pytorchInit(shapes);
  for (const spec of specs) {
    const data = new Float32Array(numel(spec.shape));
    fill(spec, data, rng);
    params.set(spec.name, { shape: [...spec.shape], data });
  }
  return params;
}

type InitFn = (spec: ParamSpec, data: Float32Array, rng: Rng) => void;

const isLayerNormWeight = (name: string): boolean => /(^|\.)ln_(1|2|f)\.weight$/.test(name);
const isLayerNormBias = (name: string): boolean => /(^|\.)ln_(1|2|f)\.bias$/.test(name);

function gpt2Init(config: GPTConfig): InitFn {
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
  return (spec, data, rng) => {
    if (isLayerNormWeight(spec.name)) {
      data.fill(1);
    } else if (spec.name.endsWith('.weight')) {
      const std = /\.(attn|mlp)\.c_proj\.weight$/.test(spec.name) ? residualStd : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    } // biases (and LayerNorm shifts) stay 0
  };
}

function pytorchInit(shapes: Map<string, number[]>): InitFn {
  /** fan_in of the linear layer a weight or bias belongs to. */
  const fanIn = (name: string): number => {
    const weight = name.replace(/\.bias$/, '.weight');
    const shape = shapes.get(weight);
    if (!shape || shape.length !== 2) throw new Error(`randomInit: no linear weight for '${name}'`);
    return weight === LM_HEAD || weight === CLASSIFIER_HEAD ? shape[1]! : shape[0]!; // [out, in] heads vs Conv1D [in, out]
  };
  return (spec, data, rng) => {
    const { name } = spec;
    if (isLayerNormWeight(name)) {
      data.fill(1);
    } else if (isLayerNormBias(name)) {
      // shift 0
    } else if (name === 'wte.weight' || name === 'wpe.weight') {
      for (let i = 0; i < data.length; i++) data[i] = rng.normal();
    } else {
      const bound = 1 / Math.sqrt(fanIn(name));
      for (let i = 0; i < data.length; i++) data[i] = (2 * rng.next() - 1) * bound;
    }
  };
}

// ---- the forward pass ----

/** Looks up a parameter by its GPT-2 checkpoint name (an initializer or a graph input). */
export type ParamFn = (name: string) => Value;

/** Attention over what layer `layer` may see: q, k, v [B, H, T, hd] for the new tokens → [B, T, C]. */
export type AttendFn = (layer: number, q: Value, k: Value, v: Value) => Value;

/** Dropout hook (identity outside training); `site` names where it applies, as in the book. */
export type DropoutFn = (x: Value, site: string) => Value;

/**
 * Hook on each linear layer of the blocks: gets the layer's name (e.g. `h.0.attn.c_attn`), its
 * input x and output y = x·W + b, and returns the output to use. LoRA adds its low-rank path
 * here (src/train/lora.ts); without a hook the layer is just x·W + b.
 */
export type AdaptFn = (prefix: string, x: Value, y: Value) => Value;

const noDropout: DropoutFn = (x) => x;

/** tokens, positions: int64 [B, T] → final hidden states after ln_f: [B, T, C]. */
export function transformer(cfg: GPTConfig, p: ParamFn, tokens: Value, positions: Value, attend: AttendFn, dropout = noDropout, adapt?: AdaptFn): Value {
  let x = op.add(op.gather(p('wte.weight'), tokens), op.gather(p('wpe.weight'), positions)); // [B, T, C]
  x = dropout(x, 'emb');
  for (let l = 0; l < cfg.nLayer; l++) x = block(cfg, x, p, l, attend, dropout, adapt);
  return layerNorm(x, p, 'ln_f', cfg.layerNormEpsilon);
}

function block(cfg: GPTConfig, x: Value, p: ParamFn, l: number, attend: AttendFn, dropout: DropoutFn, adapt?: AdaptFn): Value {
  const eps = cfg.layerNormEpsilon;
  x = op.add(x, attention(cfg, layerNorm(x, p, `h.${l}.ln_1`, eps), p, l, attend, dropout, adapt)); // pre-LN
  return op.add(x, mlp(layerNorm(x, p, `h.${l}.ln_2`, eps), p, l, dropout, adapt));
}

function attention(cfg: GPTConfig, x: Value, p: ParamFn, l: number, attend: AttendFn, dropout: DropoutFn, adapt?: AdaptFn): Value {
  const [q, k, v] = splitHeads(linear(x, p, `h.${l}.attn.c_attn`, cfg.qkvBias, adapt), cfg.nHead, cfg.nEmbd / cfg.nHead);
  const y = attend(l, q, k, v); // [B, T, C], heads merged
  return dropout(linear(y, p, `h.${l}.attn.c_proj`, true, adapt), `h.${l}.resid_attn`);
}

function mlp(x: Value, p: ParamFn, l: number, dropout: DropoutFn, adapt?: AdaptFn): Value {
  const h = op.gelu(linear(x, p, `h.${l}.mlp.c_fc`, true, adapt), 'tanh'); // GPT-2's gelu_new
  return dropout(linear(h, p, `h.${l}.mlp.c_proj`, true, adapt), `h.${l}.resid_mlp`);
}

function linear(x: Value, p: ParamFn, prefix: string, bias: boolean, adapt: AdaptFn | undefined): Value {
  let y = op.matmul(x, p(`${prefix}.weight`));
  if (bias) y = op.add(y, p(`${prefix}.bias`));
  return adapt ? adapt(prefix, x, y) : y;
}

function layerNorm(x: Value, p: ParamFn, prefix: string, eps: number): Value {
  return op.layerNorm(x, p(`${prefix}.weight`), p(`${prefix}.bias`), eps);
}

// ---- heads ----

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
  return op.gemm(h, p(CLASSIFIER_HEAD), { transB: true });
}

// ---- attention ----

/** The additive mask's value for a hidden position: exp(-1e9 - max) is exactly 0 in float32. */
export const HIDDEN = -1e9;

/** The additive causal mask [T, T], row-major: 0 where t' ≤ t, HIDDEN above the diagonal. */
export function causalMask(T: number): Float32Array {
  const mask = new Float32Array(T * T);
  for (let t = 0; t < T; t++) mask.fill(HIDDEN, t * T + t + 1, (t + 1) * T);
  return mask;
}

/**
 * Causal self-attention within the new tokens (training, classification): `mask` [1, 1, T, T]
 * holds causalMask(T); `dropout` applies to the attention weights (site h.<l>.attn_weights).
 */
export function causalAttention(cfg: GPTConfig, mask: Value, dropout = noDropout): AttendFn {
  const [C, H] = [cfg.nEmbd, cfg.nHead];
  const hd = C / H;
  return (l, qh, kh, vh) => {
    const kT = op.transpose(kh, [0, 1, 3, 2]);
    const scores = op.add(op.matmul(op.mul(qh, op.scalar(qh, 1 / Math.sqrt(hd))), kT), mask); // [B, H, T, T]
    const y = op.matmul(dropout(op.softmax(scores, -1), `h.${l}.attn_weights`), vh); // [B, H, T, hd]
    return mergeHeads(y, C);
  };
}

/**
 * The KV cache kept on the device between runs (GPU providers that can hold outputs there): layer
 * l's whole cache arrives as inputs cache_k.l, cache_v.l [S, H, P, hd] for all S slots, the batch's
 * rows' first `readLen` positions (int64 [1]) are gathered by `slots` (int64 [B]), and the new
 * tokens' k and v are scattered into it at `writeAt` (int64 [B, H, T, 3]: slot, head, position),
 * giving the next run's cache as outputs. Only token ids, positions, the mask, these indices and
 * the logits cross the bus.
 */
export interface DeviceCache {
  slots: Value;
  readLen: Value;
  writeAt: Value;
}

/**
 * Attention over a KV cache plus the new tokens (generation); `mask` [B, 1, T, P+T] hides what
 * each row may not see. On the host (no `device`), layer l's cache arrives as graph inputs
 * past_k.l, past_v.l [B, H, P, hd], already in the layout attention reads, and the new tokens' k
 * and v ([B, H, T, hd]) are pushed to `presents` (k, v per layer) for the caller to return and
 * store. With `device`, `presents` gets the updated caches instead (DeviceCache). Scores against
 * the cache and against the new tokens are computed apart and joined, so the cache itself is never
 * concatenated or transposed (copies that cost more than the matmuls at large batches).
 */
export function cachedAttention(cfg: GPTConfig, mask: Value, presents: Value[], device?: DeviceCache): AttendFn {
  const [C, H] = [cfg.nEmbd, cfg.nHead];
  const hd = C / H;
  let pastAndNew: Value | undefined; // [P, T]: where the joined scores split, the same in every layer
  let scale: Value | undefined; // 1/√hd as hd values, not a scalar: ORT folds a scalar into the matmul's alpha, and MLAS's M=1 kernels take alpha 1 only
  return (l, q, kh, vh) => {
    const g = q.graph;
    scale ??= g.constant(new Float32Array(hd).fill(1 / Math.sqrt(hd)), [hd], 'scale');
    const qh = op.mul(q, scale); // [B, H, T, hd]
    let pastK: Value, pastV: Value;
    if (device) {
      const [cacheK, cacheV] = (['k', 'v'] as const).map((kind) => g.input(`cache_${kind}.${l}`, 'float32', ['S', H, 'P', hd]));
      const read = (cache: Value) => op.gather(op.sliceDynamic(cache, op.ints(g, [0]), device.readLen, 2), device.slots); // [B, H, readLen, hd]
      [pastK, pastV] = [read(cacheK!), read(cacheV!)];
      presents.push(op.scatterND(cacheK!, device.writeAt, kh, 'none'), op.scatterND(cacheV!, device.writeAt, vh, 'none'));
    } else {
      presents.push(kh, vh);
      pastK = g.input(`past_k.${l}`, 'float32', ['B', H, 'P', hd]);
      pastV = g.input(`past_v.${l}`, 'float32', ['B', H, 'P', hd]);
    }
    const scores = op.concat([op.matmul(qh, op.transpose(pastK, [0, 1, 3, 2])), op.matmul(qh, op.transpose(kh, [0, 1, 3, 2]))], -1);
    const probs = op.softmax(op.add(scores, mask), -1); // [B, H, T, P+T]
    pastAndNew ??= op.concat([op.shapeOf(pastK, 2, 3), op.shapeOf(kh, 2, 3)], 0);
    const [probsPast, probsNew] = op.splitDynamic(probs, pastAndNew, -1, [pastK.shape[2]!, kh.shape[2]!]); // [B, H, T, P], [B, H, T, T]
    return mergeHeads(op.add(op.matmul(probsPast!, pastV), op.matmul(probsNew!, vh)), C);
  };
}

// With one new token per row (a decode-only graph, T = 1) moving the head axis past T moves no
// data: a reshape does it, where ORT would run a Transpose kernel.

/** [B, T, 3C] (q, k, v side by side) → q, k, v [B, H, T, hd]: one reshape, transpose and split for the three. */
function splitHeads(qkv: Value, nHead: number, headDim: number): [Value, Value, Value] {
  const heads = qkv.shape[1] === 1 ? op.reshape(qkv, [0, 3 * nHead, 1, headDim]) : op.transpose(op.reshape(qkv, [0, 0, 3 * nHead, headDim]), [0, 2, 1, 3]); // [B, 3H, T, hd]
  return op.split(heads, [nHead, nHead, nHead], 1) as [Value, Value, Value];
}

/** Merge heads back: [B, H, T, hd] → [B, T, C]. */
function mergeHeads(y: Value, nEmbd: number): Value {
  return y.shape[2] === 1 ? op.reshape(y, [0, 1, nEmbd]) : op.reshape(op.transpose(y, [0, 2, 1, 3]), [0, 0, nEmbd]);
}

// ---- placing the parameters in a graph ----

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
