// The numeric kernels under the sampler (sampler.ts): plain loops over typed arrays, since each
// runs over the whole vocabulary once per generated token. Pure functions, no state.
import { expWeights } from './exp-kernel.js';

export interface TokenLogprob {
  token: number;
  logprob: number;
}

/** A renormalised distribution over a subset of the vocabulary. */
export interface Distribution {
  ids: Int32Array;
  probs: Float64Array; // sums to 1
}

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

/** 0, 1, …, n − 1: every token id as a candidate. */
export function iota(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/** Σ w. */
export function total(w: Float64Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i]!;
  return s;
}

/** Unnormalised softmax weights exp((x - max) / T): the most likely candidate has weight exactly 1. */
export function softmaxWeights(logits: ArrayLike<number>, ids: Int32Array, temperature: number): Distribution {
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
export function keepFrom(d: Distribution, threshold: number, ties = Infinity): Distribution {
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
export function nucleus(d: Distribution, topP: number): Distribution {
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
 * cutoff, should rounding keep the sum short). Sorting every candidate is slow on a flat
 * distribution; instead the top 16 bits of each float64 — exponent and 4 mantissa bits, ordered
 * like the values — put it in a 1/16-octave bucket in one pass, whole buckets are taken heaviest
 * first, and only the bucket where the sum crosses is sorted.
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
  let last = 0;
  for (let i = 0; i < d.ids.length; i++) {
    if (d.probs[i] === 0) continue; // e.g. a token a constraint masked out, kept by top-k
    cum += d.probs[i]!;
    if (u < cum) return d.ids[i]!;
    last = i;
  }
  return d.ids[last]!; // u within rounding error of 1: the last token that can be drawn
}
