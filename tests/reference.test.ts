// Sanity tests of the float64 reference GPT-2 itself (tests/reference/gpt-reference.ts).
import { describe, expect, it } from 'vitest';
import type { GPTConfig } from '../src/model/config.js';
import { parameterSpecs } from '../src/model/gpt.js';
import { randomParams, referenceForward, referenceGelu, referenceLayerNorm } from './reference/gpt-reference.js';

const tiny: GPTConfig = { vocabSize: 11, contextLength: 8, nEmbd: 8, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

describe('reference helpers', () => {
  it('gelu is the tanh approximation', () => {
    expect(referenceGelu(0)).toBe(0);
    expect(referenceGelu(1)).toBeCloseTo(0.8411919906082768, 14);
    expect(referenceGelu(-1)).toBeCloseTo(-0.15880800939172324, 14);
    expect(referenceGelu(10)).toBeCloseTo(10, 12);
    expect(referenceGelu(-10)).toBeCloseTo(0, 12);
  });

  it('layer norm has mean 0 and (biased) variance 1 before the affine part', () => {
    const x = [3, -1, 4, 1, -5, 9, 2, 6];
    const y = referenceLayerNorm(x, 0);
    const mean = y.reduce((a, b) => a + b, 0) / y.length;
    const variance = y.reduce((a, b) => a + (b - mean) ** 2, 0) / y.length;
    expect(mean).toBeCloseTo(0, 12);
    expect(variance).toBeCloseTo(1, 12);
    const w = x.map((_, i) => 1 + i), b = x.map((_, i) => -i / 2);
    referenceLayerNorm(x, 0, w, b).forEach((v, i) => expect(v).toBeCloseTo(y[i]! * w[i]! + b[i]!, 12));
    // eps enters inside the square root: [1, -1] has variance 1.
    expect(referenceLayerNorm([1, -1], 3)[0]).toBeCloseTo(1 / 2, 14);
  });

  it('randomParams covers every spec, is deterministic and has non-trivial layer norms', () => {
    const a = randomParams(tiny, 7), b = randomParams(tiny, 7), c = randomParams(tiny, 8);
    for (const { name, shape } of parameterSpecs(tiny)) {
      expect(a.get(name)?.shape).toEqual(shape);
      expect(a.get(name)?.data).toEqual(b.get(name)?.data);
      expect(a.get(name)?.data).not.toEqual(c.get(name)?.data);
    }
    const lnW = a.get('h.0.ln_1.weight')!.data, lnB = a.get('ln_f.bias')!.data;
    expect(lnW.some((v) => Math.abs(v - 1) > 0.01)).toBe(true);
    expect(lnB.some((v) => Math.abs(v) > 0.01)).toBe(true);
  });
});

describe('referenceForward', () => {
  it('matches a hand-derived 1-layer, 1-head, 1-token case', () => {
    const cfg: GPTConfig = { ...tiny, vocabSize: 3, contextLength: 2, nEmbd: 2, nLayer: 1, nHead: 1 };
    const params = randomParams(cfg, 1);
    const set = (name: string, values: number[]) => params.get(name)!.data.set(values);
    // Zero every matrix so each sublayer contributes only its output bias.
    for (const n of ['attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight']) params.get(`h.0.${n}`)!.data.fill(0);
    set('wte.weight', [1, 0, 0, 2, 3, 1]);
    set('wpe.weight', [0.5, -0.5, 0, 0]);
    set('h.0.attn.c_proj.bias', [0.1, 0.2]);
    set('h.0.mlp.c_proj.bias', [-0.3, 0.4]);
    set('ln_f.weight', [2, 0.5]);
    set('ln_f.bias', [0.1, -0.1]);
    // x = [3, 1] + [0.5, -0.5] + [0.1, 0.2] + [-0.3, 0.4] = [3.3, 1.1]; LN → ±1.1/√(1.21 + eps).
    const s = 1.1 / Math.sqrt(1.21 + 1e-5);
    const y = [2 * s + 0.1, -0.5 * s - 0.1];
    const want = [y[0]! * 1, y[1]! * 2, y[0]! * 3 + y[1]! * 1];
    const [logits] = referenceForward(cfg, params, [2]);
    want.forEach((v, i) => expect(logits![i]).toBeCloseTo(v, 6));
  });

  it('one token attends only to itself: q and k weights do not matter, v weights do', () => {
    const cfg: GPTConfig = { ...tiny, nLayer: 1, nHead: 1 };
    const C = cfg.nEmbd;
    const base = referenceForward(cfg, randomParams(cfg, 3), [5])[0]!;
    const perturb = (from: number, to: number) => {
      const p = randomParams(cfg, 3);
      const w = p.get('h.0.attn.c_attn.weight')!.data;
      for (let i = 0; i < C; i++) for (let j = from; j < to; j++) w[i * 3 * C + j]! += 0.5;
      return referenceForward(cfg, p, [5])[0]!;
    };
    perturb(0, 2 * C).forEach((v, i) => expect(v).toBeCloseTo(base[i]!, 10));
    expect(Math.max(...perturb(2 * C, 3 * C).map((v, i) => Math.abs(v - base[i]!)))).toBeGreaterThan(1e-3);
  });

  it('is causal: logits at t do not depend on tokens after t', () => {
    const params = randomParams(tiny, 5);
    const a = referenceForward(tiny, params, [1, 2, 3, 4, 5, 6]);
    const b = referenceForward(tiny, params, [1, 2, 3, 9, 0, 10]);
    expect(a).toHaveLength(6);
    for (let t = 0; t < 3; t++) b[t]!.forEach((v, i) => expect(v).toBeCloseTo(a[t]![i]!, 12));
    expect(Math.max(...b[4]!.map((v, i) => Math.abs(v - a[4]![i]!)))).toBeGreaterThan(1e-3);
    // Earlier tokens do matter at later positions.
    const c = referenceForward(tiny, params, [7, 2, 3, 4, 5, 6]);
    expect(Math.max(...c[5]!.map((v, i) => Math.abs(v - a[5]![i]!)))).toBeGreaterThan(1e-3);
  });

  it('works without q/k/v biases and rejects bad input', () => {
    const cfg = { ...tiny, qkvBias: false };
    const logits = referenceForward(cfg, randomParams(cfg, 2), [0, 10]);
    expect(logits.every((l) => l.length === cfg.vocabSize && l.every(Number.isFinite))).toBe(true);
    expect(() => referenceForward(tiny, randomParams(tiny, 2), [11])).toThrow(/bad token/);
    expect(() => referenceForward(tiny, randomParams(tiny, 2), new Array<number>(9).fill(0))).toThrow(/context length/);
  });
});
