// Opt-in int8 and int4 decode weights: the quantizer's error bound, and that ORT's MatMulNBits
// computes with the weights we think it does (decode logits equal to a plain-TypeScript forward
// pass on the dequantized weights, and close to fp32).
import { describe, expect, it } from 'vitest';
import type { WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { blockFor, dequantizeBlockwise, quantizeBlockwise, type WeightBits } from '../src/onnx/rewrite.js';
import { argmax } from '../src/model/sampling-kernels.js';
import { ModelSession } from '../src/model/session.js';
import { randomParams } from './reference/gpt-reference.js';

describe('block sizes', () => {
  it('int8: the largest of 128, 64, 32 that divides the input width; int4: 32', () => {
    const widths = [768, 1024, 1280, 1600, 3072, 6400, 96];
    expect(widths.map((K) => blockFor(K, 8))).toEqual([128, 128, 128, 64, 128, 128, 32]);
    expect(widths.map((K) => blockFor(K, 4))).toEqual(widths.map(() => 32));
    expect(() => blockFor(100, 8)).toThrow(/multiple of 32/);
    expect(() => blockFor(100, 4)).toThrow(/multiple of 32/);
  });
});

describe.each([8, 4] as WeightBits[])('int%i quantization', (bits) => {
  it.each([96, 64, 384])('rounds each weight to within half a step of its block scale, in both layouts (K %i)', (K) => {
    const block = blockFor(K, bits);
    const N = 5;
    const w = Float32Array.from({ length: K * N }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
    for (const layout of ['KN', 'NK'] as const) {
      const m = quantizeBlockwise(w, K, N, layout, bits);
      expect(m.block).toBe(block);
      expect(m.q.length).toBe((K * N * bits) / 8);
      expect(m.scales.length).toBe((N * K) / block);
      const back = dequantizeBlockwise(m, K, N, layout, bits);
      for (let i = 0; i < w.length; i++) {
        const [k, n] = layout === 'KN' ? [Math.floor(i / N), i % N] : [i % K, Math.floor(i / K)];
        const scale = m.scales[n * (K / block) + Math.floor(k / block)]!;
        expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-7);
      }
    }
  });

  /** fp32 and quantized sessions on the same random weights; `dequantized`: fp32 on the weights MatMulNBits computes with. */
  async function sessions(tied: boolean) {
    const cfg: GPTConfig = { vocabSize: 200, contextLength: 32, nEmbd: 64, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, ...(tied ? {} : { tieWordEmbeddings: false }) };
    const params = randomParams(cfg, 3, 0.1);
    const source = (data: Float32Array, shape: number[]): WeightSource => ({ kind: 'memory', data, shape });
    const weights = new Map<string, WeightSource>([...params].map(([k, t]) => [k, source(t.data, t.shape)]));
    // what quantizeGraph rewrites: the blocks' [in, out] weights, and an untied head's [out, in]
    const rounded = [...params].map(([k, t]): [string, WeightSource] => {
      const head = k === 'lm_head.weight';
      if (!(head || (/\.weight$/.test(k) && t.shape.length === 2 && k.startsWith('h.')))) return [k, source(t.data, t.shape)];
      const [K, N] = head ? [t.shape[1]!, t.shape[0]!] : [t.shape[0]!, t.shape[1]!];
      const layout = head ? 'NK' : 'KN';
      return [k, source(dequantizeBlockwise(quantizeBlockwise(t.data, K, N, layout, bits), K, N, layout, bits), t.shape)];
    });
    const quantize = bits === 8 ? 'int8' : 'int4';
    return {
      fp32: await ModelSession.create(cfg, weights),
      quantized: await ModelSession.create(cfg, weights, { quantize }),
      dequantized: await ModelSession.create(cfg, new Map(rounded)),
    };
  }

  /**
   * The largest |difference| of the decode steps' logits over 16 greedy steps (fp32's tokens),
   * relative to fp32's logit range. `stepwise`: the prompt goes in one token at a time too, so every
   * position's K/V comes from the quantized weights (a prompt's prefill runs on fp32 weights).
   */
  async function decodeErrors(tied: boolean, stepwise = false): Promise<{ vsFp32: number; vsDequantized: number }> {
    const { fp32, quantized, dequantized } = await sessions(tied);
    const prompt = [5, 17, 42, 99];
    const run = (s: ModelSession, tokens: number[], start: number) => s.forward([{ slot: 0, tokens, start, logits: 'last' }]).then((r) => r[0]!);
    const feed = async (s: ModelSession) => {
      if (!stepwise) return run(s, prompt, 0);
      let last!: Float32Array;
      for (let t = 0; t < prompt.length; t++) last = await run(s, [prompt[t]!], t);
      return last;
    };
    let [a, b, c] = [await feed(fp32), await feed(quantized), await feed(dequantized)];
    if (!stepwise) expect(b).toEqual(a); // prefill runs the fp32 session in both
    let [vsFp32, vsDequantized] = [0, 0];
    for (let t = prompt.length; t < 20; t++) {
      const next = argmax(a);
      [a, b, c] = [await run(fp32, [next], t), await run(quantized, [next], t), await run(dequantized, [next], t)];
      const range = Math.max(...a) - Math.min(...a);
      expect(b).not.toEqual(a); // the quantized session did run
      a.forEach((x, i) => (vsFp32 = Math.max(vsFp32, Math.abs(x - b[i]!) / range)));
      c.forEach((x, i) => (vsDequantized = Math.max(vsDequantized, Math.abs(x - b[i]!) / range)));
    }
    await Promise.all([fp32.close(), quantized.close(), dequantized.close()]);
    return { vsFp32, vsDequantized };
  }

  it.each([{ head: 'tied', tied: true }, { head: 'untied', tied: false }])('decode stays close to fp32 ($head head)', async ({ tied }) => {
    const { vsFp32 } = await decodeErrors(tied);
    expect(vsFp32).toBeLessThan(bits === 8 ? 0.05 : 0.25);
  });

  it('decode computes with the dequantized weights: within activation rounding (accuracy_level 4) of fp32 on them', async () => {
    const { vsFp32, vsDequantized } = await decodeErrors(false, true);
    console.log(`int${bits}: max logit error ${(vsDequantized * 100).toFixed(2)}% of the range against fp32 on the dequantized weights, ${(vsFp32 * 100).toFixed(2)}% against fp32`);
    expect(vsDequantized).toBeLessThan(0.02);
    // int4's rounded weights are most of its error (int8's are about as small as the activations' rounding)
    if (bits === 4) expect(vsDequantized).toBeLessThan(vsFp32 / 4);
  });
});
