import { describe, expect, it } from 'vitest';
import { SamplingOptionError } from '../src/model/errors.js';
import { Rng } from '../src/model/rng.js';
import { adjustLogits, Sampler, samplingDistribution, type SamplingOptions } from '../src/model/sampler.js';
import { argmax, checkedArgmax, drawFrom, drawSoftmax, logSumExp, topKIndices } from '../src/model/sampling-kernels.js';
import { finish, StopChecker } from '../src/model/stop.js';
import { encode, EOT, StreamingDetokenizer } from '../src/model/tokenizer.js';
import { fitContext } from '../src/server/admission.js';
import { ContextLengthExceeded } from '../src/server/errors.js';

const V = 100; // a small vocabulary keeps the tests fast; Sampler takes vocabSize for this

function randomLogits(rng: Rng, n = V, scale = 3): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Plain float64 log_softmax, written out by hand as the reference. */
function refLogSoftmax(x: ArrayLike<number>): number[] {
  const xs = Array.from(x);
  const m = Math.max(...xs);
  const z = Math.log(xs.reduce((s, v) => s + Math.exp(v - m), 0));
  return xs.map((v) => v - m - z);
}

/** Run a sampler over a sequence of logits arrays, returning the tokens. */
function run(opts: Omit<SamplingOptions, 'maxTokens'>, logitsSeq: Float32Array[], prompt: number[] = []): number[] {
  const s = new Sampler({ maxTokens: logitsSeq.length, ...opts }, prompt, V);
  return logitsSeq.map((l) => s.sample(l).token);
}

const rng = new Rng(1234);
const seq50 = Array.from({ length: 50 }, () => randomLogits(rng));

describe('pure helpers', () => {
  it('topKIndices matches a full sort, ties going to the lower id', () => {
    const r = new Rng(7);
    for (let trial = 0; trial < 20; trial++) {
      // Rounded values produce many ties.
      const x = Float32Array.from({ length: 500 }, () => Math.round(r.normal() * 4));
      const full = [...x.keys()].sort((a, b) => x[b]! - x[a]! || a - b);
      for (const k of [1, 5, 40, 499, 500, 600]) expect(topKIndices(x, k)).toEqual(full.slice(0, k));
    }
    expect(topKIndices([1, 2], 0)).toEqual([]);
  });

  it('argmax breaks ties toward the lowest id', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });

  it('checkedArgmax = argmax, and rejects NaN, +Infinity and all -Infinity like logSumExp', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 20; i++) {
      const l = randomLogits(rng);
      expect(checkedArgmax(l)).toBe(argmax(l));
    }
    expect(checkedArgmax([-Infinity, 2, 5, 5, -1])).toBe(2);
    expect(() => checkedArgmax([0, 1, Number.NaN])).toThrow(/NaN at index 2/);
    expect(() => checkedArgmax([Number.NaN, 1])).toThrow(/NaN at index 0/);
    expect(() => checkedArgmax([0, Infinity])).toThrow(/Infinity/);
    expect(() => checkedArgmax([-Infinity, -Infinity])).toThrow(/all -Infinity/);
  });

  it('logprobs are computed only when asked for, on the raw logits', () => {
    const l = randomLogits(new Rng(4));
    const plain = new Sampler({ maxTokens: 1, temperature: 0 }, [], V).sample(l);
    expect(plain.logprob).toBeUndefined();
    const scored = new Sampler({ maxTokens: 1, temperature: 0, logprobs: 0, presencePenalty: 1 }, [], V).sample(l);
    expect(scored.token).toBe(plain.token);
    expect(scored.logprob).toBeCloseTo(l[plain.token]! - logSumExp(l), 10);
  });

  it('logSumExp is stable and rejects NaN/Infinity', () => {
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.log(2), 12);
    expect(() => logSumExp([0, Number.NaN])).toThrow(/NaN/);
    expect(() => logSumExp([0, Infinity])).toThrow(/Infinity/);
  });

  it('drawSoftmax draws what drawFrom draws from the unfiltered distribution', () => {
    const rng = new Rng(9);
    const scratch = new Float64Array(V);
    for (const temperature of [0.3, 1, 2.5]) {
      const l = randomLogits(rng);
      l[7] = -Infinity; // a banned token (weight 0) is never drawn
      const d = samplingDistribution(l, { temperature });
      for (let i = 0; i < 500; i++) {
        const u = rng.next();
        const token = drawSoftmax(l, temperature, u, scratch);
        expect(token).toBe(drawFrom(d, u));
        expect(token).not.toBe(7);
      }
    }
  });

  it('drawFrom inverts the CDF', () => {
    const d = { ids: Int32Array.from([7, 3]), probs: Float64Array.from([0.25, 0.75]) };
    expect(drawFrom(d, 0)).toBe(7);
    expect(drawFrom(d, 0.2499)).toBe(7);
    expect(drawFrom(d, 0.25)).toBe(3);
    expect(drawFrom(d, 0.99999999)).toBe(3);
  });
});

describe('adjustLogits', () => {
  const logits = Float32Array.from([1, 2, -1, 0.5, 3]);

  it('applies OpenAI frequency/presence penalties to GENERATED counts only', () => {
    const outputCounts = new Map([[1, 2], [2, 1]]);
    const out = adjustLogits(logits, { frequencyPenalty: 0.5, presencePenalty: 0.25 }, { outputCounts, promptTokens: new Set([0, 4]) });
    // logit[j] -= c[j]·freq + (c[j] > 0)·presence
    expect([...out]).toEqual([1, 2 - 2 * 0.5 - 0.25, -1 - 1 * 0.5 - 0.25, 0.5, 3]);
  });

  it('adds logit_bias, clamped to [-100, 100]', () => {
    const out = adjustLogits(logits, { logitBias: { 0: 5, 4: -250, 3: 1e9 } }, { outputCounts: new Map() });
    expect([...out]).toEqual([6, 2, -1, 100.5, -97]);
  });

  it('repetition penalty divides positive and multiplies negative logits of prompt ∪ output tokens once', () => {
    const out = adjustLogits(logits, { repetitionPenalty: 2 }, { outputCounts: new Map([[1, 3], [2, 1], [3, 1]]), promptTokens: new Set([3, 4]) });
    expect([...out]).toEqual([1, 1, -2, 0.25, 1.5]);
  });

  it('returns the input itself, uncopied, when no option changes anything', () => {
    expect(adjustLogits(logits, { repetitionPenalty: 1, frequencyPenalty: 0, logitBias: {} }, { outputCounts: new Map([[0, 2]]) })).toBe(logits);
    expect(adjustLogits(logits, { presencePenalty: 0.1 }, { outputCounts: new Map() })).not.toBe(logits);
  });

  it('does not modify its input', () => {
    const copy = Float32Array.from(logits);
    adjustLogits(logits, { logitBias: { 0: 1 }, repetitionPenalty: 3, frequencyPenalty: 1 }, { outputCounts: new Map([[0, 1]]) });
    expect(logits).toEqual(copy);
  });

  it('drives what the Sampler picks: frequency penalty stops greedy repetition', () => {
    const l = Float32Array.from({ length: V }, (_, i) => (i === 0 ? 2 : i === 1 ? 1.5 : 0));
    // Token 0 first; after one use its logit is 2 - 1 = 1 < 1.5, so token 1; then 1.5 - 1 = 0.5 < 1 → 0 …
    expect(run({ temperature: 0, frequencyPenalty: 1 }, [l, l, l, l])).toEqual([0, 1, 0, 1]);
    // The prompt does not count for OpenAI penalties…
    expect(run({ temperature: 0, presencePenalty: 2 }, [l], [0, 0, 0])).toEqual([0]);
    // …but does for repetition_penalty: 2/2 = 1 < 1.5.
    expect(run({ temperature: 0, repetitionPenalty: 2 }, [l], [0])).toEqual([1]);
    // logit_bias can force any token.
    expect(run({ temperature: 0, logitBias: { 42: 100 } }, [l])).toEqual([42]);
  });
});

describe('Sampler', () => {
  it('top-k 1 equals greedy', () => {
    const greedy = run({ temperature: 0 }, seq50);
    expect(greedy).toEqual(seq50.map(argmax));
    expect(run({ topK: 1, temperature: 1.5, seed: 1 }, seq50)).toEqual(greedy);
    expect(run({ topK: 1, seed: 99 }, seq50)).toEqual(greedy);
  });

  it('same seed → same tokens; different seeds differ', () => {
    const opts = { temperature: 1, topK: 50, topP: 0.95, seed: 42 };
    const a = run(opts, seq50);
    expect(run(opts, seq50)).toEqual(a);
    expect(run({ ...opts, seed: 43 }, seq50)).not.toEqual(a);
    expect(run({ temperature: 1, seed: 42 }, seq50)).toEqual(run({ temperature: 1, seed: 42 }, seq50));
  });

  it('a fork draws what its sampler would draw next (RNG and penalty counts), without logprobs; forking moves nothing', () => {
    for (const opts of [{ temperature: 1, seed: 5 }, { temperature: 0.7, topP: 0.9, frequencyPenalty: 2, seed: 6 }, { temperature: 0, presencePenalty: 2 }]) {
      const o = { ...opts, maxTokens: 50, logprobs: 2 };
      const [sampler, twin] = [new Sampler(o, [], V), new Sampler(o, [], V)]; // the twin is never forked
      for (let i = 0; i + 3 <= seq50.length; i += 3) {
        const logits = seq50.slice(i, i + 3);
        const fork = sampler.fork();
        const ahead = logits.map((l) => fork.sample(l));
        const own = logits.map((l) => sampler.sample(l));
        expect(ahead.map((r) => r.token)).toEqual(own.map((r) => r.token));
        expect(ahead.every((r) => r.logprob === undefined && r.topLogprobs === undefined)).toBe(true);
        expect(own).toEqual(logits.map((l) => twin.sample(l)));
      }
    }
  });

  it('without a seed, picks a random one and reports it so the run can be repeated', () => {
    const a = new Sampler({ maxTokens: 50 }, [], V);
    const b = new Sampler({ maxTokens: 50 }, [], V);
    expect(Number.isInteger(a.seed)).toBe(true);
    expect(a.seed).not.toBe(b.seed); // 1 in 2^31 chance of a false failure
    const tokens = seq50.map((l) => a.sample(l).token);
    expect(run({ seed: a.seed }, seq50)).toEqual(tokens);
  });

  it('approaches greedy as temperature → 0', () => {
    // Give every argmax a margin of ≥ 0.5 so the limit is reached at a predictable temperature.
    const widened = seq50.map((x) => {
      const y = Float32Array.from(x);
      const best = argmax(y);
      y[best] = y[best]! + 0.5;
      return y;
    });
    const l = widened[0]!;
    const best = argmax(l);
    let prev = 0;
    for (const t of [2, 1, 0.5, 0.1, 0.02]) {
      const d = samplingDistribution(l, { temperature: t });
      const pBest = d.probs[d.ids.indexOf(best)]!;
      expect(pBest).toBeGreaterThan(prev);
      prev = pBest;
    }
    expect(prev).toBeGreaterThan(0.999);
    // At T = 0.01 every other token has weight below exp(-0.5/0.01) = 2e-22.
    expect(run({ temperature: 0.01, seed: 5 }, widened)).toEqual(widened.map(argmax));
    expect(run({ temperature: 1e-9 }, seq50)).toEqual(seq50.map(argmax)); // greedy branch, no division
  });

  it('top-p draws only from the nucleus', () => {
    // p = [0.5, 0.3, 0.1, 0.06, 0.04, 0…]: with top_p 0.75 the nucleus is {0, 1}.
    const p = [0.5, 0.3, 0.1, 0.06, 0.04];
    const l = Float32Array.from({ length: V }, (_, i) => Math.log(p[i] ?? 1e-6));
    const s = new Sampler({ maxTokens: 2000, topP: 0.75, seed: 3 }, [], V);
    const counts = new Map<number, number>();
    for (let i = 0; i < 2000; i++) {
      const t = s.sample(l).token;
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([0, 1]);
    expect(counts.get(0)! / 2000).toBeCloseTo(0.5 / 0.8, 1); // renormalised within the nucleus
  });

  it('top-p (its shortcut and bucketed cutoff) matches a full-sort reference; min-p keeps p ≥ minP·p_max', () => {
    const r = new Rng(11);
    // peaked over 2,000 tokens, and flat over a whole GPT-2 vocabulary (nuclei of thousands)
    const cases = [...Array.from({ length: 10 }, () => ({ n: 2000, scale: 2 })), { n: 50257, scale: 0.5 }, { n: 50257, scale: 1 }];
    for (const { n: size, scale } of cases) {
      const l = randomLogits(r, size, scale);
      const lse = logSumExp(l);
      const probs = Float64Array.from(l, (v) => Math.exp(v - lse));
      const byProb = [...probs.keys()].sort((a, b) => probs[b]! - probs[a]! || a - b);
      for (const topP of [0, 0.1, 0.5, 0.9, 0.999]) {
        let cum = 0;
        let n = 0;
        while (n < byProb.length && cum < topP) cum += probs[byProb[n++]!]!;
        const expected = byProb.slice(0, Math.max(1, n)).sort((a, b) => a - b);
        const got = [...samplingDistribution(l, { temperature: 1, topP }).ids].sort((a, b) => a - b);
        expect(got).toEqual(expected);
      }
      const pMax = probs[byProb[0]!]!;
      const d = samplingDistribution(l, { temperature: 1, minP: 0.1 });
      expect([...d.ids].sort((a, b) => a - b)).toEqual([...probs.keys()].filter((i) => probs[i]! >= 0.1 * pMax));
      expect(d.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });

  it('top-k then top-p: the nucleus is taken within the renormalised top-k', () => {
    const l = Float32Array.from([Math.log(0.4), Math.log(0.3), Math.log(0.2), Math.log(0.1)]);
    // top-k 2 → {0.4, 0.3} renormalised to {0.571, 0.429}; top_p 0.5 then keeps only token 0.
    expect([...samplingDistribution(l, { temperature: 1, topK: 2, topP: 0.5 }).ids]).toEqual([0]);
    expect([...samplingDistribution(l, { temperature: 1, topK: 3 }).ids]).toEqual([0, 1, 2]);
  });

  it('filters break ties toward the lowest id', () => {
    const flat = new Float32Array(8); // uniform: every cutoff falls inside a tie
    expect([...samplingDistribution(flat, { temperature: 1, topP: 0.5 }).ids]).toEqual([0, 1, 2, 3]);
    expect([...samplingDistribution(flat, { temperature: 1, topP: 0.3 }).ids]).toEqual([0, 1, 2]);
    expect([...samplingDistribution(flat, { temperature: 1, topK: 2 }).ids]).toEqual([0, 1]);
    expect([...samplingDistribution(flat, { temperature: 1, topK: 5, topP: 0.5 }).ids]).toEqual([0, 1, 2]);
  });

  it('logprobs come from the RAW distribution; top_logprobs has N entries, sorted', () => {
    const s = new Sampler({ maxTokens: 10, temperature: 0.7, frequencyPenalty: 2, logitBias: { 5: 50 }, logprobs: 5, seed: 8 }, [], V);
    for (const l of seq50.slice(0, 10)) {
      const ref = refLogSoftmax(l);
      const r = s.sample(l);
      expect(r.logprob).toBeCloseTo(ref[r.token]!, 10);
      const top = r.topLogprobs!;
      expect(top).toHaveLength(5);
      const refTop = [...ref.keys()].sort((a, b) => ref[b]! - ref[a]!).slice(0, 5);
      expect(top.map((t) => t.token)).toEqual(refTop);
      top.forEach((t, i) => {
        expect(t.logprob).toBeCloseTo(ref[t.token]!, 10);
        if (i > 0) expect(t.logprob).toBeLessThanOrEqual(top[i - 1]!.logprob);
      });
    }
    expect(new Sampler({ maxTokens: 1, seed: 1 }, [], V).sample(seq50[0]!).topLogprobs).toBeUndefined();
  });

  it('validates options and logits', () => {
    const bad: Partial<SamplingOptions>[] = [
      { temperature: -1 },
      { topP: 1.5 },
      { minP: -0.1 },
      { topK: 2.5 },
      { presencePenalty: 3 },
      { frequencyPenalty: -2.5 },
      { repetitionPenalty: 0 },
      { logprobs: 21 },
      { seed: 1.5 },
      { logitBias: { [V]: 1 } },
      { maxTokens: -1 },
    ];
    for (const o of bad) expect(() => new Sampler({ maxTokens: 1, ...o }, [], V), JSON.stringify(o)).toThrow(SamplingOptionError);
    const s = new Sampler({ maxTokens: 1 }, [], V);
    expect(() => s.sample(new Float32Array(V + 1))).toThrow(/expected 100 logits/);
    expect(() => s.sample(new Float32Array(V).fill(Number.NaN))).toThrow(/NaN/);
  });
});

describe('StopChecker', () => {
  const feed = (stops: string[], pieces: string[]) => {
    const c = new StopChecker(stops);
    const results = pieces.map((p) => c.push(p));
    return { results, out: results.map((r) => r.emit).join(''), stopped: c.stopped, rest: c.flush() };
  };

  it('detects a stop string spread over several pieces and leaves it out', () => {
    const { results, out, stopped, rest } = feed(['\n\nQ:'], ['A: 42', '\n', '\nQ', ':', ' more']);
    expect(results.map((r) => r.emit)).toEqual(['A: 42', '', '', '', '']);
    expect(results.map((r) => r.stopped)).toEqual([false, false, false, true, true]);
    expect(out).toBe('A: 42');
    expect(stopped).toBe(true);
    expect(rest).toBe('');
  });

  it('emits a held-back partial match once it is clearly not a stop', () => {
    const { results, out, stopped } = feed(['\n\nQ:'], ['x', '\n', '\nR', 'y']);
    expect(results.map((r) => r.emit)).toEqual(['x', '', '\n\nR', 'y']);
    expect(out).toBe('x\n\nRy');
    expect(stopped).toBe(false);
  });

  it('flush() releases text held back at the end of generation', () => {
    const { out, rest } = feed(['\n\nQ:'], ['done', '\n\nQ']);
    expect(out).toBe('done');
    expect(rest).toBe('\n\nQ');
  });

  it('cuts at the earliest of several stops, dropping text after it in the same piece', () => {
    expect(feed(['END', 'STOP'], ['one STOP two END'])).toMatchObject({ out: 'one ', stopped: true });
    expect(feed(['ab', 'b'], ['xab'])).toMatchObject({ out: 'x', stopped: true });
    expect(feed([''], ['no stops'])).toMatchObject({ out: 'no stops', stopped: false }); // '' is ignored
  });

  it('works end to end with real tokens through the StreamingDetokenizer', () => {
    const detok = new StreamingDetokenizer();
    const stop = new StopChecker(['\n\nQ:']);
    let out = '';
    for (const t of encode('Answer: 🦙 yes\n\nQ: next question')) {
      const r = stop.push(detok.push(t));
      out += r.emit;
      if (r.stopped) break;
    }
    expect(out).toBe('Answer: 🦙 yes');
  });
});

describe('finish', () => {
  it("says 'stop' for EOT or a stop string, 'length' at max_tokens, null otherwise", () => {
    expect(finish({ token: EOT, generated: 1, maxTokens: 10 })).toBe('stop');
    expect(finish({ token: EOT, generated: 1, maxTokens: 10, ignoreEos: true })).toBeNull();
    expect(finish({ token: EOT, generated: 10, maxTokens: 10, ignoreEos: true })).toBe('length');
    expect(finish({ token: 5, generated: 3, maxTokens: 10, stopped: true })).toBe('stop');
    expect(finish({ token: 5, generated: 10, maxTokens: 10 })).toBe('length');
    expect(finish({ token: EOT, generated: 10, maxTokens: 10 })).toBe('stop'); // the model finished by itself
    expect(finish({ token: 5, generated: 3, maxTokens: 10 })).toBeNull();
  });
});

describe('fitContext', () => {
  it('accepts requests that fit exactly and rejects longer ones with the OpenAI-style message', () => {
    expect(() => fitContext(1000, 24, 1024, 'prompt')).not.toThrow();
    let err: unknown;
    try {
      fitContext(1000, 100, 1024, 'prompt');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContextLengthExceeded);
    const e = err as ContextLengthExceeded;
    expect(e.message).toBe(
      "This model's maximum context length is 1024 tokens. However, you requested 1100 tokens (1000 in the prompt, 100 for the completion).",
    );
    expect(e).toMatchObject({ contextLength: 1024, promptTokens: 1000, maxTokens: 100, requestedTokens: 1100, code: 'context_length_exceeded' });
    expect(() => fitContext(-1, 1, 1024, 'prompt')).toThrow(RangeError);
  });
});
