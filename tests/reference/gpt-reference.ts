// An independent float64 GPT-2 forward pass in plain loops, used by tests to check the
// ONNX graphs' numerics. Shares only types and parameterSpecs with src/.
import type { GPTConfig } from '../../src/model/config.js';
import { parameterSpecs } from '../../src/model/gpt.js';
import type { Params } from '../../src/model/params.js';

type Vec = Float64Array;

function get(params: Params, name: string): Float32Array {
  const t = params.get(name);
  if (!t) throw new Error(`reference: missing parameter '${name}'`);
  return t.data;
}

/** gelu_new / gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function referenceGelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** LayerNorm over one vector with biased variance (divide by C). Omit weight/bias for the plain normalization. */
export function referenceLayerNorm(x: ArrayLike<number>, eps: number, weight?: ArrayLike<number>, bias?: ArrayLike<number>): Vec {
  const C = x.length;
  let mean = 0;
  for (let i = 0; i < C; i++) mean += x[i]!;
  mean /= C;
  let variance = 0;
  for (let i = 0; i < C; i++) variance += (x[i]! - mean) ** 2;
  variance /= C;
  const inv = 1 / Math.sqrt(variance + eps);
  const out = new Float64Array(C);
  for (let i = 0; i < C; i++) out[i] = (x[i]! - mean) * inv * (weight ? weight[i]! : 1) + (bias ? bias[i]! : 0);
  return out;
}

/** y = x·W + b with W in Conv1D layout [in, out] (row-major). */
function linear(x: Vec, W: Float32Array, outDim: number, b?: Float32Array): Vec {
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) y[o] = b ? b[o]! : 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const row = i * outDim;
    for (let o = 0; o < outDim; o++) y[o]! += xi * W[row + o]!;
  }
  return y;
}

/**
 * Logits (length vocabSize) at every position 0..T-1: the final hidden state times the output
 * head [vocab, C], which is `lm_head.weight` when the parameters have one (an untied model), else
 * the token embedding wte (GPT-2's tied head).
 */
export function referenceForward(config: GPTConfig, params: Params, tokens: number[]): Float64Array[] {
  const head = params.has('lm_head.weight') ? get(params, 'lm_head.weight') : get(params, 'wte.weight');
  const C = config.nEmbd;
  return referenceHidden(config, params, tokens).map((y) => {
    const logits = new Float64Array(config.vocabSize);
    for (let v = 0; v < config.vocabSize; v++) {
      let dot = 0;
      for (let c = 0; c < C; c++) dot += y[c]! * head[v * C + c]!;
      logits[v] = dot;
    }
    return logits;
  });
}

/**
 * GPT2ForSequenceClassification: the head `score.weight` [K, C] applied to the final hidden
 * state of the last token (the caller passes the unpadded tokens).
 */
export function referenceClassifierLogits(config: GPTConfig, params: Params, tokens: number[]): Float64Array {
  const hidden = referenceHidden(config, params, tokens);
  const y = hidden[hidden.length - 1]!;
  const score = get(params, 'score.weight');
  const C = config.nEmbd;
  const K = score.length / C;
  const out = new Float64Array(K);
  for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) out[k]! += y[c]! * score[k * C + c]!;
  return out;
}

/** Hidden states after the final LayerNorm (length nEmbd) at every position 0..T-1. */
export function referenceHidden(config: GPTConfig, params: Params, tokens: number[]): Float64Array[] {
  const C = config.nEmbd, H = config.nHead, d = C / H, T = tokens.length, eps = config.layerNormEpsilon;
  if (T > config.contextLength) throw new Error(`reference: ${T} tokens exceed context length ${config.contextLength}`);
  const wte = get(params, 'wte.weight'), wpe = get(params, 'wpe.weight');
  let xs: Vec[] = tokens.map((tok, t) => {
    if (!Number.isInteger(tok) || tok < 0 || tok >= config.vocabSize) throw new Error(`reference: bad token ${tok}`);
    const x = new Float64Array(C);
    for (let c = 0; c < C; c++) x[c] = wte[tok * C + c]! + wpe[t * C + c]!;
    return x;
  });

  for (let l = 0; l < config.nLayer; l++) {
    const p = (n: string) => get(params, `h.${l}.${n}`);
    // Attention.
    const qkv = xs.map((x) => linear(referenceLayerNorm(x, eps, p('ln_1.weight'), p('ln_1.bias')), p('attn.c_attn.weight'), 3 * C, config.qkvBias ? p('attn.c_attn.bias') : undefined));
    const merged = xs.map(() => new Float64Array(C));
    for (let h = 0; h < H; h++) {
      const off = h * d;
      for (let t = 0; t < T; t++) {
        const q = qkv[t]!;
        const scores = new Float64Array(t + 1); // positions > t are masked out
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const k = qkv[s]!;
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[off + i]! * k[C + off + i]!;
          scores[s] = dot / Math.sqrt(d);
          max = Math.max(max, scores[s]!);
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += scores[s] = Math.exp(scores[s]! - max);
        const out = merged[t]!;
        for (let s = 0; s <= t; s++) {
          const w = scores[s]! / sum, v = qkv[s]!;
          for (let i = 0; i < d; i++) out[off + i]! += w * v[2 * C + off + i]!;
        }
      }
    }
    xs = xs.map((x, t) => add(x, linear(merged[t]!, p('attn.c_proj.weight'), C, p('attn.c_proj.bias'))));
    // MLP.
    xs = xs.map((x) => {
      const hidden = linear(referenceLayerNorm(x, eps, p('ln_2.weight'), p('ln_2.bias')), p('mlp.c_fc.weight'), 4 * C, p('mlp.c_fc.bias')).map(referenceGelu);
      return add(x, linear(hidden, p('mlp.c_proj.weight'), C, p('mlp.c_proj.bias')));
    });
  }

  const lnW = get(params, 'ln_f.weight'), lnB = get(params, 'ln_f.bias');
  return xs.map((x) => referenceLayerNorm(x, eps, lnW, lnB));
}

function add(a: Vec, b: Vec): Vec {
  return a.map((v, i) => v + b[i]!);
}

/** Deterministic PRNG (mulberry32) with Box–Muller normals. */
export function makeRng(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/**
 * Random parameters that exercise every tensor: LayerNorm weights 1 + N(0, 0.1), LayerNorm and
 * other biases N(0, 0.1), all other weights N(0, std). Deterministic from the seed.
 */
export function randomParams(config: GPTConfig, seed: number, std = 0.2): Params {
  const rng = makeRng(seed);
  const params: Params = new Map();
  for (const { name, shape } of parameterSpecs(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isLN = /(^|\.)ln_(1|2|f)\.weight$/.test(name);
    const isBias = name.endsWith('.bias');
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = isLN ? 1 + 0.1 * rng.normal() : isBias ? 0.1 * rng.normal() : std * rng.normal();
    params.set(name, { shape: [...shape], data });
  }
  return params;
}
