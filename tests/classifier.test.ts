// Classifier folders (GPT2ForSequenceClassification layout) and ClassifierSession against the
// independent float64 reference: head at the last real token, batching rows of different
// lengths, truncation to the context, and the guards between classifiers and generators.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import { ClassifierSession, softmax } from '../src/model/classifier.js';
import { fromHFConfig, type GPTConfig } from '../src/model/config.js';
import { ModelSession } from '../src/model/session.js';
import { openSafetensors } from '../src/model/safetensors.js';
import { encode, EOT } from '../src/model/tokenizer.js';
import { randomParams, referenceClassifierLogits } from './reference/gpt-reference.js';

const cfg: GPTConfig = {
  vocabSize: 50257, contextLength: 24, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5,
  labels: ['ham', 'spam', 'eggs'],
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'classifier-test-'));
const dir = path.join(tmp, 'clf');
const params = randomParams(cfg, 7, 0.2);
let session: ClassifierSession;

beforeAll(async () => {
  saveCheckpoint(dir, cfg, params);
  session = await ClassifierSession.open(dir, { threads: 1 });
});
afterAll(async () => {
  await session?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The reference's probabilities for a text, truncated to the context as the session does. */
function expected(tokens: number[]): number[] {
  const t = tokens.length === 0 ? [EOT] : tokens.slice(0, cfg.contextLength);
  return softmax(referenceClassifierLogits(cfg, params, t));
}

describe('classifier checkpoint', () => {
  it('writes the transformers GPT2ForSequenceClassification layout', () => {
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(hf.architectures).toEqual(['GPT2ForSequenceClassification']);
    expect(hf.id2label).toEqual({ 0: 'ham', 1: 'spam', 2: 'eggs' });
    expect(hf.label2id).toEqual({ ham: 0, spam: 1, eggs: 2 });
    expect(hf.num_labels).toBe(3);
    expect(hf.pad_token_id).toBe(50256);
    const file = openSafetensors(path.join(dir, 'model.safetensors'));
    expect(file.tensors.get('score.weight')?.shape).toEqual([3, 16]); // outside `transformer.`, [num_labels, n_embd]
    expect(file.tensors.has('transformer.score.weight')).toBe(false);
    const loaded = loadCheckpoint(dir);
    expect(loaded.config.labels).toEqual(['ham', 'spam', 'eggs']);
    expect(materialize(loaded.weights).get('score.weight')!.data).toEqual(params.get('score.weight')!.data);
  });

  it('reads HF configs with num_labels only, and refuses what it cannot serve', () => {
    const base = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const { id2label: _a, label2id: _b, ...noNames } = base;
    expect(fromHFConfig({ ...noNames, num_labels: 2 }).labels).toEqual(['LABEL_0', 'LABEL_1']);
    expect(() => fromHFConfig({ ...base, problem_type: 'regression' })).toThrow(/problem_type/);
    expect(() => fromHFConfig({ ...base, id2label: { 0: 'a' }, num_labels: 1 })).toThrow(/at least 2 labels/);
    expect(fromHFConfig({ ...base, architectures: ['GPT2LMHeadModel'] }).labels).toBeUndefined();
  });

  it('a head without the classifier architecture is an error, not silently dropped', () => {
    const bad = path.join(tmp, 'bad');
    saveCheckpoint(bad, cfg, params);
    const hf = JSON.parse(fs.readFileSync(path.join(bad, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...hf, architectures: ['GPT2LMHeadModel'] }));
    expect(() => loadCheckpoint(bad)).toThrow(/classification head/);
  });

  it('classifiers and generators refuse each other\'s session', async () => {
    await expect(ModelSession.load(dir)).rejects.toThrow(/classifier/);
    const lm = path.join(tmp, 'lm');
    const { labels: _, ...lmCfg } = cfg;
    const lmParams = new Map(params);
    lmParams.delete('score.weight');
    saveCheckpoint(lm, lmCfg, lmParams);
    await expect(ClassifierSession.open(lm)).rejects.toThrow(/not a classifier/);
  });
});

describe('ClassifierSession', () => {
  const texts = ['Win a free cruise now!!!', 'see you at lunch', 'x', '', 'a much longer message that will certainly run past the tiny context of twenty-four tokens, so the classifier keeps only its start and drops the rest'];

  it('matches the float64 reference at each row\'s last real token, rows of different lengths in one batch', async () => {
    const got = await session.classify(texts);
    expect(encode(texts[4]!).length).toBeGreaterThan(cfg.contextLength);
    got.forEach((r, i) => {
      const want = expected(encode(texts[i]!));
      cfg.labels!.forEach((l, k) => expect(Math.abs(r.probabilities[l]! - want[k]!), `${i} ${l}`).toBeLessThan(1e-5));
      expect(r.label).toBe(cfg.labels![want.indexOf(Math.max(...want))]);
      expect(Object.values(r.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    });
  });

  it('gives the same answer alone, batched, split into small runs, or as token ids', async () => {
    const batched = await session.logits(texts.map((t) => encode(t)));
    const small = await ClassifierSession.open(dir, { threads: 1, maxBatchTokens: 20 });
    try {
      const split = await small.logits(texts.map((t) => encode(t)));
      for (const [i, t] of texts.entries()) {
        const [alone] = await session.logits([encode(t)]);
        for (let k = 0; k < 3; k++) {
          expect(Math.abs(batched[i]![k]! - alone![k]!)).toBeLessThan(1e-5);
          expect(Math.abs(split[i]![k]! - alone![k]!)).toBeLessThan(1e-5);
        }
      }
    } finally {
      await small.close();
    }
    const [byIds] = await session.classify([encode(texts[0]!)]);
    const [byText] = await session.classify([texts[0]!]);
    expect(byIds).toEqual(byText);
  });

  it('rejects token ids outside the vocabulary', async () => {
    await expect(session.classify([[1, 50257]])).rejects.toThrow(/not in \[0, 50257\)/);
  });
});
