// Next-token sampling with OpenAI/vLLM semantics: the pipeline that runs per token, and a
// per-request `Sampler` that holds the only state (generated-token counts and a seeded RNG). A
// server doing continuous batching creates one Sampler per request; nothing here is global. The
// loops over the vocabulary are in sampling-kernels.ts.
//
// Pipeline for one position (under a constraint, Generation masks the logits first; logprobs
// still come from the unmasked ones):
//   raw logits ──► logprobs, when asked for (log_softmax of the RAW logits, like OpenAI/vLLM)
//              └─► adjustLogits: logit_bias, repetition, frequency/presence penalties
//                  ├─ temperature 0: argmax
//                  └─ / temperature ─► softmax ─► top-k ─► top-p ─► min-p ─► renormalise ─► draw

import { randomInt } from 'node:crypto';
import type { ConstraintSpec } from './constraint.js';
import { SamplingOptionError } from './errors.js';
import { Rng } from './rng.js';
import {
  argmax,
  checkedArgmax,
  drawFrom,
  drawSoftmax,
  iota,
  keepFrom,
  logSumExp,
  nucleus,
  softmaxWeights,
  topKIndices,
  topLogprobs,
  total,
  type Distribution,
  type TokenLogprob,
} from './sampling-kernels.js';
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
  /**
   * Structured output (constraint.ts): only tokens that keep the output in this language are
   * sampled. Applied by Generation, which masks the logits before they reach the Sampler.
   */
  constraint?: ConstraintSpec;
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

/** Throws SamplingOptionError for an option outside what the sampler can run. */
export function validateSamplingOptions(o: SamplingOptions, vocabSize = VOCAB_SIZE): void {
  const fail = (option: string, msg: string): never => {
    throw new SamplingOptionError(option, msg);
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

  /**
   * A copy at this sampler's state (its RNG, its counts) that returns no logprobs: what it samples
   * from some logits is what this one would sample from them next (speculative proposals).
   */
  fork(): Sampler {
    const opts = { ...this.opts, logprobs: undefined };
    if ((opts.temperature ?? 1) >= GREEDY_TEMPERATURE) this.weights ??= new Float64Array(this.vocabSize); // scratch both use in turn: no new buffer per fork
    return Object.assign(Object.create(Sampler.prototype) as Sampler, this, { opts, rng: this.rng.clone(), outputCounts: new Map(this.outputCounts) });
  }

  /** Tokens sampled so far. */
  get generated(): number {
    return this.count;
  }

  /**
   * `raw`: the model's logits when `logits` were masked by a constraint (generation.ts):
   * logprobs always describe the raw distribution, constrained or not.
   */
  sample(logits: Float32Array, raw: Float32Array = logits): SampleResult {
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
      const lse = logSumExp(raw);
      result.logprob = raw[token]! - lse;
      result.topLogprobs = topLogprobs(raw, o.logprobs, lse);
    }
    return result;
  }
}
