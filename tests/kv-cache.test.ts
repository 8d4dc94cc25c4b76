// KV-cache decode and batching must not change the numbers: every step of a cached decode equals a
// full recomputation, and a batch of different-length sequences equals each sequence alone.
import { beforeAll, describe, expect, it } from 'vitest';
import type { WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { KVCache } from '../src/model/kv-cache.js';
import { ModelSession } from '../src/model/session.js';

const cfg: GPTConfig = { vocabSize: 61, contextLength: 40, nEmbd: 24, nLayer: 2, nHead: 3, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const seq = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 31 + i * 17) % cfg.vocabSize);

/** Largest difference relative to the logits' scale (float32 rounding grows with magnitude). */
function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return d / scale;
}

let model: ModelSession;
beforeAll(async () => {
  const weights = new Map<string, WeightSource>();
  for (const [name, t] of randomInit(cfg, 7)) weights.set(name, { kind: 'memory', data: t.data.map((x) => x * 10), shape: t.shape });
  model = await ModelSession.create(cfg, weights, { slots: 4 });
});

describe('KV cache', () => {
  it('decode gives the logits of a full recomputation at every step', async () => {
    const tokens = seq(20, 1);
    const [full] = await model.forward([{ slot: 3, tokens, start: 0, logits: 'all' }]);
    const V = cfg.vocabSize;
    let [logits] = await model.forward([{ slot: 0, tokens: tokens.slice(0, 5), start: 0, logits: 'last' }]);
    expect(maxDiff(logits!, full!.subarray(4 * V, 5 * V))).toBeLessThan(1e-5);
    for (let t = 5; t < tokens.length; t++) {
      [logits] = await model.forward([{ slot: 0, tokens: [tokens[t]!], start: t, logits: 'last' }]);
      expect(maxDiff(logits!, full!.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-5);
    }
  });

  it('the cache grows past its initial capacity without changing results', async () => {
    const tokens = seq(cfg.contextLength, 2); // the whole context, one token at a time
    const [full] = await model.forward([{ slot: 1, tokens, start: 0, logits: 'all' }]);
    const V = cfg.vocabSize;
    for (let t = 0; t < tokens.length; t++) {
      const [logits] = await model.forward([{ slot: 2, tokens: [tokens[t]!], start: t, logits: 'last' }]);
      expect(maxDiff(logits!, full!.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-5);
    }
  });
});

describe('batching', () => {
  it('a batch of different-length sequences gives each sequence its own logits', async () => {
    const prompts = [seq(3, 3), seq(11, 4), seq(1, 5), seq(7, 6)];
    const alone: Float32Array[] = [];
    for (const p of prompts) alone.push((await model.forward([{ slot: 0, tokens: p, start: 0, logits: 'all' }]))[0]!.slice());
    const batched = await model.forward(prompts.map((p, i) => ({ slot: i, tokens: p, start: 0, logits: 'all' as const })));
    prompts.forEach((_, i) => expect(maxDiff(batched[i]!, alone[i]!)).toBeLessThan(1e-5));

    // then a mixed step: rows at different positions decode together, one row still prefilling
    const next = [seq(1, 9), seq(1, 10), seq(4, 11), seq(1, 12)];
    const mixed = await model.forward(next.map((t, i) => ({ slot: i, tokens: t, start: prompts[i]!.length, logits: 'last' as const })));
    for (let i = 0; i < prompts.length; i++) {
      const whole = [...prompts[i]!, ...next[i]!];
      const [ref] = await model.forward([{ slot: 0, tokens: whole, start: 0, logits: 'last' }]);
      expect(maxDiff(mixed[i]!, ref!)).toBeLessThan(1e-5);
    }
  });

  it('rejects rows past the context window or outside the slots', async () => {
    await expect(model.forward([{ slot: 0, tokens: seq(41, 1), start: 0, logits: 'last' }])).rejects.toThrow(/context length/);
    await expect(model.forward([{ slot: 9, tokens: [1], start: 0, logits: 'last' }])).rejects.toThrow(/slot/);
  });
});

describe('KVCache.gather', () => {
  it('copies the given slots side by side, whole or only their first positions', () => {
    const c = { ...cfg, nLayer: 1, nEmbd: 4, nHead: 2 };
    const cache = new KVCache(c, 3, 8); // [slot, head, position, hd] = [3, 2, 8, 2]
    cache.k[0]!.forEach((_, i, a) => (a[i] = i));
    const at = (s: number, h: number, p: number, d: number) => ((s * 2 + h) * 8 + p) * 2 + d;
    const whole = cache.gather('k', 0, [2, 0]);
    expect(whole.length).toBe(2 * 2 * 8 * 2);
    expect(whole.subarray(0, 32)).toEqual(cache.view('k', 0, 2, 1));
    const prefix = cache.gather('k', 0, [2, 0], 3); // [2, 2, 3, 2]
    const expected = [2, 0].flatMap((s) => [0, 1].flatMap((h) => [0, 1, 2].flatMap((p) => [0, 1].map((d) => at(s, h, p, d)))));
    expect([...prefix]).toEqual(expected);
  });
});
