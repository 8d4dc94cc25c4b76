// Speculative decoding: a model with an int8 (or int4) draft gives exactly the tokens and logprobs
// of plain fp32 decoding, greedy or sampled, in fewer fp32 calls, and never drafts past the
// context or max_tokens.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { generate, Generation, type StepResult } from '../src/model/generation.js';
import type { SamplingOptions } from '../src/model/sampler.js';
import { ModelSession, type ForwardRow } from '../src/model/session.js';
import { DraftPolicy, type DraftStats } from '../src/model/speculative.js';
import type { SeqEvent } from '../src/server/protocol.js';
import { Scheduler } from '../src/server/scheduler.js';
import { randomParams } from './reference/gpt-reference.js';

const cfg: GPTConfig = { vocabSize: 200, contextLength: 48, nEmbd: 64, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const weights = new Map<string, WeightSource>([...randomParams(cfg, 3, 0.1)].map(([k, t]) => [k, { kind: 'memory', data: t.data, shape: t.shape }]));
const prompt = [5, 17, 42, 99, 7, 150];

let plain: ModelSession;
beforeAll(async () => {
  plain = await ModelSession.create(cfg, weights);
});
afterAll(() => plain.close());

async function run(model: ModelSession, options: SamplingOptions, tokens = prompt): Promise<StepResult[]> {
  const steps: StepResult[] = [];
  for await (const s of generate(model, tokens, options)) steps.push(s);
  return steps;
}

/** Runs `options` on plain fp32 and on a drafting model; returns both runs and the drafting model's fp32 and draft calls. */
async function compare(draft: 'int8' | 'int4', options: SamplingOptions, tokens = prompt) {
  const model = await ModelSession.create(cfg, weights, { draft, draftTokens: 4 });
  const forward = vi.spyOn(model, 'forward');
  const [want, got] = [await run(plain, options, tokens), await run(model, options, tokens)];
  const calls = forward.mock.calls.map(([, opts]) => (opts?.draft ? 'draft' : 'fp32'));
  await model.close();
  return { want, got, fp32: calls.filter((c) => c === 'fp32').length, drafts: calls.filter((c) => c === 'draft').length };
}

function expectSame(want: StepResult[], got: StepResult[]): void {
  expect(got.map((s) => s.token)).toEqual(want.map((s) => s.token));
  expect(got.map((s) => s.text).join('')).toBe(want.map((s) => s.text).join(''));
  expect(got.at(-1)!.finishReason).toBe(want.at(-1)!.finishReason);
  got.forEach((s, i) => {
    if (want[i]!.logprob !== undefined) expect(s.logprob).toBeCloseTo(want[i]!.logprob!, 4); // checked k+1 at a time: fp32 rounding apart
  });
}

describe('speculative decoding', () => {
  it.each(['int8', 'int4'] as const)('greedy with a %s draft: the same tokens and logprobs as plain fp32 decoding, in fewer fp32 calls', async (draft) => {
    const { want, got, fp32, drafts } = await compare(draft, { maxTokens: 36, temperature: 0, logprobs: 2 });
    expectSame(want, got);
    console.log(`${draft} draft: ${got.length} tokens in ${fp32} fp32 calls (1 prefill) and ${drafts} draft calls`);
    expect(drafts).toBeGreaterThan(0);
    expect(fp32).toBeLessThan(got.length);
  });

  it('seeded sampling (temperature, top-p, penalties): the same tokens as plain decoding', async () => {
    const { want, got } = await compare('int8', { maxTokens: 30, temperature: 0.8, topP: 0.95, frequencyPenalty: 0.5, seed: 11, logprobs: 1 });
    expectSame(want, got);
  });

  it('sampling at temperature 1: proposals are the sequence\'s own draws from the draft, so most are taken', async () => {
    const { want, got, fp32, drafts } = await compare('int8', { maxTokens: 36, temperature: 1, seed: 4 });
    expectSame(want, got);
    console.log(`temperature 1, int8 draft: ${got.length} tokens in ${fp32} fp32 calls (1 prefill) and ${drafts} draft calls`);
    expect(fp32).toBeLessThan(got.length / 2);
  });

  it('drafts neither past the context nor past max_tokens: ends at both exactly as plain decoding', async () => {
    const long = Array.from({ length: cfg.contextLength - 9 }, (_, i) => (i * 37) % cfg.vocabSize);
    const atContext = await compare('int8', { maxTokens: 9, temperature: 0 }, long); // the last token at the last position
    expectSame(atContext.want, atContext.got);
    expect(atContext.got).toHaveLength(9);
    const atMax = await compare('int8', { maxTokens: 3, temperature: 0 });
    expectSame(atMax.want, atMax.got);
    expect(atMax.got).toHaveLength(3);
    expect(atMax.drafts).toBeLessThanOrEqual(1); // after the prefill's token, one round of one proposal gives the other two
  });

  it('DraftPolicy drafts what pays: all it may after taken proposals; after refused ones plain steps, a one-proposal round every 8th', () => {
    const gen = new Generation(prompt, { maxTokens: 40, temperature: 0 }, cfg);
    const taken = new DraftPolicy();
    for (let r = 0; r < 10; r++) taken.observe(4, false);
    expect([taken.next(4, 0.26, gen), taken.next(6, 0.26, gen)]).toEqual([4, 6]);
    expect(taken.next(4, 1.5, gen)).toBe(0); // a draft call dearer than a check never pays
    const refused = new DraftPolicy();
    for (let r = 0; r < 10; r++) refused.observe(0, true);
    expect(Array.from({ length: 16 }, () => refused.next(4, 0.26, gen))).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    const half = new DraftPolicy(); // α = 1/2: 1 + 1/2 tokens for 1.26 calls' time pays, more proposals pay less
    for (let r = 0; r < 30; r++) half.observe(1, true);
    expect(half.next(4, 0.26, gen)).toBe(1);
    while (gen.tokens.length < 38) gen.step(new Float32Array(cfg.vocabSize));
    expect(taken.next(4, 0.26, gen)).toBe(1); // the 39th token: one proposal, the check's own row gives the 40th
  });

  it('a draft and quantized decode steps exclude each other; draft calls need a draft', async () => {
    await expect(ModelSession.create(cfg, weights, { draft: 'int8', quantize: 'int8' })).rejects.toThrow(/exclude each other/);
    await expect(plain.forward([{ slot: 0, tokens: [1], start: 0, logits: 'last' }], { draft: true })).rejects.toThrow(/no draft/);
  });
});

describe('the scheduler with a draft', () => {
  it('runs a sequence that is alone in speculative rounds and a batch in decode steps, each with the tokens it gets alone without a draft', async () => {
    const model = await ModelSession.create(cfg, weights, { slots: 2, draft: 'int8' });
    const calls: { rows: ForwardRow[]; draft: boolean }[] = [];
    const events: SeqEvent[] = [];
    const rounds: DraftStats[] = [];
    let finished = 0;
    const sched = new Scheduler(
      { config: model.config, cache: model.cache, draftTokens: model.draftTokens, draftCost: model.draftCost, forward: (rows, opts) => (calls.push({ rows, draft: !!opts?.draft }), model.forward(rows, opts)) },
      (m) => {
        if (m.type !== 'step') return;
        events.push(...m.events);
        if (m.draft) rounds.push(m.draft);
        finished += m.events.filter((e) => (e.type === 'token' && e.finish) || e.type === 'end').length;
      },
    );
    const loop = sched.run();
    const until = async (n: number) => {
      while (finished < n) await new Promise((r) => setTimeout(r, 2));
    };
    const specs = [
      { id: 1, prompt, options: { maxTokens: 20, temperature: 0, ignoreEos: true } },
      { id: 2, prompt: [9, 8, 7], options: { maxTokens: 12, temperature: 0.9, seed: 4, ignoreEos: true } },
      { id: 3, prompt: [1, 2, 3, 4], options: { maxTokens: 24, temperature: 0, ignoreEos: true } }, // outlives 2: alone again at the end
    ];
    sched.submit([specs[0]!]);
    await until(1);
    const aloneCalls = calls.length;
    sched.submit(specs.slice(1));
    await until(3);
    sched.close();
    await loop;
    for (const spec of specs) {
      const want = (await run(plain, spec.options, spec.prompt)).map((s) => s.token);
      expect(events.filter((e) => e.type === 'token' && e.id === spec.id).map((e) => (e.type === 'token' ? e.token : -1))).toEqual(want);
    }
    expect(calls.slice(0, aloneCalls).some((c) => c.draft)).toBe(true); // the first request drafted
    expect(calls.slice(0, aloneCalls).filter((c) => !c.draft).length).toBeLessThan(20);
    expect(calls.some((c) => !c.draft && c.rows.length === 2)).toBe(true); // 2 and 3 decoded together
    expect(calls.filter((c) => c.draft).every((c) => c.rows.length === 1)).toBe(true);
    // each round's counts, for /metrics: one proposal per draft call, some of them sampled too
    const [proposed, accepted] = [rounds.reduce((n, r) => n + r.proposed, 0), rounds.reduce((n, r) => n + r.accepted, 0)];
    expect(proposed).toBe(calls.filter((c) => c.draft).length);
    expect(accepted).toBeGreaterThan(0);
    expect(rounds.every((r) => r.accepted <= r.proposed)).toBe(true);
    await model.close();
  });
});
