// Automatic prefix caching: the block store itself (hash chain, longest match, LRU eviction under a
// budget), the scheduler's one prefill for the n choices of a prompt, and the server: the same
// greedy tokens and logprobs with and without the cache over many prompts (ending mid-block, on a
// block boundary, at the context limit; one after another and all at once), usage's cached_tokens,
// /metrics, and one cache per model.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { KVCache } from '../src/model/kv-cache.js';
import { PrefixCache } from '../src/model/prefix-cache.js';
import { ModelSession, type ForwardRow } from '../src/model/session.js';
import type { SeqEvent } from '../src/server/protocol.js';
import { Scheduler } from '../src/server/scheduler.js';
import { startServer, type RunningServer } from '../src/server/server.js';

// contextLength 64: prompts reach the context limit in a few blocks.
const cfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, chatTemplate: 'alpaca' };
const BLOCK_BYTES = 2 * cfg.nLayer * 16 * cfg.nEmbd * 4;

/** Deterministic token ids, different per seed. */
const tokens = (seed: number, n: number) => Array.from({ length: n }, (_, i) => 100 + ((seed * 7919 + i * 104729) % 20000));

describe('PrefixCache', () => {
  /** A KV cache whose slot `slot` holds a recognizable value at every position. */
  const filled = (slots = 4) => {
    const kv = new KVCache(cfg, slots, cfg.contextLength);
    for (const buf of [...kv.k, ...kv.v]) buf.forEach((_, i) => (buf[i] = i % 9973));
    return kv;
  };
  const rows = (kv: KVCache, slot: number, count: number) => kv.readPositions(slot, 0, count);

  it('keys a block by every token up to and including it', () => {
    const c = new PrefixCache(filled(), 1 << 20);
    const a = tokens(1, 40);
    expect(c.chain(a)).toHaveLength(2); // full blocks only
    expect(c.chain(a.slice(0, 32))).toEqual(c.chain(a));
    const b = [...a];
    b[3] = 7; // block 0 differs, block 1's tokens do not: both keys differ
    expect(c.chain(b)[0]).not.toBe(c.chain(a)[0]);
    expect(c.chain(b)[1]).not.toBe(c.chain(a)[1]);
    const d = [...a];
    d[20] = 7;
    expect(c.chain(d)[0]).toBe(c.chain(a)[0]);
    expect(c.chain(d)[1]).not.toBe(c.chain(a)[1]);
  });

  it('loads the longest cached prefix into a slot, always leaving the last prompt token', () => {
    const kv = filled();
    const c = new PrefixCache(kv, 1 << 20);
    const a = tokens(2, 40);
    c.store(a, 0);
    expect(c.size).toBe(2);
    kv.k[0]!.fill(0, kv.k[0]!.length / 2); // clear slots 2 and 3
    expect(c.load([...a.slice(0, 33), 5, 6], 2)).toBe(32);
    expect(rows(kv, 2, 32)).toEqual(rows(kv, 0, 32));
    expect(c.load(a.slice(0, 32), 3)).toBe(16); // on a block boundary: the last block is prefilled
    expect(c.load([...a.slice(0, 20), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 3)).toBe(16); // diverges in block 1
    expect(c.load(tokens(3, 40), 3)).toBe(0);
    expect(c.load(a.slice(0, 16), 3)).toBe(0);
    expect(c.stats()).toEqual({ queriedTokens: 35 + 32 + 32 + 40 + 16, hitTokens: 64, blocks: 2, evictions: 0 });
  });

  it('evicts least recently used blocks over its budget, a chain deepest first', () => {
    const c = new PrefixCache(filled(), 3 * BLOCK_BYTES);
    expect(c.capacity).toBe(3);
    const [a, b, d] = [tokens(4, 33), tokens(5, 33), tokens(6, 17)];
    c.store(a, 0);
    c.store(b, 1); // 4 blocks: a's second goes (a is older, and deeper before its root)
    expect(c.stats()).toMatchObject({ blocks: 3, evictions: 1 });
    expect(c.load(a, 2)).toBe(16);
    expect(c.load(b, 2)).toBe(32);
    c.load(a, 2); // a's root is now the most recent
    c.store(d, 3); // evicts b's second block, then b's root is the oldest
    expect(c.stats()).toMatchObject({ blocks: 3, evictions: 2 });
    expect(c.load(b, 2)).toBe(16);
    expect(c.load(a, 2)).toBe(16);
    expect(c.load(d, 2)).toBe(16);
  });

  it('stores no more blocks than fit its budget', () => {
    const c = new PrefixCache(filled(), BLOCK_BYTES);
    c.store(tokens(7, 64), 0);
    expect(c.stats()).toMatchObject({ blocks: 1, evictions: 0 });
  });

  it('each model has its own cache (blocks of its own K/V)', () => {
    const [kv1, kv2] = [filled(), new KVCache(cfg, 4, cfg.contextLength)];
    const [c1, c2] = [new PrefixCache(kv1, 1 << 20), new PrefixCache(kv2, 1 << 20)];
    const a = tokens(8, 40);
    c1.store(a, 0);
    expect(c2.load(a, 1)).toBe(0);
    expect(c1.load(a, 1)).toBe(32);
  });
});

let tmp: string;
let dir: string;
let other: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prefix-cache-'));
  dir = path.join(tmp, 'tiny');
  other = path.join(tmp, 'tiny-too'); // the same weights under another name: a second model
  const params = randomInit(cfg, 3);
  for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 6)); // varied logits, few near-ties
  saveCheckpoint(dir, cfg, params);
  saveCheckpoint(other, cfg, params);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
};

describe('Scheduler with a prefix cache', () => {
  async function run(prefixCacheMb: number, prompt: number[], n: number, mixed = false, prefillCallTokens?: number) {
    const model = await ModelSession.load(dir, { slots: 4, threads: 1 });
    const calls: ForwardRow[][] = [];
    const events: SeqEvent[] = [];
    const sched = new Scheduler(
      { config: model.config, cache: model.cache, forward: (rows) => (calls.push(rows), model.forward(rows)) },
      (m) => m.type === 'step' && events.push(...m.events),
      { prefixCacheMb, mixed, prefillCallTokens },
    );
    const loop = sched.run();
    sched.submit(Array.from({ length: n }, (_, id) => ({ id, prompt, options: { maxTokens: 5, temperature: 0, logprobs: 0, ignoreEos: true } })));
    await until(() => events.filter((e) => e.type === 'token' && e.finish).length === n);
    sched.close();
    await loop;
    await model.close();
    const prefilled = calls.flat().filter((r) => r.start < prompt.length).reduce((s, r) => s + r.tokens.length, 0);
    const out = (id: number) => events.filter((e) => e.type === 'token' && e.id === id).map((e) => (e.type === 'token' ? [e.token, e.logprob!] : []));
    const cached = Array.from({ length: n }, (_, id) => events.find((e) => e.type === 'token' && e.id === id && e.cached !== undefined));
    const prefillCalls = calls.filter((c) => c.some((r) => r.start < prompt.length)).map((c) => c.map((r) => r.tokens.length));
    return { prefilled, prefillCalls, outs: Array.from({ length: n }, (_, id) => out(id)), cached: cached.map((e) => (e?.type === 'token' ? e.cached : 0)) };
  }

  it('n choices of a prompt prefill its shared blocks once, in the same step, with the same tokens', async () => {
    const prompt = tokens(9, 40);
    const on = await run(1, prompt, 4);
    const off = await run(0, prompt, 4);
    expect(off.prefilled).toBe(4 * 40);
    expect(on.prefilled).toBe(40 + 3 * 1); // the leader's 40, then each follower's last token: 2 cached blocks, the rest from the leader's slot
    expect(on.cached).toEqual([0, 39, 39, 39]);
    for (let i = 0; i < 4; i++) {
      expect(on.outs[i]!.map((t) => t[0])).toEqual(off.outs[i]!.map((t) => t[0]));
      on.outs[i]!.forEach((t, j) => expect(Math.abs(t[1]! - off.outs[i]![j]![1]!)).toBeLessThan(1e-5));
    }
  });

  it('a step prefills in calls of about prefillCallTokens tokens, equal in size, with the same tokens', async () => {
    const prompt = tokens(9, 40);
    const [on, off] = [await run(1, prompt, 4, false, 10), await run(0, prompt, 4, false, 100)];
    expect(on.prefillCalls).toEqual([[40], [1, 1, 1]]); // the leader alone (longer than 10), then the followers' last tokens
    expect(off.prefillCalls).toEqual([[40, 40], [40, 40]]); // 160 tokens: 2 calls of 80
    expect(on.outs.map((o) => o.map((t) => t[0]))).toEqual(off.outs.map((o) => o.map((t) => t[0])));
    on.outs.forEach((o, i) => o.forEach((t, j) => expect(Math.abs(t[1]! - off.outs[i]![j]![1]!)).toBeLessThan(1e-5)));
  });

  it('a newcomer takes the rows past the cached blocks that it shares with a running sequence, with the same tokens', async () => {
    const system = tokens(5, 36); // two blocks and 4 tokens
    const [a, b] = [[...system, ...tokens(6, 10)], [...system, ...tokens(7, 10)]];
    async function serve(prefixCacheMb: number) {
      const model = await ModelSession.load(dir, { slots: 2, threads: 1 });
      const calls: ForwardRow[][] = [];
      const events: SeqEvent[] = [];
      const sched = new Scheduler({ config: model.config, cache: model.cache, forward: (rows) => (calls.push(rows), model.forward(rows)) }, (m) => m.type === 'step' && events.push(...m.events), { prefixCacheMb });
      const loop = sched.run();
      const options = { maxTokens: 6, temperature: 0, logprobs: 0, ignoreEos: true };
      sched.submit([{ id: 0, prompt: a, options }]);
      await until(() => events.some((e) => e.type === 'token')); // a runs
      sched.submit([{ id: 1, prompt: b, options }]);
      await until(() => events.filter((e) => e.type === 'token' && e.finish).length === 2);
      sched.close();
      await loop;
      await model.close();
      const first = events.find((e) => e.type === 'token' && e.id === 1);
      const out = events.filter((e) => e.type === 'token' && e.id === 1).map((e) => (e.type === 'token' ? [e.token, e.logprob!] : []));
      return { cached: first?.type === 'token' ? first.cached : undefined, rows: calls.flat().filter((r) => r.start + r.tokens.length === b.length), out };
    }
    const [on, off] = [await serve(1), await serve(0)];
    expect(on.cached).toBe(36); // 32 from the cache, 4 from a's slot
    expect(on.rows.map((r) => r.tokens.length)).toEqual([46, 10]); // a's prefill, then b's own 10
    expect(on.out.map((t) => t[0])).toEqual(off.out.map((t) => t[0]));
    on.out.forEach((t, j) => expect(Math.abs(t[1]! - off.out[j]![1]!)).toBeLessThan(1e-5));
  });

  it('with prefill rows in the decode call (mixed), followers still prefill after their leader', async () => {
    const prompt = tokens(12, 50);
    const [on, off] = [await run(1, prompt, 3, true), await run(0, prompt, 3, true)];
    expect(on.prefilled).toBe(50 + 2 * 1);
    expect(on.cached).toEqual([0, 49, 49]);
    expect(on.outs.map((o) => o.map((t) => t[0]))).toEqual(off.outs.map((o) => o.map((t) => t[0])));
  });
});

describe('server with a prefix cache', () => {
  let on: RunningServer;
  let tight: RunningServer; // room for 3 blocks: evictions all the time
  let off: RunningServer;
  const clientOf = (s: RunningServer) => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  beforeAll(async () => {
    const common = { port: 0, slots: 4, queue: 64, threads: 1 };
    [on, tight, off] = await Promise.all([
      startServer({ ...common, modelDirs: [dir, other] }),
      startServer({ ...common, modelDirs: [dir], prefixCacheMb: (3 * BLOCK_BYTES) / 2 ** 20 }),
      startServer({ ...common, modelDirs: [dir], prefixCacheMb: 0 }),
    ]);
    await Promise.all([on.ready, tight.ready, off.ready]);
  });
  afterAll(() => Promise.all([on?.shutdown(), tight?.shutdown(), off?.shutdown()]));

  // Prompts over two shared stems: every length around the block boundaries, up to the context
  // limit (63 prompt tokens + 1 generated = 64), with different endings.
  const LENGTHS = [1, 2, 15, 16, 17, 20, 31, 32, 33, 40, 47, 48, 49, 55, 62, 63];
  const PROMPTS = [tokens(10, 63), tokens(11, 63)].flatMap((stem, s) =>
    LENGTHS.flatMap((len) => [stem.slice(0, len), [...stem.slice(0, Math.max(0, len - 3)), ...tokens(20 + s * 100 + len, Math.min(3, len))]]),
  );

  interface Out {
    tokens: string[];
    logprobs: number[];
    top: Record<string, number>[];
  }
  async function complete(s: RunningServer, prompt: number[]): Promise<Out & { cached: number }> {
    const r = await clientOf(s).completions.create({ model: 'tiny', prompt, max_tokens: Math.min(6, cfg.contextLength - prompt.length), temperature: 0, logprobs: 3 });
    const lp = r.choices[0]!.logprobs!;
    return { tokens: lp.tokens!, logprobs: lp.token_logprobs!, top: lp.top_logprobs! as Record<string, number>[], cached: r.usage!.prompt_tokens_details!.cached_tokens! };
  }
  function expectSame(got: Out, want: Out, what: string) {
    expect(got.tokens, what).toEqual(want.tokens);
    got.logprobs.forEach((v, i) => expect(Math.abs(v - want.logprobs[i]!), what).toBeLessThan(1e-5));
    got.top.forEach((t, i) => {
      expect(Object.keys(t).sort(), what).toEqual(Object.keys(want.top[i]!).sort());
      for (const k of Object.keys(t)) expect(Math.abs(t[k]! - want.top[i]![k]!), what).toBeLessThan(1e-5);
    });
  }

  it('gives the same greedy tokens and logprobs as without the cache, one after another and all at once', async () => {
    const want: Out[] = [];
    for (const p of PROMPTS) want.push(await complete(off, p));
    for (const s of [on, tight]) {
      const one: (Out & { cached: number })[] = [];
      for (const p of PROMPTS) one.push(await complete(s, p));
      one.forEach((o, i) => expectSame(o, want[i]!, `prompt ${i} (${PROMPTS[i]!.length} tokens), sequential`));
      // every prompt after the first of its stem reuses what fits: all but its last token's block
      expect(one.filter((o) => o.cached > 0).length).toBeGreaterThan(s === on ? 30 : 5);
      const all = await Promise.all(PROMPTS.map((p) => complete(s, p)));
      all.forEach((o, i) => expectSame(o, want[i]!, `prompt ${i} (${PROMPTS[i]!.length} tokens), concurrent`));
    }
    const m = await (await fetch(`${tight.url}/metrics`)).text();
    expect(Number(/scratchgpt_prefix_cache_evictions_total\{model="tiny"\} (\d+)/.exec(m)![1])).toBeGreaterThan(10);
    expect(Number(/scratchgpt_prefix_cache_blocks\{model="tiny"\} (\d+)/.exec(m)![1])).toBeLessThanOrEqual(3);
  });

  it('reports usage.prompt_tokens_details.cached_tokens (completions, chat, streamed usage)', async () => {
    const client = clientOf(on);
    const prompt = tokens(30, 50);
    const first = await client.completions.create({ model: 'tiny', prompt, max_tokens: 2, temperature: 0 });
    expect(first.usage).toEqual({ prompt_tokens: 50, completion_tokens: 2, total_tokens: 52, prompt_tokens_details: { cached_tokens: 0 } });
    const again = await client.completions.create({ model: 'tiny', prompt: [...prompt.slice(0, 40), 1, 2, 3], max_tokens: 2, temperature: 0 });
    expect(again.usage!.prompt_tokens_details).toEqual({ cached_tokens: 32 });

    const messages = [{ role: 'system' as const, content: 'You answer in one word, always, whatever you are asked.' }, { role: 'user' as const, content: 'Sky?' }];
    const chat = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2, temperature: 0 });
    const prompt2 = chat.usage!.prompt_tokens;
    expect(prompt2).toBeGreaterThan(32);
    expect(prompt2 + 2).toBeLessThanOrEqual(cfg.contextLength);
    const stream = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) usage = chunk.usage ?? usage;
    expect(usage!.prompt_tokens_details).toEqual({ cached_tokens: Math.floor((prompt2 - 1) / 16) * 16 });
    const streamed = await client.completions.create({ model: 'tiny', prompt, max_tokens: 2, temperature: 0, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of streamed) usage = chunk.usage ?? usage;
    expect(usage!.prompt_tokens_details).toEqual({ cached_tokens: 48 });

    // echo + logprobs scores every prompt position: the cache is skipped
    const scored = await client.completions.create({ model: 'tiny', prompt, max_tokens: 1, temperature: 0, echo: true, logprobs: 1 });
    expect(scored.usage!.prompt_tokens_details).toEqual({ cached_tokens: 0 });
  });

  it('n > 1: one prefill of the prompt for all choices, and the same choices as without the cache', async () => {
    const hits = async () => Number(/scratchgpt_prefix_cache_hits_total\{model="tiny"\} (\d+)/.exec(await (await fetch(`${on.url}/metrics`)).text())![1]);
    const prompt = tokens(40, 40);
    const before = await hits();
    const params = { model: 'tiny', prompt, max_tokens: 4, temperature: 0, n: 4, logprobs: 1 };
    const r = await clientOf(on).completions.create(params);
    expect((await hits()) - before).toBe(3 * 39); // choices 2–4 took the first's two blocks, and the rest but the last token from its slot
    expect(r.usage!.prompt_tokens_details).toEqual({ cached_tokens: 0 }); // the prompt's (first choice's) prefill was computed
    const want = await clientOf(off).completions.create(params);
    r.choices.forEach((c, i) => {
      expect(c.text).toBe(want.choices[i]!.text);
      c.logprobs!.token_logprobs!.forEach((v, j) => expect(Math.abs(v - want.choices[i]!.logprobs!.token_logprobs![j]!)).toBeLessThan(1e-5));
    });
  });

  it('with int8 decode weights, a prompt whose last token alone is left to prefill still prefills in fp32', async () => {
    const wide = path.join(tmp, 'wide'); // int8 blocks are 32 values: a wider model
    const params = randomInit({ ...cfg, nEmbd: 32 }, 4);
    for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 6));
    saveCheckpoint(wide, { ...cfg, nEmbd: 32 }, params);
    const serve = (prefixCacheMb?: number) => startServer({ modelDirs: [wide], port: 0, slots: 2, queue: 8, threads: 1, quantize: 'int8', prefixCacheMb });
    const [q8, q8off] = await Promise.all([serve(), serve(0)]);
    try {
      await Promise.all([q8.ready, q8off.ready]);
      const stem = tokens(60, 63);
      const scores = async (s: RunningServer) => {
        const out: number[][] = [];
        for (const len of [63, 17, 33, 49]) {
          const r = await clientOf(s).completions.create({ model: 'wide', prompt: stem.slice(0, len), max_tokens: 1, temperature: 0, logprobs: 5 });
          out.push(Object.values(r.choices[0]!.logprobs!.top_logprobs![0]!).sort());
        }
        return out;
      };
      const [got, want] = [await scores(q8), await scores(q8off)];
      got.forEach((xs, i) => xs.forEach((x, j) => expect(Math.abs(x - want[i]![j]!)).toBeLessThan(1e-5)));
    } finally {
      await Promise.all([q8.shutdown(), q8off.shutdown()]);
    }
  });

  it('keeps one cache per model, and shows hit rate, blocks and evictions in /metrics', async () => {
    const client = clientOf(on);
    const prompt = tokens(50, 40);
    await client.completions.create({ model: 'tiny', prompt, max_tokens: 1 });
    const elsewhere = await client.completions.create({ model: 'tiny-too', prompt, max_tokens: 1 });
    expect(elsewhere.usage!.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const m = await (await fetch(`${on.url}/metrics`)).text();
    for (const name of ['prefix_cache_queries_total', 'prefix_cache_hits_total', 'prefix_cache_hit_rate', 'prefix_cache_blocks', 'prefix_cache_evictions_total']) {
      expect(m).toMatch(new RegExp(`^scratchgpt_${name}\\{model="tiny"\\} [0-9.e-]+$`, 'm'));
    }
    const rate = Number(/scratchgpt_prefix_cache_hit_rate\{model="tiny"\} ([0-9.e-]+)/.exec(m)![1]);
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThan(1);
    expect(Number(/scratchgpt_prefix_cache_blocks\{model="tiny-too"\} (\d+)/.exec(m)![1])).toBe(2);
  });
});
