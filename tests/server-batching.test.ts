// Continuous batching: sequences that share forward calls produce exactly the tokens each produces
// alone; cancels free slots within a step; and the server around it (concurrent streams,
// disconnects, graceful shutdown, the `serve` CLI).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { generate, type StepResult } from '../src/model/generation.js';
import type { SamplingOptions } from '../src/model/sampler.js';
import { ModelSession, type ForwardRow, type Quantize } from '../src/model/session.js';
import { encode } from '../src/model/tokenizer.js';
import type { SeqEvent, SeqSpec } from '../src/server/protocol.js';
import { Scheduler } from '../src/server/scheduler.js';
import { Metrics } from '../src/server/metrics.js';
import { MAX_ON_DEMAND, ModelRegistry } from '../src/server/registry.js';
import { LOADED_FINETUNED } from '../src/jobs/served-models.js';
import { startServer, type RunningServer, type ServerOptions } from '../src/server/server.js';
import { stopWorker } from '../src/threads/stop.js';

// contextLength 1024: long generations (a few ms per token) give the disconnect and shutdown tests time.
const cfg: GPTConfig = { vocabSize: 50257, contextLength: 1024, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

let tmp: string;
let dir: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'server-batching-'));
  dir = path.join(tmp, 'tiny');
  const params = randomInit(cfg, 3);
  for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 6)); // varied but not uniform
  saveCheckpoint(dir, cfg, params);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const PROMPTS = ['Hello', 'The history of the', 'In 1901, a man', 'x', 'Numbers: 1, 2, 3,', 'Dear Sir or Madam, I write', 'Why', 'Once upon a time there was'];
/** Different seeds, lengths and samplers per request. */
const options = (i: number): SamplingOptions => ({
  maxTokens: 6 + 3 * i,
  seed: 100 + i,
  temperature: i === 3 ? 0 : 1,
  topK: i % 3 === 1 ? 40 : undefined,
  topP: i % 3 === 2 ? 0.9 : undefined,
  ignoreEos: true,
});

async function solo(model: ModelSession, prompt: number[], o: SamplingOptions): Promise<number[]> {
  const out: number[] = [];
  for await (const s of generate(model, prompt, o)) out.push(s.token);
  return out;
}

const until = async (cond: () => boolean, ms = 50_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 2));
  }
};

describe('Scheduler (in-process)', () => {
  it('sequences joining and leaving a running batch get exactly the tokens they get alone', async () => {
    const model = await ModelSession.load(dir, { slots: 4, threads: 1 });
    const calls: ForwardRow[][] = [];
    const events: SeqEvent[] = [];
    const sched = new Scheduler(
      { config: model.config, cache: model.cache, forward: (rows) => (calls.push(rows), model.forward(rows)) },
      (m) => m.type === 'step' && events.push(...m.events),
      { prefillTokens: 8 }, // small: newcomers prefill over several steps
    );
    const loop = sched.run();
    const specs: SeqSpec[] = PROMPTS.map((p, i) => ({ id: i, prompt: encode(p), options: options(i) }));
    sched.submit(specs.slice(0, 3));
    await until(() => events.filter((e) => e.type === 'token').length >= 5); // they are decoding
    sched.submit(specs.slice(3)); // 5 more for 1 free slot: they queue and join as others finish
    await until(() => events.filter((e) => e.type === 'token' && e.finish).length === 8);
    sched.close();
    await loop;

    // batching did happen: decode calls with several rows, and prefills while others decoded
    expect(Math.max(...calls.map((c) => c.length))).toBeGreaterThan(1);
    expect(calls.some((c) => c.every((r) => r.start === 0)) && calls.filter((c) => c.some((r) => r.start > 0)).length > 10).toBe(true);
    // running sequences sit in slots 0..n-1, so the KV cache is passed as one view
    for (const c of calls) expect(c.map((r) => r.slot).sort((a, b) => a - b)).toEqual(c.map((r) => r.slot));

    for (const s of specs) {
      const got = events.filter((e) => e.type === 'token' && e.id === s.id).map((e) => (e.type === 'token' ? e.token : -1));
      expect({ id: s.id, tokens: got }).toEqual({ id: s.id, tokens: await solo(model, s.prompt, s.options) });
    }
    await model.close();
  });

  it('a cancel frees the slot at the next step, and waiting sequences can be cancelled too', async () => {
    const model = await ModelSession.load(dir, { slots: 1, threads: 1 });
    const steps: { events: SeqEvent[]; running: number; waiting: number }[] = [];
    const sched = new Scheduler(model, (m) => m.type === 'step' && steps.push(m));
    const loop = sched.run();
    const tokens = () => steps.flatMap((s) => s.events).filter((e) => e.type === 'token').length;
    sched.submit([{ id: 1, prompt: [15496], options: { maxTokens: 900, ignoreEos: true, seed: 1 } }]);
    sched.submit([{ id: 2, prompt: [15496], options: { maxTokens: 5, seed: 1 } }]);
    await until(() => tokens() >= 3);
    sched.cancel([2]); // still waiting: ends at once
    sched.cancel([1]);
    const at = tokens();
    await until(() => steps.flatMap((s) => s.events).some((e) => e.type === 'end' && e.id === 1));
    expect(tokens() - at).toBeLessThanOrEqual(1); // at most the step that was already running
    expect(steps.flatMap((s) => s.events).filter((e) => e.type === 'end').map((e) => [e.id, e.type === 'end' && e.reason])).toEqual([
      [2, 'cancelled'],
      [1, 'cancelled'],
    ]);
    expect(steps.at(-1)).toMatchObject({ running: 0, waiting: 0 });
    sched.close();
    await loop;
    await model.close();
  });
});

describe('server', () => {
  let server: RunningServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startServer({ modelDirs: [dir], port: 0, slots: 8, queue: 8, threads: 1 });
    await server.ready;
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(() => server?.shutdown());

  const params = (i: number) => {
    const o = options(i);
    return { model: 'tiny', prompt: PROMPTS[i]!, max_tokens: o.maxTokens, seed: o.seed, temperature: o.temperature, top_k: o.topK, top_p: o.topP, ignore_eos: true, logprobs: 0 };
  };
  async function streamed(i: number): Promise<{ text: string; tokens: string[] }> {
    const stream = await client.completions.create({ ...params(i), stream: true } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    const tokens: string[] = [];
    for await (const chunk of stream) {
      text += chunk.choices[0]!.text;
      tokens.push(...(chunk.choices[0]!.logprobs?.tokens ?? []));
    }
    return { text, tokens };
  }

  it('8 concurrent streamed requests with seeds produce exactly what each produces alone', async () => {
    const alone = [];
    for (let i = 0; i < 8; i++) alone.push(await streamed(i));
    const before = server.metrics.batchSize;
    const together = await Promise.all(PROMPTS.map((_, i) => new Promise((r) => setTimeout(r, 3 * i)).then(() => streamed(i))));
    expect(together).toEqual(alone);
    expect(alone.map((a) => a.tokens.length)).toEqual(PROMPTS.map((_, i) => options(i).maxTokens));
    // and they did share forward calls
    expect(before.render()).toMatch(/scratchgpt_step_batch_size_bucket\{model="tiny",le="8"\} \d+/);
    const m = await (await fetch(`${server.url}/metrics`)).text();
    const le1 = Number(/scratchgpt_step_batch_size_bucket\{model="tiny",le="1"\} (\d+)/.exec(m)![1]);
    const all = Number(/scratchgpt_step_batch_size_count\{model="tiny"\} (\d+)/.exec(m)![1]);
    expect(all - le1).toBeGreaterThan(5);
  });

  it('a client that disconnects mid-stream frees its batch slot (metrics show it)', async () => {
    const metric = async (re: RegExp) => Number(re.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const cancelled = /scratchgpt_sequences_finished_total\{model="tiny",reason="cancelled"\} (\d+)/;
    const running = /scratchgpt_running_sequences\{model="tiny"\} (\d+)/;
    const generated = /scratchgpt_generation_tokens_total\{model="tiny"\} (\d+)/;
    const [c0, g0] = [await metric(cancelled), await metric(generated)];

    const abort = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'Go on', max_tokens: 1000, ignore_eos: true, stream: true }),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    let seen = '';
    while ((seen.match(/data: /g) ?? []).length < 3) seen += new TextDecoder().decode((await reader.read()).value);
    expect(await metric(running)).toBe(1);
    abort.abort();

    // Waits for the cancel to show (the test's timeout guards it), whatever the machine's speed.
    while ((await metric(running)) !== 0 || (await metric(cancelled)) !== c0 + 1) await new Promise((r) => setTimeout(r, 5));
    expect((await metric(generated)) - g0).toBeLessThan(1000); // stopped before max_tokens
  });
});

// Serving options that change how decode steps run: the served text and logprobs against the same
// greedy generation in process.
const GREEDY = { prompt: 'The history of the', temperature: 0, ignoreEos: true, logprobs: 0 };

/** The served completion of GREEDY's prompt, `maxTokens` long, from a server on the tiny model with `opts`; the server's /metrics text after it. */
async function served(opts: Pick<ServerOptions, 'quantize' | 'draft'>, maxTokens: number) {
  const server = await startServer({ modelDirs: [dir], port: 0, slots: 2, queue: 2, threads: 1, ...opts });
  try {
    await server.ready;
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const res = await client.completions.create({ model: 'tiny', prompt: GREEDY.prompt, max_tokens: maxTokens, temperature: 0, logprobs: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    return { text: res.choices[0]!.text, logprobs: res.choices[0]!.logprobs!.token_logprobs!, metrics: await (await fetch(`${server.url}/metrics`)).text() };
  } finally {
    await server.shutdown();
  }
}

/** The same generation in process, on a session with `quantize`. */
async function local(quantize: Quantize, maxTokens: number): Promise<{ text: string; logprobs: number[] }> {
  const model = await ModelSession.load(dir, { slots: 1, threads: 1, quantize });
  const steps: StepResult[] = [];
  for await (const step of generate(model, encode(GREEDY.prompt), { ...GREEDY, maxTokens })) steps.push(step);
  await model.close();
  return { text: steps.map((s) => s.text).join(''), logprobs: steps.map((s) => s.logprob!) };
}

describe('serving int8 weights (--quantize int8)', () => {
  it('decode steps use the int8 weights: logprobs match the in-process int8 session, not fp32', async () => {
    const got = await served({ quantize: 'int8' }, 12);
    const [int8, fp32] = [await local('int8', 12), await local('none', 12)];
    expect(got.text).toBe(int8.text);
    // the first token comes from the (fp32) prefill; every later one from an int8 decode step
    got.logprobs.slice(1).forEach((lp, i) => expect(lp).toBeCloseTo(int8.logprobs[i + 1]!, 5));
    expect(Math.max(...got.logprobs.slice(1).map((lp, i) => Math.abs(lp - fp32.logprobs[i + 1]!)))).toBeGreaterThan(1e-4);
  });
});

describe('serving with a draft (--draft int8)', () => {
  it('a lone request gets the text and logprobs of plain fp32 decoding; /metrics counts the proposals and how many were taken', async () => {
    const got = await served({ draft: 'int8' }, 24);
    const fp32 = await local('none', 24);
    expect(got.text).toBe(fp32.text);
    got.logprobs.forEach((lp, i) => expect(lp).toBeCloseTo(fp32.logprobs[i]!, 4));
    const counter = (name: string) => Number(new RegExp(`^${name}\\{model="tiny"\\} (\\d+)$`, 'm').exec(got.metrics)?.[1]);
    expect(counter('scratchgpt_draft_accepted_tokens_total')).toBeGreaterThanOrEqual(12); // most of the 24 tokens came from rounds, not plain steps
    expect(counter('scratchgpt_draft_accepted_tokens_total')).toBeLessThanOrEqual(counter('scratchgpt_draft_tokens_total'));
  });
});

describe('models served on demand (checkpoints)', () => {
  const isLoading503 = (e: unknown) => (e as { status?: number }).status === 503 && /waiting to load/.test((e as Error).message);
  /** What a client does: ask, and on a 503 ask again until the model answers (ready), as after Retry-After. */
  const use = async (registry: ModelRegistry, id: string) => {
    for (;;) {
      try {
        const m = registry.find(id);
        if (m.state === 'ready') return m;
        await m.ready;
      } catch (e) {
        if (!isLoading503(e)) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  it('start at first use; beyond MAX_ON_DEMAND the least recently used idle one stops first', async () => {
    const registry = new ModelRegistry([dir], { slots: 1, queue: 1, threads: 1 }, new Metrics());
    try {
      const ids = ['ft:tiny::a:ckpt-step-1', 'ft:tiny::a:ckpt-step-2', 'ft:tiny::a:ckpt-step-3'];
      for (const id of ids) registry.addOnDemand(id, dir);
      const running = () => registry.list().map((m) => m.id).filter((id) => id !== 'tiny');
      expect(running()).toEqual([]);
      expect(registry.has(ids[0]!) && registry.isFinetuned(ids[0]!)).toBe(true);
      expect(registry.info(ids[0]!)).toMatchObject({ id: ids[0], kind: 'generator' }); // described without starting it
      expect(running()).toEqual([]);
      await use(registry, ids[0]!);
      await use(registry, ids[1]!);
      registry.find(ids[0]!); // used again: ids[1] is now the least recently used
      expect(MAX_ON_DEMAND).toBe(2);
      let refused: unknown;
      try {
        registry.find(ids[2]!); // queued: ids[1] must stop before it starts
      } catch (e) {
        refused = e;
      }
      expect(isLoading503(refused)).toBe(true);
      await use(registry, ids[2]!);
      expect(running().sort()).toEqual([ids[0], ids[2]]);
      await registry.remove(ids[1]!);
      expect(() => registry.find(ids[1]!)).toThrow(/does not exist/);
    } finally {
      await registry.close();
    }
  });

  it('many checkpoints asked for at once: at most MAX_ON_DEMAND threads load, the rest queue, none is cut short', async () => {
    const registry = new ModelRegistry([dir], { slots: 1, queue: 1, threads: 1 }, new Metrics());
    try {
      const ids = Array.from({ length: 8 }, (_, i) => `ft:tiny::b:ckpt-step-${i + 1}`);
      for (const id of ids) registry.addOnDemand(id, dir);
      let most = 0;
      const watch = setInterval(() => (most = Math.max(most, registry.list().length - 1)), 1);
      for (const id of ids) {
        try {
          registry.find(id);
        } catch (e) {
          if (!isLoading503(e)) throw e;
        }
      }
      expect(registry.list().length - 1).toBe(MAX_ON_DEMAND);
      await Promise.all(ids.map((id) => use(registry, id))); // every client gets its model in the end
      clearInterval(watch);
      expect(most).toBeLessThanOrEqual(MAX_ON_DEMAND);
      // A model still loading when the server stops is waited for, not terminated (that aborted the process).
      const awake = registry.list().filter((m) => m.id !== 'tiny');
      for (const m of awake) await registry.remove(m.id);
      const next = ids.find((id) => registry.has(id))!;
      expect(registry.find(next).state).toBe('loading');
    } finally {
      await registry.close();
    }
  });
});

describe('finetuned models added loaded (a job finished here)', () => {
  it(`beyond LOADED_FINETUNED the least recently used idle one is stopped and served on demand, and loads again when asked for`, async () => {
    const registry = new ModelRegistry([dir], { slots: 1, queue: 1, threads: 1 }, new Metrics());
    try {
      const ids = Array.from({ length: LOADED_FINETUNED + 1 }, (_, i) => `ft:tiny:c${i}:ftjob-${i}`);
      const running = () => registry.list().map((m) => m.id).filter((id) => id !== 'tiny');
      for (const id of ids.slice(0, LOADED_FINETUNED)) await registry.add(id, dir).ready;
      registry.find(ids[0]!); // used: ids[1] is now the least recently used
      await registry.add(ids[LOADED_FINETUNED]!, dir).ready;
      expect(running().sort()).toEqual(ids.filter((id) => id !== ids[1]).sort());
      expect([registry.has(ids[1]!), registry.isOnDemand(ids[1]!), registry.isFinetuned(ids[1]!)]).toEqual([true, true, true]);
      expect(registry.listed().map((m) => m.id)).toContain(ids[1]); // still listed by /v1/models
      const again = registry.find(ids[1]!); // on demand: it loads again
      await again.ready;
      expect(again.state).toBe('ready');
      await registry.remove(ids[1]!);
      expect(registry.has(ids[1]!)).toBe(false);
    } finally {
      await registry.close();
    }
  });
});

describe('stopWorker', () => {
  it('waits for a thread that is slow to stop instead of terminating it (terminate inside ORT aborts the process)', async () => {
    // The thread blocks past the grace period, as a model load does, then exits on its own.
    const code = `const { parentPort } = require('node:worker_threads');
      parentPort.once('message', () => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); process.exit(7); });`;
    const worker = new Worker(code, { eval: true });
    const exitCode = new Promise<number>((r) => worker.once('exit', r));
    let reported = false;
    const late = await stopWorker(worker, { type: 'close' }, 10, () => (reported = true));
    expect([late, reported, await exitCode]).toEqual([true, true, 7]); // 7: its own exit, not terminate()'s 1
  });
});

describe('graceful shutdown', () => {
  it('refuses new work, lets short streams finish, ends the rest with an error chunk and [DONE]', async () => {
    // No clock decides who finishes: the grace period outlasts the test, the short stream (5
    // tokens) ends on its own, then hurry() ends the grace period while the long one (1000) runs.
    const server = await startServer({ modelDirs: [dir], port: 0, slots: 4, queue: 4, threads: 1, shutdownTimeoutMs: 3_600_000 });
    await server.ready;
    const read = async (body: object) => {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'Hi', stream: true, ignore_eos: true, temperature: 1, ...body }),
      });
      return res.text();
    };
    const long = read({ max_tokens: 1000 });
    const short = read({ max_tokens: 5 });
    await until(() => server.models.first.outstanding === 2);
    const stopped = server.shutdown();
    const health = await fetch(`${server.url}/health`).catch(() => undefined); // may already be closed
    if (health) expect(health.status).toBe(503);

    expect(await short).toMatch(/"finish_reason":"length"[^\n]*\n\ndata: \[DONE\]\n\n$/);
    server.hurry();
    expect(await long).toMatch(/data: \{"error":\{[^\n]*"code":"server_shutting_down"\}\}\n\ndata: \[DONE\]\n\n$/);
    await stopped;
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});

describe('a model that fails to load', () => {
  it('rejects `ready` with the reason, and /health answers 503 "failed"', async () => {
    const broken = path.join(tmp, 'broken');
    fs.mkdirSync(broken);
    fs.copyFileSync(path.join(dir, 'config.json'), path.join(broken, 'config.json'));
    fs.writeFileSync(path.join(broken, 'model.safetensors'), 'not a safetensors file');
    const server = await startServer({ modelDirs: [broken], port: 0, slots: 1, queue: 1, threads: 1 });
    await expect(server.ready).rejects.toThrow(/broken/);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'failed', models: { broken: 'failed' } });
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'broken', prompt: 'x' }) });
    expect(r.status).toBe(503);
    await server.shutdown();
  });
});

describe('scratchgpt serve (CLI)', () => {
  it('serves --model dirs on --port, answers /health, and exits 0 on SIGTERM', async () => {
    const bin = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn('node', [bin, 'serve', '--model', dir, '--port', String(port), '--slots', '2', '--threads', '1', '--data-dir', path.join(tmp, 'data')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await until(() => stderr.includes('ready') || child.exitCode !== null);
    expect(stderr).toContain(`listening on http://127.0.0.1:${port}`);
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
