// The training engine on tiny models: the training graph's loss and gradients against the
// float64 reference (central differences), one step lowering the loss, seeded dropout, and
// resume reproducing an uninterrupted run bit for bit.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from '../src/model/config.js';
import { parameterSpecs } from '../src/model/gpt.js';
import type { Params } from '../src/model/params.js';
import { Rng } from '../src/model/rng.js';
import { AdamW } from '../src/train/adamw.js';
import { IGNORE_INDEX, type Batch } from '../src/train/data.js';
import { FlatLayout } from '../src/train/flat.js';
import { dropoutMask, TrainSession } from '../src/train/session.js';
import { Pretrainer, TRAIN_DEFAULTS, type TrainOptions } from '../src/train/pretrain.js';
import { randomParams, referenceForward } from './reference/gpt-reference.js';
import { centralDifference } from './reference/finite-difference.js';

const cfg: GPTConfig = { vocabSize: 61, contextLength: 8, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const [B, T] = [2, 6];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function fixedBatch(seed = 3): Batch {
  const rng = new Rng(seed);
  const tokens = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(cfg.vocabSize)));
  const targets = BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % 5 === 4 ? IGNORE_INDEX : rng.int(cfg.vocabSize)));
  return { tokens, targets, count: [...targets].filter((t) => t !== BigInt(IGNORE_INDEX)).length };
}

/** Mean cross-entropy over non-ignored targets, in float64 through the reference forward. */
function referenceLoss(params: Params, batch: Batch, config = cfg): number {
  let sum = 0;
  let count = 0;
  for (let b = 0; b < B; b++) {
    const tokens = Array.from(batch.tokens.subarray(b * T, (b + 1) * T), Number);
    const logits = referenceForward(config, params, tokens);
    for (let t = 0; t < T; t++) {
      const target = Number(batch.targets[b * T + t]);
      if (target === IGNORE_INDEX) continue;
      const row = logits[t]!;
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
      sum += lse - row[target]!;
      count++;
    }
  }
  return sum / count;
}

describe('training graph', () => {
  const layout = new FlatLayout(parameterSpecs(cfg));

  it('the eval graph loss equals the reference cross-entropy', async () => {
    const params = randomParams(cfg, 1);
    const session = await TrainSession.create(cfg, layout, new Map(), { batchSize: B, seqLen: T, train: false, threads: 1 });
    const batch = fixedBatch();
    expect(Math.abs((await session.run(layout.pack(params), batch)) - referenceLoss(params, batch))).toBeLessThan(1e-5);
    await session.close();
  });

  it('gradients of a whole tiny GPT match central differences of the float64 loss', async () => {
    const params = randomParams(cfg, 2);
    const flat = layout.pack(params);
    const session = await TrainSession.create(cfg, layout, new Map(), { batchSize: B, seqLen: T, train: true, threads: 1 });
    const batch = fixedBatch(4);
    const grads = layout.alloc();
    const loss = await session.run(flat, batch, { grads });
    expect(Math.abs(loss - referenceLoss(params, batch))).toBeLessThan(1e-5);
    await session.close();

    // Every tensor, a few random coordinates each (tokens that occur, for the embedding rows).
    const rng = new Rng(9);
    const used = [...new Set(Array.from(batch.tokens, Number))];
    let checked = 0;
    for (const seg of layout.segments) {
      const view = params.get(seg.name)!.data;
      for (let k = 0; k < 2; k++) {
        const i = seg.name === 'wte.weight' ? used[rng.int(used.length)]! * cfg.nEmbd + rng.int(cfg.nEmbd) : rng.int(seg.size);
        const numeric = centralDifference(view, i, () => referenceLoss(params, batch));
        const analytic = grads[seg.offset + i]!;
        expect(Math.abs(analytic - numeric), `${seg.name}[${i}]: ORT ${analytic}, central difference ${numeric}`).toBeLessThan(2e-4 + 2e-3 * Math.abs(numeric));
        checked++;
      }
    }
    expect(checked).toBe(2 * layout.segments.length);
    // a row of wte that no token uses gets gradient only through the tied output head
    expect(grads.subarray(0, layout.size).some((g) => g !== 0)).toBe(true);
  });

  it('untied head: gradients of lm_head.weight (and the rest) match central differences; unused wte rows get none', async () => {
    const untied: GPTConfig = { ...cfg, tieWordEmbeddings: false, qkvBias: false };
    const untiedLayout = new FlatLayout(parameterSpecs(untied));
    expect(untiedLayout.segments.at(-1)!.name).toBe('lm_head.weight');
    const params = randomParams(untied, 12);
    const session = await TrainSession.create(untied, untiedLayout, new Map(), { batchSize: B, seqLen: T, train: true, threads: 1 });
    const batch = fixedBatch(13);
    const grads = untiedLayout.alloc();
    const loss = await session.run(untiedLayout.pack(params), batch, { grads });
    expect(Math.abs(loss - referenceLoss(params, batch, untied))).toBeLessThan(1e-5);
    await session.close();

    const rng = new Rng(14);
    const used = [...new Set(Array.from(batch.tokens, Number))];
    const check = (name: string, i: number) => {
      const seg = untiedLayout.byName.get(name)!;
      const view = params.get(name)!.data;
      const numeric = centralDifference(view, i, () => referenceLoss(params, batch, untied));
      const analytic = grads[seg.offset + i]!;
      expect(Math.abs(analytic - numeric), `${name}[${i}]: ORT ${analytic}, central difference ${numeric}`).toBeLessThan(2e-4 + 2e-3 * Math.abs(numeric));
    };
    for (let k = 0; k < 8; k++) check('lm_head.weight', rng.int(untied.vocabSize * untied.nEmbd)); // every row gets gradient (softmax over the vocabulary)
    for (const name of ['wte.weight', 'h.0.attn.c_attn.weight', 'h.1.mlp.c_proj.bias', 'ln_f.weight']) {
      const size = untiedLayout.byName.get(name)!.size;
      for (let k = 0; k < 2; k++) check(name, name === 'wte.weight' ? used[rng.int(used.length)]! * untied.nEmbd + rng.int(untied.nEmbd) : rng.int(size));
    }
    // wte is only an embedding now: rows of tokens the batch does not contain get exactly zero
    const wte = untiedLayout.byName.get('wte.weight')!;
    for (let v = 0; v < untied.vocabSize; v++) {
      const row = grads.subarray(wte.offset + v * untied.nEmbd, wte.offset + (v + 1) * untied.nEmbd);
      expect(row.some((g) => g !== 0), `wte row ${v}`).toBe(used.includes(v));
    }
  });

  it('one AdamW step lowers the loss on a fixed batch', async () => {
    const session = await TrainSession.create(cfg, layout, new Map(), { batchSize: B, seqLen: T, train: true, threads: 1 });
    const flat = layout.pack(randomParams(cfg, 5, 0.05));
    const batch = fixedBatch(6);
    const grads = layout.alloc();
    const opt = new AdamW(layout);
    const before = await session.run(flat, batch, { grads });
    opt.update(flat, grads, 1e-2);
    const after = await session.run(flat, batch, { grads });
    expect(after).toBeLessThan(before - 0.05);
    await session.close();
  });

  it('dropout: seeded masks at the rate asked for, the same rng gives the same loss', async () => {
    const mask = new Uint8Array(100_001);
    dropoutMask(new Rng(1), 0.25, mask);
    const kept = mask.reduce((s, x) => s + x, 0) / mask.length;
    expect(Math.abs(kept - 0.75)).toBeLessThan(0.01);
    const again = new Uint8Array(mask.length);
    dropoutMask(new Rng(1), 0.25, again);
    expect(again).toEqual(mask);

    const dcfg = { ...cfg, dropout: 0.2 };
    const session = await TrainSession.create(dcfg, layout, new Map(), { batchSize: B, seqLen: T, train: true, threads: 1 });
    expect(session.dropoutSites.map((s) => s.name)).toEqual([
      'dropout.emb',
      ...[0, 1].flatMap((l) => [`dropout.h.${l}.attn_weights`, `dropout.h.${l}.resid_attn`, `dropout.h.${l}.resid_mlp`]),
    ]);
    expect(session.dropoutSites[1]!.shape).toEqual([B, cfg.nHead, T, T]);
    const flat = layout.pack(randomParams(cfg, 7));
    const batch = fixedBatch();
    const run = (seed: number) => session.run(flat, batch, { grads: layout.alloc(), rng: new Rng(seed) });
    const [a, b, c] = [await run(1), await run(1), await run(2)];
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    await expect(session.run(flat, batch, { grads: layout.alloc() })).rejects.toThrow(/rng/);
    await session.close();
  });
});

describe('Pretrainer', () => {
  // 2 windows of 6 tokens per batch; 40 tokens give 6 windows → 3 batches per epoch
  const tokens = Int32Array.from({ length: 37 }, (_, i) => (i * 17 + 3) % cfg.vocabSize);
  const data = { train: tokens, val: tokens.slice(0, 20) };
  const opts: TrainOptions = {
    ...TRAIN_DEFAULTS,
    batchSize: B,
    seqLen: T,
    stride: T,
    gradAccum: 2,
    maxSteps: 6,
    lr: 3e-3,
    minLr: 3e-4,
    warmupSteps: 2,
    gradClip: 0.5,
    seed: 5,
  };
  const dcfg = { ...cfg, dropout: 0.1 };

  it('resume reproduces an uninterrupted run bit for bit (dropout, accumulation, clipping, shuffling)', async () => {
    const straight = await Pretrainer.create(dcfg, randomParams(cfg, 11, 0.05), data, opts, { threads: 1 });
    const losses: number[] = [];
    while (!straight.done) losses.push((await straight.step()).loss);
    expect(losses).toHaveLength(6);
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);

    const first = await Pretrainer.create(dcfg, randomParams(cfg, 11, 0.05), data, opts, { threads: 1 });
    for (let s = 0; s < 4; s++) expect((await first.step()).loss).toBe(losses[s]);
    const dir = path.join(tmp, 'resume');
    first.save(dir, { note: 'test' });
    await first.close();
    expect(Pretrainer.savedState(dir).extra).toEqual({ note: 'test' });

    const resumed = await Pretrainer.resume(dir, data, {}, { threads: 1 });
    expect(resumed.position).toEqual({ step: 4, microBatches: 8, tokensSeen: 8 * B * T });
    while (!resumed.done) losses.push((await resumed.step()).loss);
    expect(losses.slice(6)).toEqual(losses.slice(4, 6));
    expect(resumed.params).toEqual(straight.params);
    expect(resumed.optimizer.m).toEqual(straight.optimizer.m);
    expect(resumed.optimizer.v).toEqual(straight.optimizer.v);
    await straight.close();
    await resumed.close();
  });

  it('accumulating 2 micro-batches of 2 updates like one batch of 4', async () => {
    const run = async (batchSize: number, gradAccum: number) => {
      const trainer = await Pretrainer.create(cfg, randomParams(cfg, 15, 0.05), data, { ...opts, batchSize, gradAccum, gradClip: 0.05, warmupSteps: 0 }, { threads: 1 });
      const r = await trainer.step();
      await trainer.close();
      return { ...r, params: trainer.params };
    };
    const [acc, big] = [await run(2, 2), await run(4, 1)];
    expect(acc.loss).toBeCloseTo(big.loss, 5);
    expect(acc.gradNorm).toBeGreaterThan(0.05); // clipping applied, to the norm of the mean
    expect(acc.gradNorm / big.gradNorm).toBeCloseTo(1, 5);
    let maxDiff = 0;
    acc.params.forEach((x, i) => (maxDiff = Math.max(maxDiff, Math.abs(x - big.params[i]!))));
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it('refuses to resume from a model that does not belong to the training state', async () => {
    const trainer = await Pretrainer.create(cfg, randomParams(cfg, 12, 0.05), data, { ...opts, gradAccum: 1 }, { threads: 1 });
    await trainer.step();
    const dir = path.join(tmp, 'torn');
    trainer.save(dir);
    trainer.params[0]! += 1; // as if the next save's model landed but its state did not
    const { saveCheckpoint } = await import('../src/model/checkpoint.js');
    saveCheckpoint(dir, cfg, trainer.allParams());
    await expect(Pretrainer.resume(dir, data)).rejects.toThrow(/does not belong/);
    await trainer.close();
  });

  it('trains only the parameters asked for; the rest are frozen initializers', async () => {
    const init = randomParams(cfg, 14, 0.05);
    const copy = new Map([...init].map(([k, t]) => [k, { shape: t.shape, data: t.data.slice() }]));
    const trainer = await Pretrainer.create(cfg, init, data, { ...opts, gradAccum: 1, trainable: '^h\\.1\\.' }, { threads: 1 });
    expect(trainer.layout.segments.every((s) => s.name.startsWith('h.1.'))).toBe(true);
    const before = await trainer.evaluate();
    for (let s = 0; s < 3; s++) await trainer.step();
    expect((await trainer.evaluate())!).toBeLessThan(before!);
    for (const [name, t] of trainer.allParams()) {
      const changed = t.data.some((x, i) => x !== copy.get(name)!.data[i]);
      expect(changed, name).toBe(name.startsWith('h.1.'));
    }
    await trainer.close();
  });

  it('evaluates the validation loss as a token-weighted mean and samples greedily', async () => {
    const trainer = await Pretrainer.create(cfg, randomParams(cfg, 13, 0.05), data, { ...opts, gradAccum: 1 }, { threads: 1 });
    const val = await trainer.evaluate();
    expect(val).toBeGreaterThan(0);
    const sample = await trainer.sample([1, 2, 3], 3);
    expect(sample).toHaveLength(3);
    expect(await trainer.sample([1, 2, 3], 3)).toEqual(sample);
    await trainer.close();
  });
});
