// Next-token sampling with OpenAI/vLLM semantics, as small pure functions plus a per-request
// `Sampler` that holds the only state (generated-token counts and a seeded RNG). A server doing
// continuous batching creates one Sampler per request; nothing here is global.
//
// Pipeline for one position:
//   raw logits ──► logprobs, when asked for (log_softmax of the RAW logits, like OpenAI/vLLM)
//              └─► adjustLogits: logit_bias, repetition, frequency/presence penalties
//                  ├─ temperature 0: argmax
//                  └─ / temperature ─► softmax ─► top-k ─► top-p ─► min-p ─► renormalise ─► draw

import { randomInt } from 'node:crypto';
import { InvalidParameterError } from './errors.js';
import { expWeights } from './exp-kernel.js';
import { Rng } from './rng.js';
import { VOCAB_SIZE } from './tokenizer.js';

export interface SamplingOptions {
  /** Default 1. 0 (or below 1e-5, as in vLLM) means greedy argmax. */
  temperature?: number;
  /** Keep the k most likely tokens. 0, -1 or undefined = off. */
  topK?: number;
  /** Nucleus: smallest set whose cumulative probability ≥ topP. Default 1 (off). */
  topP?: number;
  /** Drop tokens whose probability is below minP × (probability of the most likely token). Default 0. */
  minP?: number;
  /** OpenAI: subtracted once from every token generated at least once. [-2, 2]. */
  presencePenalty?: number;
  /** OpenAI: subtracted once per earlier occurrence in the generated text. [-2, 2]. */
  frequencyPenalty?: number;
  /** HF/vLLM: for tokens in prompt or output, positive logits ÷ p, negative × p. Default 1 (off). */
  repetitionPenalty?: number;
  /** token id → bias added to its logit, clamped to [-100, 100]. */
  logitBias?: Record<number, number>;
  /** Same seed + same logits → same tokens. Default: random (see Sampler.seed). */
  seed?: number;
  /** Return this many top alternatives (0–20) with each token. */
  logprobs?: number;
  /** Keep generating after <|endoftext|> (vLLM). Used by `finish` in stop.ts, not by sampling. */
  ignoreEos?: boolean;
  maxTokens: number;
  stop?: string[];
}

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampleResult {
  token: number;
  /**
   * Present when `logprobs` was requested: log p(token) under the raw model distribution (before
   * temperature, penalties, filters). Not computed otherwise: a log-softmax over the vocabulary
   * costs as much as the rest of a greedy step.
   */
  logprob?: number;
  /** Present when `logprobs` was requested: that many entries, most likely first, raw distribution. */
  topLogprobs?: TokenLogprob[];
}

/** Below this temperature, dividing by it only adds float noise: sample greedily (vLLM's _SAMPLING_EPS). */
const GREEDY_TEMPERATURE = 1e-5;
const MAX_LOGPROBS = 20;

// ───────────────────────────── validation ─────────────────────────────

/** Throws InvalidParameterError (with the API's snake_case name) for an out-of-range option. */
export function validateSamplingOptions(o: SamplingOptions, vocabSize = VOCAB_SIZE): void {
  const fail = (param: string, msg: string): never => {
    throw new InvalidParameterError(param, msg);
  };
  const num = (v: number | undefined): v is number => v !== undefined;
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) fail('max_tokens', `must be a non-negative integer, got ${o.maxTokens}`);
  if (num(o.temperature) && !(o.temperature >= 0 && Number.isFinite(o.temperature))) fail('temperature', `must be ≥ 0, got ${o.temperature}`);
  if (num(o.topK) && !(Number.isInteger(o.topK) && o.topK >= -1)) fail('top_k', `must be an integer ≥ -1 (0 or -1 = off), got ${o.topK}`);
  if (num(o.topP) && !(o.topP >= 0 && o.topP <= 1)) fail('top_p', `must be in [0, 1], got ${o.topP}`);
  if (num(o.minP) && !(o.minP >= 0 && o.minP <= 1)) fail('min_p', `must be in [0, 1], got ${o.minP}`);
  if (num(o.presencePenalty) && !(Math.abs(o.presencePenalty) <= 2)) fail('presence_penalty', `must be in [-2, 2], got ${o.presencePenalty}`);
  if (num(o.frequencyPenalty) && !(Math.abs(o.frequencyPenalty) <= 2)) fail('frequency_penalty', `must be in [-2, 2], got ${o.frequencyPenalty}`);
  if (num(o.repetitionPenalty) && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) {
    fail('repetition_penalty', `must be > 0, got ${o.repetitionPenalty}`);
  }
  if (num(o.seed) && !Number.isSafeInteger(o.seed)) fail('seed', `must be an integer, got ${o.seed}`);
  if (num(o.logprobs) && !(Number.isInteger(o.logprobs) && o.logprobs >= 0 && o.logprobs <= MAX_LOGPROBS)) {
    fail('logprobs', `must be an integer in [0, ${MAX_LOGPROBS}], got ${o.logprobs}`);
  }
  for (const [key, bias] of Object.entries(o.logitBias ?? {})) {
    const id = Number(key); // JSON object keys are strings
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) fail('logit_bias', `invalid token id '${key}' (vocabulary has ${vocabSize} tokens)`);
    if (typeof bias !== 'number' || !Number.isFinite(bias)) fail('logit_bias', `bias for token ${key} must be a finite number, got ${String(bias)}`);
  }
  if (o.stop !== undefined && !(Array.isArray(o.stop) && o.stop.every((s) => typeof s === 'string'))) fail('stop', 'must be an array of strings');
}

// ───────────────────────────── pure helpers ─────────────────────────────

/**
 * log Σ exp(x), in float64. Also the guard against a broken forward pass: NaN or +Infinity would
 * silently turn every probability into NaN, so it throws instead.
 */
export function logSumExp(x: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (Number.isNaN(v) || v === Infinity) throw new Error(`logits contain ${v} at index ${i} (did the model diverge?)`);
    if (v > max) max = v;
  }
  if (max === -Infinity) throw new Error('logits are all -Infinity: no token can be sampled');
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  return max + Math.log(sum);
}

/** Index of the largest value; ties go to the lowest index (deterministic greedy decoding). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * argmax that is also the guard against a broken forward pass (NaN, +Infinity, or nothing
 * finite), in the same single pass: the common case costs one comparison per logit.
 */
export function checkedArgmax(x: ArrayLike<number>): number {
  let best = -1;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v <= max) continue;
    if (Number.isNaN(v) || v === Infinity) throw new Error(`logits contain ${v} at index ${i} (did the model diverge?)`);
    [best, max] = [i, v];
  }
  if (best < 0) throw new Error('logits are all -Infinity: no token can be sampled');
  return best;
}

/**
 * Indices of the k largest values, largest first, ties → lower index. Partial selection with a
 * size-k min-heap: O(V log k), so top-k 40 over 50,257 logits never sorts the whole vocabulary.
 */
export function topKIndices(x: ArrayLike<number>, k: number): number[] {
  k = Math.min(k, x.length);
  // "a ranks below b": smaller value, or equal value and larger index.
  const below = (a: number, b: number): boolean => x[a]! < x[b]! || (x[a]! === x[b]! && a > b);
  const heap: number[] = []; // heap[0] is the worst of the current k best
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && below(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && below(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = 0; i < x.length; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0; ) {
        const p = (c - 1) >> 1;
        if (!below(heap[c]!, heap[p]!)) break;
        [heap[c], heap[p]] = [heap[p]!, heap[c]!];
        c = p;
      }
    } else if (k > 0 && below(heap[0]!, i)) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
}

/** The n most likely tokens under log_softmax(logits), most likely first. */
export function topLogprobs(logits: ArrayLike<number>, n: number, lse = logSumExp(logits)): TokenLogprob[] {
  return topKIndices(logits, n).map((token) => ({ token, logprob: logits[token]! - lse }));
}

export interface PenaltyHistory {
  /** How many times each token has been GENERATED so far (OpenAI's c[j]); the prompt is not counted. */
  outputCounts: ReadonlyMap<number, number>;
  /** Prompt tokens: repetition_penalty (HF/vLLM) covers prompt ∪ output; the OpenAI penalties do not. */
  promptTokens?: ReadonlySet<number>;
}

export type PenaltyOptions = Pick<SamplingOptions, 'presencePenalty' | 'frequencyPenalty' | 'repetitionPenalty' | 'logitBias'>;

/**
 * Raw logits → logits the sampler draws from: a new float64 array (the input is not touched), or
 * the input itself when no option changes anything, the common case, which then costs no copy.
 * Order follows vLLM: logit_bias, then repetition penalty, then
 *   logit[j] -= c[j] · frequency_penalty + (c[j] > 0) · presence_penalty      (OpenAI's formula)
 * Only the bias and repetition steps interact (one adds, one scales); the last step commutes.
 */
export function adjustLogits<T extends ArrayLike<number>>(logits: T, opts: PenaltyOptions, history: PenaltyHistory): T | Float64Array {
  const biases = Object.entries(opts.logitBias ?? {});
  const rep = opts.repetitionPenalty ?? 1;
  const freq = opts.frequencyPenalty ?? 0;
  const pres = opts.presencePenalty ?? 0;
  if (!biases.length && rep === 1 && freq === 0 && pres === 0) return logits;
  const out = new Float64Array(logits); // a float64 copy
  for (const [key, bias] of biases) {
    const id = Number(key);
    if (id >= 0 && id < out.length) out[id] = out[id]! + Math.min(100, Math.max(-100, bias));
  }
  if (rep !== 1) {
    const penalise = (id: number): void => {
      const v = out[id]!;
      out[id] = v > 0 ? v / rep : v * rep;
    };
    const prompt = history.promptTokens ?? new Set<number>();
    for (const id of prompt) if (id < out.length) penalise(id);
    for (const id of history.outputCounts.keys()) if (!prompt.has(id) && id < out.length) penalise(id);
  }
  if (freq !== 0 || pres !== 0) {
    for (const [id, count] of history.outputCounts) {
      if (count > 0 && id < out.length) out[id] = out[id]! - count * freq - pres;
    }
  }
  return out;
}

export interface FilterOptions {
  temperature: number; // > 0 here; temperature 0 never reaches the distribution
  topK?: number;
  topP?: number;
  minP?: number;
}

/** A renormalised distribution over a subset of the vocabulary. */
export interface Distribution {
  ids: Int32Array;
  probs: Float64Array; // sums to 1
}

/**
 * softmax(logits / T) restricted by top-k, then top-p, then min-p, renormalised. The most likely
 * token always survives every filter, so the result is never empty. Written as plain loops over
 * typed arrays: this runs once per generated token over the whole vocabulary.
 */
export function samplingDistribution(logits: ArrayLike<number>, f: FilterOptions): Distribution {
  const V = logits.length;
  const topK = f.topK ?? 0;
  const topP = f.topP ?? 1;
  const minP = f.minP ?? 0;

  // Candidates: ids are in ascending-id order, or (after top-k) by descending logit with ties in
  // ascending-id order. Either way equal weights appear lowest id first, which the filters rely on.
  const ids = topK > 0 && topK < V ? Int32Array.from(topKIndices(logits, topK)) : iota(V);
  let d = softmaxWeights(logits, ids, f.temperature);
  if (topP < 1) d = nucleus(d, topP);
  if (minP > 0) {
    // p_i ≥ minP · p_max  ⇔  w_i ≥ minP, since w_max = 1; the normalisation cancels out.
    d = keepFrom(d, minP);
  }
  const sum = total(d.probs);
  for (let i = 0; i < d.probs.length; i++) d.probs[i]! /= sum;
  return d;
}

function iota(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

function total(w: Float64Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i]!;
  return s;
}

/** Unnormalised softmax weights exp((x - max) / T): the most likely candidate has weight exactly 1. */
function softmaxWeights(logits: ArrayLike<number>, ids: Int32Array, temperature: number): Distribution {
  const w = new Float64Array(ids.length);
  if (ids.length === logits.length) {
    exponentials(logits, temperature, w); // the whole vocabulary (ids = 0..V-1): no indirection
  } else {
    let max = -Infinity;
    for (let i = 0; i < ids.length; i++) max = Math.max(max, logits[ids[i]!]!);
    for (let i = 0; i < ids.length; i++) w[i] = Math.exp((logits[ids[i]!]! - max) / temperature);
  }
  return { ids, probs: w };
}

/**
 * The candidates heavier than `threshold`, plus the first `ties` (in order) of exactly that
 * weight: every one of them by default, i.e. weight ≥ threshold. Plain loops, no per-candidate
 * callback: on a flat distribution this runs over the whole vocabulary.
 */
function keepFrom(d: Distribution, threshold: number, ties = Infinity): Distribution {
  const kept = (w: number, tiesLeft: number) => w > threshold || (w === threshold && tiesLeft > 0);
  let n = 0;
  for (let i = 0, t = ties; i < d.probs.length; i++) {
    const w = d.probs[i]!;
    if (kept(w, t)) {
      n++;
      if (w === threshold) t--;
    }
  }
  const ids = new Int32Array(n);
  const probs = new Float64Array(n);
  for (let i = 0, j = 0, t = ties; j < n; i++) {
    const w = d.probs[i]!;
    if (kept(w, t)) {
      if (w === threshold) t--;
      ids[j] = d.ids[i]!;
      probs[j++] = w;
    }
  }
  return { ids, probs };
}

/**
 * Top-p: the smallest set of most likely tokens whose mass reaches topP of the total (≥ 1 token).
 * Find the cutoff weight (nucleusCutoff), then keep the ids above it plus enough ties at it,
 * lowest id first.
 */
function nucleus(d: Distribution, topP: number): Distribution {
  const sum = total(d.probs);
  // Shortcut: n tokens that each hold less than (1 - topP)/n of the mass hold less than 1 - topP
  // together, so none of them can be needed. For a peaked distribution this leaves very few.
  const floor = ((1 - topP) * sum) / d.ids.length;
  const { cutoff, needed } = nucleusCutoff(keepFrom(d, floor).probs, topP * sum);
  let above = 0;
  for (let i = 0; i < d.probs.length; i++) if (d.probs[i]! > cutoff) above++;
  return keepFrom(d, cutoff, needed - above); // needed − above: how many of weight exactly `cutoff`
}

/**
 * out[i] = exp((logits[i] − max) / T) over every logit, the heaviest exactly 1; returns Σ out. The
 * wasm SIMD kernel where there is one (exp-kernel.ts), else Math.exp.
 */
function exponentials(logits: ArrayLike<number>, temperature: number, out: Float64Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  const sum = expWeights(logits, max, 1 / temperature, out);
  if (sum !== undefined) return sum;
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += out[i] = Math.exp((logits[i]! - max) / temperature);
  return total;
}

/**
 * The same draw as drawFrom(samplingDistribution(logits, { temperature }), u) when no filter
 * applies, without building the distribution: the exponentials go into `scratch` (reused by the
 * caller) and the walk compares against u·Σ instead of normalising every weight first. Half the
 * passes over the vocabulary, and no fresh vocabulary-sized arrays.
 */
export function drawSoftmax(logits: ArrayLike<number>, temperature: number, u: number, scratch: Float64Array): number {
  const n = logits.length;
  const target = u * exponentials(logits, temperature, scratch);
  let cum = 0;
  let last = 0;
  for (let i = 0; i < n; i++) {
    const w = scratch[i]!;
    if (w === 0) continue;
    cum += w;
    if (target < cum) return i;
    last = i;
  }
  return last; // u·Σ within rounding error of Σ
}

/** Index of the high 32-bit word of a float64 in a Uint32Array view (the platform's byte order). */
const HIGH_WORD = new Uint32Array(new Float64Array([1]).buffer)[1] === 0x3ff00000 ? 1 : 0;

/**
 * Walking from the heaviest of the weights `w` (all > 0) down, the weight at which the running
 * sum first reaches `target`, and how many weights that took (all of them, the lightest as the
 * cutoff, should rounding keep the sum short). Sorting every candidate cost 5 ms per token on a
 * flat distribution (50,257 of them); instead the top 16 bits of each float64 — exponent and 4
 * mantissa bits, ordered like the values — put it in a 1/16-octave bucket in one pass, whole
 * buckets are taken heaviest first, and only the bucket where the sum crosses is sorted (8× less
 * time, measured on the embedded and on a random-weight model).
 */
function nucleusCutoff(w: Float64Array, target: number): { cutoff: number; needed: number } {
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length * 2);
  const key = (i: number) => bits[2 * i + HIGH_WORD]! >>> 16;
  let top = 0;
  let bottom = 0xffff;
  for (let i = 0; i < w.length; i++) {
    const k = key(i);
    if (k > top) top = k;
    if (k < bottom) bottom = k;
  }
  const mass = new Float64Array(top - bottom + 1); // bucket b holds key top − b
  const count = new Int32Array(top - bottom + 1);
  for (let i = 0; i < w.length; i++) {
    const b = top - key(i);
    mass[b] = mass[b]! + w[i]!;
    count[b]!++;
  }
  let cum = 0;
  let needed = 0;
  for (let b = 0; b < mass.length; b++) {
    if (cum + mass[b]! < target) {
      cum += mass[b]!;
      needed += count[b]!;
      continue;
    }
    const inBucket = new Float64Array(count[b]!);
    for (let i = 0, j = 0; i < w.length; i++) if (top - key(i) === b) inBucket[j++] = w[i]!;
    inBucket.sort(); // ascending
    for (let j = inBucket.length - 1; j >= 0; j--) {
      cum += inBucket[j]!;
      needed++;
      if (cum >= target) return { cutoff: inBucket[j]!, needed };
    }
  }
  let lightest = Infinity;
  for (let i = 0; i < w.length; i++) lightest = Math.min(lightest, w[i]!);
  return { cutoff: lightest, needed: w.length };
}

/** Inverse-CDF draw with u uniform in [0, 1). */
export function drawFrom(d: Distribution, u: number): number {
  let cum = 0;
  for (let i = 0; i < d.ids.length; i++) {
    cum += d.probs[i]!;
    if (u < cum) return d.ids[i]!;
  }
  return d.ids[d.ids.length - 1]!; // u within rounding error of 1
}

// ───────────────────────────── per-request state ─────────────────────────────

/** One per generation request: owns the RNG and the counts the penalties need. */
export class Sampler {
  /** The seed actually used (random when none was given), so a run can be reproduced. */
  readonly seed: number;
  private readonly rng: Rng;
  private readonly opts: SamplingOptions;
  private readonly promptTokens: ReadonlySet<number>;
  private readonly outputCounts = new Map<number, number>();
  private count = 0;
  /** drawSoftmax's exponentials, one vocabulary-sized buffer per request, reused every step. */
  private weights: Float64Array | undefined;

  constructor(
    opts: SamplingOptions,
    promptTokens: readonly number[] = [],
    private readonly vocabSize = VOCAB_SIZE,
  ) {
    validateSamplingOptions(opts, vocabSize);
    this.opts = { ...opts }; // later edits to the caller's object must not change this request
    this.seed = opts.seed ?? randomInt(0, 2 ** 31);
    this.rng = new Rng(this.seed);
    this.promptTokens = new Set(promptTokens);
  }

  /** Tokens sampled so far. */
  get generated(): number {
    return this.count;
  }

  sample(logits: Float32Array): SampleResult {
    if (logits.length !== this.vocabSize) throw new Error(`sample: expected ${this.vocabSize} logits, got ${logits.length}`);
    const o = this.opts;
    const best = checkedArgmax(logits); // throws on NaN/Infinity before anything is drawn
    const adjusted = adjustLogits(logits, o, { outputCounts: this.outputCounts, promptTokens: this.promptTokens });
    const temperature = o.temperature ?? 1;
    const filtered = ((o.topK ?? 0) > 0 && o.topK! < this.vocabSize) || (o.topP ?? 1) < 1 || (o.minP ?? 0) > 0;
    const token =
      temperature < GREEDY_TEMPERATURE
        ? adjusted === logits
          ? best
          : argmax(adjusted)
        : filtered
          ? drawFrom(samplingDistribution(adjusted, { temperature, topK: o.topK, topP: o.topP, minP: o.minP }), this.rng.next())
          : drawSoftmax(adjusted, temperature, this.rng.next(), (this.weights ??= new Float64Array(this.vocabSize)));

    this.outputCounts.set(token, (this.outputCounts.get(token) ?? 0) + 1);
    this.count++;
    const result: SampleResult = { token };
    if (o.logprobs !== undefined) {
      const lse = logSumExp(logits);
      result.logprob = logits[token]! - lse;
      result.topLogprobs = topLogprobs(logits, o.logprobs, lse);
    }
    return result;
  }
}
