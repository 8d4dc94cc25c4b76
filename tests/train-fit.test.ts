// The one training loop and state: pretraining and finetuning both checkpoint through
// training_state.safetensors (scratchgpt-training-state/2) and resume bit for bit through it;
// checkpoints of the two formats before it (tests/fixtures/old-checkpoints, written by the old
// code) resume to the parameters of an uninterrupted run of today's code.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { openSafetensors } from '../src/model/safetensors.js';
import type { ClassificationRecord } from '../src/datasets/index.js';
import { runFinetune, type FinetuneSpec } from '../src/train/finetune.js';
import { TrainingCancelled, type FitEvent } from '../src/train/fit.js';
import { Pretrainer, TRAIN_DEFAULTS, type TrainOptions } from '../src/train/pretrain.js';
import { STATE_FILE, STATE_FORMAT, TrainingState } from '../src/train/state.js';

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/old-checkpoints');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-fit-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

// The pretraining fixture's run: 1 layer, 16 wide, dropout, 2 micro-batches a step, clipping, warmup.
const pcfg: GPTConfig = { vocabSize: 61, contextLength: 8, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0.1, qkvBias: true, layerNormEpsilon: 1e-5 };
const tokens = Int32Array.from({ length: 37 }, (_, i) => (i * 17 + 3) % 61);
const data = { train: tokens, val: tokens.slice(0, 20) };
const popts: TrainOptions = { ...TRAIN_DEFAULTS, batchSize: 2, seqLen: 6, stride: 6, gradAccum: 2, maxSteps: 6, lr: 3e-3, minLr: 3e-4, warmupSteps: 2, gradClip: 0.5, seed: 5 };
const cadence = { evalEvery: 2, samplePrompt: '', sampleTokens: 0 };

async function uninterruptedPretraining(): Promise<Pretrainer> {
  const t = await Pretrainer.create(pcfg, randomInit(pcfg, 11), data, popts, { threads: 1 });
  await t.fit(path.join(tmp, `straight-${Math.random().toString(36).slice(2)}`), cadence, {});
  return t;
}

function expectSameState(a: Pretrainer, b: Pretrainer): void {
  expect(b.position).toEqual(a.position);
  expect(sameBits(b.params, a.params)).toBe(true);
  expect(sameBits(b.optimizer.m, a.optimizer.m)).toBe(true);
  expect(sameBits(b.optimizer.v, a.optimizer.v)).toBe(true);
  expect(b.optimizer.step).toBe(a.optimizer.step);
}

describe('pretraining through the one loop', () => {
  it('stopped by its signal after step 3 (evaluated and checkpointed there), resumed: bit for bit the uninterrupted run', async () => {
    const straight = await uninterruptedPretraining();
    const dir = path.join(tmp, 'stopped');
    const first = await Pretrainer.create(pcfg, randomInit(pcfg, 11), data, popts, { threads: 1 });
    const ctl = new AbortController();
    const events: FitEvent[] = [];
    const stop = first.fit(dir, cadence, { note: 'kept' }, { signal: ctl.signal, saveOnCancel: true, onEvent: (e) => (events.push(e), e.step === 3 && ctl.abort()) });
    await expect(stop).rejects.toBeInstanceOf(TrainingCancelled);
    await first.close();
    expect(events.filter((e) => e.evaluated).map((e) => e.step)).toEqual([2, 3]);

    const file = openSafetensors(path.join(dir, STATE_FILE));
    expect(file.metadata.format).toBe(STATE_FORMAT);
    expect([...file.tensors.keys()].filter((k) => k.endsWith('.h.0.ln_1.weight')).sort()).toEqual(['m.h.0.ln_1.weight', 'p.h.0.ln_1.weight', 'v.h.0.ln_1.weight']);
    expect(Pretrainer.savedState(dir)).toMatchObject({ position: { step: 3, microBatches: 6 }, extra: { note: 'kept' } });

    const resumed = await Pretrainer.resume(dir, data, {}, { threads: 1 });
    await resumed.fit(dir, cadence, {});
    expectSameState(straight, resumed);
    await Promise.all([straight.close(), resumed.close()]);
  });

  it('refuses to resume on other training data', async () => {
    const dir = path.join(tmp, 'other-data');
    const t = await Pretrainer.create(pcfg, randomInit(pcfg, 11), data, { ...popts, gradAccum: 1 }, { threads: 1 });
    await t.step();
    t.save(dir);
    await t.close();
    await expect(Pretrainer.resume(dir, { ...data, train: tokens.map((x) => (x + 1) % 61) })).rejects.toThrow(/training data differs/);
  });
});

describe('old checkpoints', () => {
  it('scratchgpt-training-state/1 (pretraining, step 4 of 6) resumes to the parameters and moments of an uninterrupted run', async () => {
    const dir = path.join(tmp, 'pretrain-v1');
    fs.cpSync(path.join(FIXTURES, 'pretrain-v1'), dir, { recursive: true });
    expect(openSafetensors(path.join(dir, STATE_FILE)).metadata.format).toBe('scratchgpt-training-state/1');
    expect(Pretrainer.savedState(dir)).toMatchObject({ position: { step: 4, microBatches: 8 }, extra: { note: 'fixture' } });
    const straight = await uninterruptedPretraining();
    const resumed = await Pretrainer.resume(dir, data, {}, { threads: 1 });
    await resumed.fit(dir, cadence, {});
    expectSameState(straight, resumed);
    // its next checkpoint is in the one format
    expect(openSafetensors(path.join(dir, STATE_FILE)).metadata.format).toBe(STATE_FORMAT);
    await Promise.all([straight.close(), resumed.close()]);
  });

  it('scratchgpt-finetune-state/1 (LoRA classification, newest checkpoint step 4 of 8) resumes to the model of an uninterrupted run', async () => {
    const fcfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
    const base = path.join(tmp, 'finetune-base');
    saveCheckpoint(base, fcfg, randomInit(fcfg, 2));
    const words = ['red', 'green', 'blue', 'gold', 'grey', 'pink', 'teal', 'navy', 'plum', 'rust', 'sand', 'jade', 'ruby', 'onyx', 'lime', 'snow', 'coal', 'sky', 'moss', 'rose'];
    const records: ClassificationRecord[] = words.map((w, i) => ({ text: i % 3 ? `a ${w} thing` : `${w}`, label: i % 2 ? 'odd' : 'even' }));
    const spec = (name: string): FinetuneSpec => ({
      baseModelDir: base, outDir: path.join(tmp, `${name}.out`), workDir: path.join(tmp, `${name}.work`), task: { type: 'classification' }, method: { type: 'lora', rank: 2, alpha: 2 },
      train: records.slice(0, 16), validation: records.slice(16), epochs: 2, batchSize: 4, lr: 1e-2, seed: 9, threads: 1, checkpointEverySteps: 3,
    });
    const reference = spec('reference');
    const expected = await runFinetune(reference);

    const old = spec('finetune-v1');
    fs.cpSync(path.join(FIXTURES, 'finetune-v1.work'), old.workDir, { recursive: true });
    expect(TrainingState.record(path.join(old.workDir, 'checkpoints', 'step-000004'))).toMatchObject({ position: { step: 4 }, legacy: 'scratchgpt-finetune-state/1' });
    const events: FitEvent[] = [];
    const result = await runFinetune(old, { onEvent: (e) => events.push(e) });
    expect(events[0]!.step).toBe(5);
    expect({ ...result, outDir: '' }).toEqual({ ...expected, outDir: '' });
    const [a, b] = [materialize(loadCheckpoint(reference.outDir).weights), materialize(loadCheckpoint(old.outDir).weights)];
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, t] of a) expect(sameBits(t.data, b.get(name)!.data), name).toBe(true);
  });

  it('a training state of an unknown format is refused, naming the formats this version reads', () => {
    const dir = path.join(tmp, 'unknown');
    fs.cpSync(path.join(FIXTURES, 'pretrain-v1'), dir, { recursive: true });
    const file = path.join(dir, STATE_FILE);
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.from(bytes.toString('latin1').replace('scratchgpt-training-state/1', 'scratchgpt-training-state/9'), 'latin1'));
    expect(() => TrainingState.record(dir)).toThrow(/unknown training state format 'scratchgpt-training-state\/9'.*scratchgpt-training-state\/2/);
  });
});
