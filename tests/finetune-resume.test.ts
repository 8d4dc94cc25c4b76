// Resuming finetuning: a run cancelled part-way and started again on the same work folder ends
// with exactly the parameters of an uninterrupted run, also when a checkpoint write was cut
// short (temporary files left behind); a work folder of another run is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import type { AlpacaRecord, ClassificationRecord } from '../src/datasets/index.js';
import { runFinetune, type FinetuneHooks, type FinetuneResult, type FinetuneSpec } from '../src/train/finetune.js';
import { TrainingCancelled, type FitEvent } from '../src/train/fit.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-resume-test-'));
const base = path.join(tmp, 'base');
beforeAll(() => saveCheckpoint(base, cfg, randomInit(cfg, 2)));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const words = ['red', 'green', 'blue', 'gold', 'grey', 'pink', 'teal', 'navy', 'plum', 'rust', 'sand', 'jade', 'ruby', 'onyx', 'lime', 'snow', 'coal', 'sky', 'moss', 'rose'];
const classification: ClassificationRecord[] = words.map((w, i) => ({ text: i % 3 ? `a ${w} thing` : `${w}`, label: i % 2 ? 'odd' : 'even' }));
const instructions: AlpacaRecord[] = words.map((w) => ({ instruction: `Name a colour like ${w}.`, input: '', output: w }));

const cases: { name: string; spec: Omit<FinetuneSpec, 'outDir' | 'workDir'> }[] = [
  {
    name: 'classification with LoRA (adapters, head and moments in the state)',
    spec: {
      baseModelDir: base, task: { type: 'classification' }, method: { type: 'lora', rank: 2, alpha: 2 },
      train: classification.slice(0, 16), validation: classification.slice(16), epochs: 3, batchSize: 4, lr: 1e-2, seed: 9, threads: 1, checkpointEverySteps: 5,
    },
  },
  {
    name: 'instruction, full finetuning',
    spec: {
      baseModelDir: base, task: { type: 'instruction', maskPrompt: true }, method: { type: 'full' },
      train: instructions.slice(0, 16), validation: instructions.slice(16), epochs: 3, batchSize: 4, lr: 1e-3, seed: 9, threads: 1, checkpointEverySteps: 5,
    },
  },
];

let counter = 0;
const dirs = () => {
  const n = counter++;
  return { outDir: path.join(tmp, `out${n}`), workDir: path.join(tmp, `work${n}`) };
};

const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function expectSameModel(a: string, b: string): void {
  const [pa, pb] = [materialize(loadCheckpoint(a).weights), materialize(loadCheckpoint(b).weights)];
  expect([...pb.keys()]).toEqual([...pa.keys()]);
  for (const [name, t] of pa) expect(sameBits(t.data, pb.get(name)!.data), name).toBe(true);
  expect(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(a, 'config.json'), 'utf8'));
}

/** Runs until the event for step `k`, then cancels; returns the steps seen. */
async function cancelAt(spec: FinetuneSpec, k: number, extra: Partial<FinetuneHooks> = {}): Promise<number[]> {
  const ctl = new AbortController();
  const steps: number[] = [];
  const run = runFinetune(spec, { ...extra, signal: ctl.signal, onEvent: (e) => (steps.push(e.step), e.step === k && ctl.abort()) });
  await expect(run).rejects.toBeInstanceOf(TrainingCancelled);
  return steps;
}

async function resume(spec: FinetuneSpec): Promise<{ result: FinetuneResult; events: FitEvent[] }> {
  const events: FitEvent[] = [];
  const result = await runFinetune(spec, { onEvent: (e) => events.push(e) });
  return { result, events };
}

describe.each(cases)('resume: $name', ({ spec }) => {
  let reference: { spec: FinetuneSpec; result: FinetuneResult };
  beforeAll(async () => {
    const s = { ...spec, ...dirs() };
    reference = { spec: s, result: await runFinetune(s) };
  });

  it('cancelled after step 7, resumed from the step-5 checkpoint: the same final parameters', async () => {
    const s = { ...spec, ...dirs() };
    expect(await cancelAt(s, 7)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(fs.existsSync(s.outDir)).toBe(false);
    const { result, events } = await resume(s);
    expect(events[0]!.step).toBe(6); // steps 6 and 7 are redone
    expectSameModel(reference.spec.outDir, s.outDir);
    expect({ ...result, outDir: '' }).toEqual({ ...reference.result, outDir: '' });
  });

  it('with saveOnCancel the cancelled step is kept; leftovers of an interrupted checkpoint write do not matter', async () => {
    const s = { ...spec, ...dirs() };
    await cancelAt(s, 6, { saveOnCancel: true });
    const ckpts = path.join(s.workDir, 'checkpoints');
    expect(fs.readdirSync(ckpts).sort()).toEqual(['step-000004', 'step-000005', 'step-000006']);
    // Only the newest checkpoint keeps a training state; older ones stay loadable models.
    expect(fs.existsSync(path.join(ckpts, 'step-000005', 'training_state.safetensors'))).toBe(false);
    loadCheckpoint(path.join(ckpts, 'step-000005'));
    // A kill during the next checkpoint: a half-written temporary folder, and a temp file beside the newest state.
    const partial = path.join(ckpts, '.tmp-step-000008-4242-deadbeef');
    fs.mkdirSync(partial);
    fs.copyFileSync(path.join(ckpts, 'step-000006', 'config.json'), path.join(partial, 'config.json'));
    fs.writeFileSync(path.join(partial, 'model.safetensors'), Buffer.alloc(100));
    const stray = path.join(ckpts, 'step-000006', 'training_state.safetensors.tmp-4242-cafe');
    fs.writeFileSync(stray, Buffer.alloc(10));
    const { events } = await resume(s);
    expect(events[0]!.step).toBe(7);
    expect(fs.existsSync(partial) || fs.existsSync(stray)).toBe(false);
    expectSameModel(reference.spec.outDir, s.outDir);
  });

  it('stopped during an epoch-end validation (saveOnCancel): that step is kept and validated on resume, also after a kill while its checkpoint was being replaced', async () => {
    const s = { ...spec, ...dirs() };
    // An AbortSignal that turns aborted at its second read after the event of step 3: the first
    // read is the loop's check before step 4, the second comes from the validation after it.
    let last = -1;
    let reads = 0;
    const signal = { get aborted() { return last === 3 && ++reads >= 2; } } as AbortSignal;
    await expect(runFinetune(s, { signal, saveOnCancel: true, onEvent: (e) => ((last = e.step), (reads = 0)) })).rejects.toBeInstanceOf(TrainingCancelled);
    const ckpts = path.join(s.workDir, 'checkpoints');
    expect(fs.readdirSync(ckpts)).toEqual(['step-000004']);
    // As if killed after moving the old checkpoint aside and before renaming the new one in.
    fs.renameSync(path.join(ckpts, 'step-000004'), path.join(ckpts, 'step-000004.replaced-4242'));
    const { events } = await resume(s);
    expect(events[0]!.step).toBe(4);
    expect(events[0]!.valLoss).toBeDefined();
    expect(fs.readdirSync(ckpts).filter((f) => f.includes('replaced'))).toEqual([]);
    expectSameModel(reference.spec.outDir, s.outDir);
  });

  it('refuses a work folder that holds another run', async () => {
    const s = { ...spec, ...dirs() };
    await cancelAt(s, 1);
    await expect(runFinetune({ ...s, lr: s.lr * 2 })).rejects.toThrow(/another finetuning run/);
  });
});
