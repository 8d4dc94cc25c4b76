// runFinetune on tiny random GPT-2s: instruction finetuning (chapter 7) lowers the validation
// loss and records the chat template; classification (chapter 6) learns a separable task and
// its folder serves through ClassifierSession exactly as the float64 reference computes it;
// last_blocks leaves every frozen tensor bit for bit as it was.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ALPACA_TEMPLATE, loadChatTemplate } from '../src/model/chat-template.js';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import { ClassifierSession, softmax } from '../src/model/classifier.js';
import type { GPTConfig } from '../src/model/config.js';
import { parameterSpecs, randomInit } from '../src/model/gpt.js';
import { ModelSession } from '../src/model/session.js';
import { encode } from '../src/model/tokenizer.js';
import type { AlpacaRecord, ClassificationRecord } from '../src/datasets/index.js';
import { runFinetune, type FinetuneCheckpoint } from '../src/train/finetune.js';
import type { FitEvent } from '../src/train/fit.js';
import { Rng } from '../src/model/rng.js';
import { FlatLayout } from '../src/train/flat.js';
import { TrainSession } from '../src/train/session.js';
import { randomParams, referenceClassifierLogits } from './reference/gpt-reference.js';
import { centralDifference } from './reference/finite-difference.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 96, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-test-'));
const base = path.join(tmp, 'base');
saveCheckpoint(base, cfg, randomInit(cfg, 1));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const words = ['apple', 'river', 'stone', 'cloud', 'tiger', 'maple', 'ocean', 'piano', 'lemon', 'comet', 'forest', 'candle', 'silver', 'garden', 'rocket', 'violet', 'desert', 'harbor', 'meadow', 'thunder'];
const instructions: AlpacaRecord[] = words.map((w) => ({ instruction: `Repeat the word ${w}.`, input: '', output: `${w} ${w}` }));

describe('instruction finetuning', () => {
  it('lowers the validation loss, reports each epoch, and writes an alpaca chat model', async () => {
    const events: FitEvent[] = [];
    const checkpoints: FinetuneCheckpoint[] = [];
    const out = path.join(tmp, 'instruct');
    const result = await runFinetune(
      {
        baseModelDir: base,
        outDir: out,
        workDir: path.join(tmp, 'instruct-work'),
        task: { type: 'instruction' },
        method: { type: 'full' },
        train: instructions.slice(0, 16),
        validation: instructions.slice(16),
        epochs: 3,
        batchSize: 4,
        lr: 2e-2,
        seed: 5,
        threads: 1,
      },
      { onEvent: (e) => events.push(e), onCheckpoint: (c) => checkpoints.push(c) },
    );
    expect(result.steps).toBe(12);
    expect(events.map((e) => e.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const withVal = events.filter((e) => e.valLoss !== undefined);
    expect(withVal.map((e) => e.step)).toEqual([0, 4, 8, 12]); // before step 1 and at each epoch's end
    expect(withVal.at(-1)!.valLoss!).toBeLessThan(withVal[0]!.valLoss! - 1);
    expect(result.finalValLoss).toBe(withVal.at(-1)!.valLoss);
    expect(events.slice(1).every((e) => e.tokensPerSecond > 0 && Number.isFinite(e.trainLoss))).toBe(true);
    expect(checkpoints.map((c) => [c.step, c.epoch])).toEqual([[4, 1], [8, 2], [12, 3]]);
    expect(checkpoints[2]!.valLoss).toBe(result.finalValLoss);
    // trained tokens: each example's tokens (the template's ~35 and the record's), 3 epochs of 16 examples
    expect(result.trainedTokens).toBeGreaterThan(3 * 16 * 35);

    const hf = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(hf.chat_template).toBeUndefined(); // transformers keeps it in tokenizer_config.json
    expect(hf.architectures).toEqual(['GPT2LMHeadModel']);
    for (const dir of [out, ...checkpoints.map((c) => c.dir)]) {
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')).chat_template).toBe(ALPACA_TEMPLATE);
      expect(loadChatTemplate(dir)!.stop).toEqual(['\n\n### ']);
    }
    const model = await ModelSession.load(out, { threads: 1 });
    await model.close();
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('masks the prompt on request (exercise 7.2): a different loss from the same data', async () => {
    const losses: number[] = [];
    for (const maskPrompt of [false, true]) {
      const events: FitEvent[] = [];
      await runFinetune(
        {
          baseModelDir: base,
          outDir: path.join(tmp, `mask-${maskPrompt}`),
          workDir: path.join(tmp, `mask-${maskPrompt}-work`),
          task: { type: 'instruction', maskPrompt },
          method: { type: 'last_blocks', n: 1 },
          train: instructions.slice(0, 4),
          epochs: 1,
          batchSize: 4,
          lr: 1e-3,
          seed: 5,
          threads: 1,
        },
        { onEvent: (e) => events.push(e) },
      );
      losses.push(events[0]!.trainLoss);
    }
    expect(losses[0]).not.toBe(losses[1]);
  });
});

describe('classification finetuning', () => {
  it('the classification graph: loss and gradients (head, ln_f, last block) match the float64 reference, rows read at their last real token', async () => {
    const small: GPTConfig = { vocabSize: 61, contextLength: 8, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, labels: ['x', 'y', 'z'] };
    const params = randomParams(small, 11);
    const trainable = parameterSpecs(small).filter((s) => /^h\.1\.|^ln_f\.|^score\./.test(s.name));
    const layout = new FlatLayout(trainable);
    const frozen = new Map(parameterSpecs(small).filter((s) => !layout.byName.has(s.name)).map((s) => [s.name, { kind: 'memory' as const, data: params.get(s.name)!.data, shape: s.shape }]));
    const [B, T] = [3, 6];
    const rng = new Rng(12);
    const rows = [6, 2, 4].map((n) => Array.from({ length: n }, () => rng.int(small.vocabSize)));
    const labels = [2, 0, 1];
    const tokens = new BigInt64Array(B * T).fill(60n); // padding after each row's tokens must not matter
    rows.forEach((r, b) => r.forEach((t, i) => (tokens[b * T + i] = BigInt(t))));
    const batch = { tokens, targets: BigInt64Array.from(labels.map(BigInt)), count: B, lastRows: BigInt64Array.from(rows.map((r, b) => BigInt(b * T + r.length - 1))) };
    const session = await TrainSession.create(small, layout, frozen, { batchSize: B, seqLen: T, train: true, head: 'classify', threads: 1 });
    const grads = layout.alloc();
    const loss = await session.run(layout.pack(params), batch, { grads });
    await session.close();
    const referenceLoss = () =>
      rows.reduce((sum, r, b) => {
        const logits = referenceClassifierLogits(small, params, r);
        const max = Math.max(...logits);
        return sum + max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0)) - logits[labels[b]!]!;
      }, 0) / B;
    expect(Math.abs(loss - referenceLoss())).toBeLessThan(1e-5);
    for (const seg of layout.segments) {
      const view = params.get(seg.name)!.data;
      const i = rng.int(seg.size);
      const numeric = centralDifference(view, i, referenceLoss);
      expect(Math.abs(grads[seg.offset + i]! - numeric), `${seg.name}[${i}]`).toBeLessThan(2e-4 + 2e-3 * Math.abs(numeric));
    }
  });

  // Separable by the last word: the head reads the last real token.
  const make = (n: number, offset: number): ClassificationRecord[] =>
    Array.from({ length: n }, (_, i) => {
      const w = words[(i + offset) % words.length]!;
      return i % 2 ? { text: `the ${w} was lovely`, label: 'positive' } : { text: `${w} ${w} was awful`, label: 'negative' };
    });

  it('learns a separable task with last_blocks (block, ln_f, head), frozen tensors untouched, served by ClassifierSession as the reference computes', async () => {
    const out = path.join(tmp, 'classifier');
    const events: FitEvent[] = [];
    const result = await runFinetune(
      {
        baseModelDir: base,
        outDir: out,
        workDir: path.join(tmp, 'classifier-work'),
        task: { type: 'classification' },
        method: { type: 'last_blocks', n: 1 },
        train: make(24, 0),
        validation: make(8, 7),
        epochs: 4,
        batchSize: 8,
        lr: 1e-2,
        seed: 3,
        threads: 1,
      },
      { onEvent: (e) => events.push(e) },
    );
    expect(result.finalValAccuracy).toBe(1);
    expect(events[0]!.valAccuracy).toBeDefined();
    expect(events.at(-1)!.trainAccuracy).toBeDefined();

    const hf = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(hf.architectures).toEqual(['GPT2ForSequenceClassification']);
    expect(hf.id2label).toEqual({ 0: 'negative', 1: 'positive' });
    expect(hf.pad_token_id).toBe(50256);
    expect(hf.chat_template).toBeUndefined();

    // Frozen: embeddings and block 0, bit for bit. Trained: block 1, ln_f, the head.
    const before = materialize(loadCheckpoint(base).weights);
    const ckpt = loadCheckpoint(out);
    const after = materialize(ckpt.weights);
    for (const [name, t] of before) {
      const same = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(after.get(name)!.data.buffer, after.get(name)!.data.byteOffset, after.get(name)!.data.byteLength));
      expect(same, name).toBe(!/^h\.1\.|^ln_f\./.test(name));
    }

    // Served: ClassifierSession's probabilities are the float64 reference's.
    const texts = ['the comet was lovely', 'tiger tiger was awful', 'a river', ''];
    const session = await ClassifierSession.open(out, { threads: 1 });
    try {
      const got = await session.classify(texts);
      expect(got.slice(0, 2).map((g) => g.label)).toEqual(['positive', 'negative']);
      got.forEach((g, i) => {
        const tokens = encode(texts[i]!);
        const want = softmax(referenceClassifierLogits(ckpt.config, after, tokens.length ? tokens : [50256]));
        expect(Math.abs(g.probabilities.negative! - want[0]!)).toBeLessThan(1e-5);
        expect(Math.abs(g.probabilities.positive! - want[1]!)).toBeLessThan(1e-5);
      });
    } finally {
      await session.close();
    }
  });
});

describe('an untied base model (tie_word_embeddings false)', () => {
  const untied: GPTConfig = { ...cfg, tieWordEmbeddings: false };
  const untiedBase = path.join(tmp, 'untied-base');
  const spec = { baseModelDir: untiedBase, train: instructions.slice(0, 8), epochs: 1, batchSize: 4, lr: 1e-2, seed: 2, threads: 1 };
  const bits = (t: { data: Float32Array }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

  it("instruction last_blocks trains its lm_head with the last block (as the book's out_head), keeps wte, stays untied", async () => {
    saveCheckpoint(untiedBase, untied, randomInit(untied, 6, 'pytorch'));
    const out = path.join(tmp, 'untied-instruct');
    await runFinetune({ ...spec, outDir: out, workDir: path.join(tmp, 'untied-instruct-work'), task: { type: 'instruction' }, method: { type: 'last_blocks', n: 1 } });
    const before = materialize(loadCheckpoint(untiedBase).weights);
    const ckpt = loadCheckpoint(out);
    expect(ckpt.config).toMatchObject({ tieWordEmbeddings: false, chatTemplate: 'alpaca' });
    const after = materialize(ckpt.weights);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [name, t] of before) expect(bits(t).equals(bits(after.get(name)!)), name).toBe(!/^h\.1\.|^ln_f\.|^lm_head\./.test(name));
  });

  it('classification drops the language-model head: a plain GPT2ForSequenceClassification', async () => {
    const out = path.join(tmp, 'untied-classifier');
    const train: ClassificationRecord[] = words.map((w, i) => ({ text: w, label: i % 2 ? 'positive' : 'negative' }));
    await runFinetune({ ...spec, train, outDir: out, workDir: path.join(tmp, 'untied-classifier-work'), task: { type: 'classification' }, method: { type: 'last_blocks', n: 1 } });
    const hf = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(hf.architectures).toEqual(['GPT2ForSequenceClassification']);
    const ckpt = loadCheckpoint(out);
    expect(ckpt.weights.has('lm_head.weight')).toBe(false);
    expect(ckpt.weights.has('score.weight')).toBe(true);
  });
});
