// The ONNX GPTModel against an independent float64 implementation (plain loops, no ONNX).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import type { WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { parameterCount, presetConfig } from '../src/model/config.js';
import type { Params } from '../src/model/params.js';
import { numel } from '../src/model/params.js';
import * as ort from 'onnxruntime-node';
import { HIDDEN, parameterSpecs } from '../src/model/gpt.js';
import type { KVCache } from '../src/model/kv-cache.js';
import { createSession } from '../src/model/runtime.js';
import { buildInferenceGraph, ModelSession } from '../src/model/session.js';
import { randomParams, referenceForward } from './reference/gpt-reference.js';

const asWeights = (params: Params) => new Map<string, WeightSource>([...params].map(([k, t]) => [k, { kind: 'memory', data: t.data, shape: t.shape }]));

const configs: [string, GPTConfig][] = [
  ['qkv bias, 2 layers', { vocabSize: 71, contextLength: 24, nEmbd: 24, nLayer: 2, nHead: 3, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 }],
  ['no qkv bias, 3 layers, 1 head', { vocabSize: 50, contextLength: 16, nEmbd: 16, nLayer: 3, nHead: 1, dropout: 0, qkvBias: false, layerNormEpsilon: 1e-5 }],
  ['4 heads, other epsilon', { vocabSize: 97, contextLength: 32, nEmbd: 32, nLayer: 1, nHead: 4, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-3 }],
  // The book's GPTModel: out_head = nn.Linear(emb_dim, vocab_size, bias=False), not tied to wte.
  ['untied lm_head, no qkv bias', { vocabSize: 67, contextLength: 20, nEmbd: 24, nLayer: 2, nHead: 2, dropout: 0, qkvBias: false, layerNormEpsilon: 1e-5, tieWordEmbeddings: false }],
];
const untied = configs[3]![1];

describe('GPTModel numerics', () => {
  it.each(configs)('ORT logits match the float64 reference within 1e-4 (%s)', async (_, cfg) => {
    for (const seed of [1, 2]) {
      const params = randomParams(cfg, seed); // LayerNorm weights and all biases non-trivial
      const model = await ModelSession.create(cfg, asWeights(params));
      const tokens = Array.from({ length: cfg.contextLength - 3 }, (_, i) => (i * 13 + seed * 7) % cfg.vocabSize);
      const [ort] = await model.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]);
      const ref = referenceForward(cfg, params, tokens);
      let maxDiff = 0;
      ref.forEach((row, t) => row.forEach((x, v) => (maxDiff = Math.max(maxDiff, Math.abs(x - ort![t * cfg.vocabSize + v]!)))));
      expect(maxDiff).toBeLessThan(1e-4);
      await model.close();
    }
  });

  it.each([configs[0]!, configs[3]!])('decode steps through the KV cache match the reference too (%s)', async (_, cfg) => {
    const params = randomParams(cfg, 5);
    const model = await ModelSession.create(cfg, asWeights(params));
    const tokens = [3, 14, 15, 9, 26, 5, 35, 8];
    const ref = referenceForward(cfg, params, tokens);
    await model.forward([{ slot: 0, tokens: tokens.slice(0, 3), start: 0, logits: 'last' }]);
    for (let t = 3; t < tokens.length; t++) {
      const [logits] = await model.forward([{ slot: 0, tokens: [tokens[t]!], start: t, logits: 'last' }]);
      ref[t]!.forEach((x, v) => expect(Math.abs(x - logits![v]!)).toBeLessThan(1e-4));
    }
    await model.close();
  });

  it('the decode-only graph (T = 1: heads moved by reshapes, not transposes) gives the reference logits and the K/V rows the cache stores', async () => {
    const cfg = configs[0]![1];
    const params = randomParams(cfg, 6);
    const weights = asWeights(params);
    const model = await ModelSession.create(cfg, weights);
    const decodeOnly = await createSession((w) => buildInferenceGraph(cfg, w, 'host', true), weights);
    const tokens = [3, 14, 15, 9, 26, 5, 35, 8];
    const ref = referenceForward(cfg, params, tokens);
    const { nHead: H, nEmbd: C, nLayer: L } = cfg;
    const hd = C / H;
    await model.forward([{ slot: 0, tokens: tokens.slice(0, 3), start: 0, logits: 'last' }]);
    const cache = model.cache as KVCache;
    for (let t = 3; t < tokens.length; t++) {
      const P = cache.capacity;
      const mask = new Float32Array(P + 1).fill(HIDDEN);
      mask.fill(0, 0, t);
      mask[P] = 0;
      const feeds: Record<string, ort.Tensor> = {
        tokens: new ort.Tensor('int64', BigInt64Array.of(BigInt(tokens[t]!)), [1, 1]),
        positions: new ort.Tensor('int64', BigInt64Array.of(BigInt(t)), [1, 1]),
        mask: new ort.Tensor('float32', mask, [1, 1, 1, P + 1]),
        logit_rows: new ort.Tensor('int64', BigInt64Array.of(0n), [1]),
      };
      for (let l = 0; l < L; l++) for (const kind of ['k', 'v'] as const) feeds[`past_${kind}.${l}`] = new ort.Tensor('float32', cache.view(kind, l, 0, 1).slice(), [1, H, P, hd]);
      const out = await decodeOnly.run(feeds);
      ref[t]!.forEach((x, v) => expect(Math.abs(x - (out.logits!.data as Float32Array)[v]!)).toBeLessThan(1e-4));
      await model.forward([{ slot: 0, tokens: [tokens[t]!], start: t, logits: 'last' }]); // the general graph stores position t
      for (let l = 0; l < L; l++)
        for (const kind of ['k', 'v'] as const) {
          const present = out[`present_${kind}.${l}`]!.data as Float32Array; // [1, H, 1, hd]
          for (let h = 0; h < H; h++)
            for (let i = 0; i < hd; i++) expect(present[h * hd + i]).toBeCloseTo(cache.view(kind, l, 0, 1)[(h * cache.capacity + t) * hd + i]!, 5);
        }
    }
    await Promise.all([model.close(), decodeOnly.release()]);
  });

  it("after ORT's fusions every attention matmul keeps alpha 1, so batch-1 decode runs MLAS's M=1 kernels (alpha ≠ 1 packs the whole cache every step)", async () => {
    const cfg = configs[0]![1];
    const weights = asWeights(randomParams(cfg, 7));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scratchgpt-optimized-'));
    for (const decodeOnly of [false, true]) {
      const file = path.join(dir, `${decodeOnly}.onnx`);
      const session = await createSession((w) => buildInferenceGraph(cfg, w, 'host', decodeOnly), weights, {}, { optimizedModelFilePath: file });
      await session.release();
      const nodes = onnxProto.onnx.ModelProto.decode(fs.readFileSync(file)).graph!.node!;
      const alphas = nodes.filter((n) => n.opType === 'FusedMatMul').map((n) => n.attribute!.find((a) => a.name === 'alpha')?.f ?? 1);
      expect(alphas.length).toBeGreaterThanOrEqual(cfg.nLayer); // q·kᵀ, its transpose fused, in every layer
      expect(alphas.every((a) => a === 1)).toBe(true);
    }
    fs.rmSync(dir, { recursive: true });
  });
});

describe('GPT-2 configs', () => {
  it('presets have the published parameter counts', () => {
    const millions = (name: string) => Math.round(parameterCount(presetConfig(name)) / 1e6);
    expect(parameterCount(presetConfig('gpt2'))).toBe(124_439_808);
    expect([millions('gpt2-medium'), millions('gpt2-large'), millions('gpt2-xl')]).toEqual([355, 774, 1558]);
  });

  it('parameterSpecs lists exactly parameterCount values', () => {
    for (const name of ['gpt2', 'gpt2-medium']) {
      const cfg = presetConfig(name);
      expect(parameterSpecs(cfg).reduce((n, s) => n + numel(s.shape), 0)).toBe(parameterCount(cfg));
    }
    const noBias = presetConfig('gpt2', { qkvBias: false });
    expect(parameterSpecs(noBias).reduce((n, s) => n + numel(s.shape), 0)).toBe(parameterCount(noBias));
    // The book's GPT-124M with its own output head: "163,009,536" parameters (chapter 4).
    const book = presetConfig('gpt2', { qkvBias: false, tieWordEmbeddings: false });
    expect(parameterCount(book)).toBe(163_009_536);
    expect(parameterSpecs(book).reduce((n, s) => n + numel(s.shape), 0)).toBe(parameterCount(book));
  });

  it('an untied config has lm_head.weight [vocab, n_embd] last; tied ones and classifiers have none', () => {
    expect(parameterSpecs(untied).at(-1)).toEqual({ name: 'lm_head.weight', shape: [untied.vocabSize, untied.nEmbd] });
    for (const cfg of [configs[0]![1], { ...untied, tieWordEmbeddings: true }, { ...untied, labels: ['a', 'b'] }]) {
      expect(parameterSpecs(cfg).some((s) => s.name === 'lm_head.weight')).toBe(false);
    }
  });

  it('the untied head is what the logits use: changing wte only where no token reads it changes nothing', async () => {
    const params = randomParams(untied, 9);
    const tokens = [1, 2, 3];
    const run = async (p: typeof params) => {
      const model = await ModelSession.create(untied, asWeights(p));
      const [logits] = await model.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]);
      await model.close();
      return logits!;
    };
    const before = await run(params);
    const wte = params.get('wte.weight')!.data;
    wte.fill(5, 10 * untied.nEmbd, 11 * untied.nEmbd); // row 10: no token above embeds it
    expect(await run(params)).toEqual(before);
    params.get('lm_head.weight')!.data.fill(5, 10 * untied.nEmbd, 11 * untied.nEmbd);
    const after = await run(params);
    expect(after[10]).not.toBe(before[10]);
    expect(after[11]).toBe(before[11]);
  });
});
