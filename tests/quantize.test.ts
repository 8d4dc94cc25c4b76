// Opt-in int8 decode weights: the quantizer's error bound, and that ORT's MatMulNBits computes
// with the weights we think it does (decode logits close to fp32, same greedy tokens).
import { describe, expect, it } from 'vitest';
import type { WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { BLOCK, dequantizeInt8, quantizeInt8 } from '../src/onnx/rewrite.js';
import { argmax } from '../src/model/sampling-kernels.js';
import { ModelSession } from '../src/model/session.js';
import { randomParams } from './reference/gpt-reference.js';

describe('int8 quantization', () => {
  it('rounds each weight to within half a step of its block scale, in both layouts', () => {
    const [K, N] = [64, 5];
    const w = Float32Array.from({ length: K * N }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
    for (const layout of ['KN', 'NK'] as const) {
      const m = quantizeInt8(w, K, N, layout);
      const back = dequantizeInt8(m, K, N, layout);
      for (let i = 0; i < w.length; i++) {
        const [k, n] = layout === 'KN' ? [Math.floor(i / N), i % N] : [i % K, Math.floor(i / K)];
        const scale = m.scales[n * (K / BLOCK) + Math.floor(k / BLOCK)]!;
        expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-7);
      }
    }
  });

  it.each([{ head: 'tied', tied: true }, { head: 'untied', tied: false }])('decode with int8 weights stays within 5% of the logit range of fp32 ($head head)', async ({ tied }) => {
    const cfg: GPTConfig = { vocabSize: 200, contextLength: 32, nEmbd: 64, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, ...(tied ? {} : { tieWordEmbeddings: false }) };
    const params = randomParams(cfg, 3, 0.1);
    const weights = new Map<string, WeightSource>([...params].map(([k, t]) => [k, { kind: 'memory', data: t.data, shape: t.shape }]));
    const [fp32, int8] = [await ModelSession.create(cfg, weights), await ModelSession.create(cfg, weights, { quantize: 'int8' })];
    const prompt = [5, 17, 42, 99];
    let [a] = await fp32.forward([{ slot: 0, tokens: prompt, start: 0, logits: 'last' }]);
    let [b] = await int8.forward([{ slot: 0, tokens: prompt, start: 0, logits: 'last' }]);
    expect(b).toEqual(a); // prefill runs the fp32 session in both
    for (let t = prompt.length; t < 20; t++) {
      const next = argmax(a!);
      [a] = await fp32.forward([{ slot: 0, tokens: [next], start: t, logits: 'last' }]);
      [b] = await int8.forward([{ slot: 0, tokens: [next], start: t, logits: 'last' }]);
      const range = Math.max(...a!) - Math.min(...a!);
      a!.forEach((x, i) => expect(Math.abs(x - b![i]!)).toBeLessThan(0.05 * range));
      expect(b).not.toEqual(a); // the int8 session did run
    }
    await fp32.close();
    await int8.close();
  });
});
