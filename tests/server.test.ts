// The HTTP server end to end on 127.0.0.1: the official `openai` client for the happy paths,
// raw fetch for every error case. Tiny random models (GPT-2 vocabulary, 2 layers of width 32).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { encode } from '../src/model/tokenizer.js';
import { startServer, type RunningServer } from '../src/server/server.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

/** A random model whose weights are scaled up so its distributions are far from uniform. */
function tinyModel(dir: string, overrides: Partial<GPTConfig> = {}): string {
  const config = { ...cfg, ...overrides };
  const params = randomInit(config, 3);
  for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 6));
  saveCheckpoint(dir, config, params);
  return dir;
}

let tmp: string;
let server: RunningServer;
let guarded: RunningServer; // API keys, one slot and a queue of one
let client: OpenAI;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'server-test-'));
  const tiny = tinyModel(path.join(tmp, 'tiny'));
  const chat = tinyModel(path.join(tmp, 'tiny-chat'), { chatTemplate: 'alpaca' });
  [server, guarded] = await Promise.all([
    startServer({ modelDirs: [tiny, chat], port: 0, slots: 4, queue: 8, threads: 1, maxBodyBytes: 64 * 1024 }),
    startServer({ modelDirs: [tiny], port: 0, slots: 1, queue: 1, threads: 1, apiKeys: ['sk-one', 'sk-two'] }),
  ]);
  await Promise.all([server.ready, guarded.ready]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await Promise.all([server?.shutdown(), guarded?.shutdown()]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('with the openai client', () => {
  it('lists the models by folder name, and gets one', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['tiny', 'tiny-chat']);
    expect(list.data[0]).toMatchObject({ object: 'model', owned_by: 'scratchgpt' });
    expect((await client.models.retrieve('tiny-chat')).id).toBe('tiny-chat');
  });

  it('completes a prompt, with exact usage', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Hello, my name is', max_tokens: 5, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    expect(r.usage).toEqual({ prompt_tokens: encode('Hello, my name is').length, completion_tokens: 5, total_tokens: encode('Hello, my name is').length + 5, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('streams the same text as the non-streamed answer, then a usage chunk before [DONE]', async () => {
    const params = { model: 'tiny', prompt: 'Once upon a time', max_tokens: 8, seed: 42, temperature: 1 };
    const whole = await client.completions.create(params);
    const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finish: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) {
        expect(chunk.choices).toEqual([]);
        usage = chunk.usage;
        continue;
      }
      text += chunk.choices[0]!.text;
      finish.push(chunk.choices[0]!.finish_reason);
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(chunks).toBeGreaterThan(2); // one chunk per token, not one blob
    expect(finish.at(-1)).toBe('length');
    expect(finish.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual(whole.usage);
  });

  it('n: 2 with a seed gives two different, reproducible choices (choice i uses seed + i)', async () => {
    const params = { model: 'tiny', prompt: 'The weather today', max_tokens: 10, n: 2, seed: 7, temperature: 1 };
    const a = await client.completions.create(params);
    const b = await client.completions.create(params);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
    expect(a.choices[0]!.text).not.toBe(a.choices[1]!.text);
    const second = await client.completions.create({ ...params, n: 1, seed: 8 });
    expect(second.choices[0]!.text).toBe(a.choices[1]!.text);
    expect(a.usage!.completion_tokens).toBe(20);
    expect(a.usage!.prompt_tokens).toBe(encode('The weather today').length); // the prompt counts once
  });

  it('returns legacy logprobs: tokens, token_logprobs, top_logprobs dicts, text_offset', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'A B C', max_tokens: 4, temperature: 0, logprobs: 3 });
    const lp = r.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(4);
    expect(lp.tokens!.join('')).toBe(r.choices[0]!.text);
    expect(lp.token_logprobs).toHaveLength(4);
    lp.top_logprobs!.forEach((top, i) => {
      const values = Object.values(top);
      expect(values.length).toBeGreaterThanOrEqual(3);
      expect(values.length).toBeLessThanOrEqual(4); // the top 3 plus the chosen token
      expect(top[lp.tokens![i]!]).toBeCloseTo(lp.token_logprobs![i]!, 9);
      expect(Math.max(...values)).toBeCloseTo(lp.token_logprobs![i]!, 9); // greedy: the chosen one is the best
    });
    expect(lp.text_offset).toEqual(lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length));
  });

  it('echo returns the prompt first; max_tokens 0 with echo and logprobs scores the prompt', async () => {
    const echoed = await client.completions.create({ model: 'tiny', prompt: 'Echo me', max_tokens: 3, temperature: 0, echo: true });
    const plain = await client.completions.create({ model: 'tiny', prompt: 'Echo me', max_tokens: 3, temperature: 0 });
    expect(echoed.choices[0]!.text).toBe('Echo me' + plain.choices[0]!.text);

    const prompt = 'The quick brown fox';
    const scored = await client.completions.create({ model: 'tiny', prompt, max_tokens: 0, echo: true, logprobs: 2 });
    const c = scored.choices[0]!;
    expect(c.text).toBe(prompt);
    expect(c.finish_reason).toBe('length');
    expect(c.logprobs!.tokens!.join('')).toBe(prompt);
    expect(c.logprobs!.token_logprobs![0]).toBeNull(); // nothing predicts the first token
    expect(c.logprobs!.top_logprobs![0]).toBeNull();
    expect(c.logprobs!.token_logprobs!.slice(1).every((v) => typeof v === 'number' && v <= 0)).toBe(true);
    expect(scored.usage).toEqual({ prompt_tokens: encode(prompt).length, completion_tokens: 0, total_tokens: encode(prompt).length, prompt_tokens_details: { cached_tokens: 0 } });

    // the prompt's scores are the model's: the greedy continuation of a prefix scores as its top token
    const ids = encode(prompt);
    const next = await client.completions.create({ model: 'tiny', prompt: ids.slice(0, 2), max_tokens: 1, temperature: 0, logprobs: 2 });
    const top2 = c.logprobs!.top_logprobs![2]!;
    expect(Math.max(...Object.values(top2))).toBeCloseTo(next.choices[0]!.logprobs!.token_logprobs![0]!, 4);
  });

  it('scores a prompt once for all its n choices, streamed or not (n: 64 scoring must not cost 64 prefills)', async () => {
    const model = server.models.get('tiny');
    const seen: { promptLogprobs?: number }[][] = [];
    const submit = model.submit.bind(model);
    model.submit = (specs) => (seen.push(specs), submit(specs));
    try {
      const prompts = ['The quick brown fox', 'Pack my box'];
      const alone = await Promise.all(prompts.map((prompt) => client.completions.create({ model: 'tiny', prompt, max_tokens: 0, echo: true, logprobs: 2 })));
      seen.length = 0;
      const body = { model: 'tiny', prompt: prompts, max_tokens: 2, echo: true, logprobs: 2, n: 3, temperature: 1, seed: 5 } as const;
      const whole = await client.completions.create(body);
      const chunks: OpenAI.Completions.Completion[] = [];
      for await (const chunk of await client.completions.create({ ...body, stream: true })) chunks.push(chunk);
      expect(seen.map((specs) => specs.filter((x) => x.promptLogprobs !== undefined).length)).toEqual([2, 2]); // one per prompt
      for (let k = 0; k < 6; k++) {
        const want = alone[Math.floor(k / 3)]!.choices[0]!.logprobs!;
        const got = whole.choices[k]!.logprobs!;
        expect(got.tokens!.slice(0, want.tokens!.length)).toEqual(want.tokens);
        expect(got.token_logprobs!.slice(0, want.token_logprobs!.length)).toEqual(want.token_logprobs);
        const first = chunks.find((c) => c.choices[0]!.index === k)!; // each streamed choice opens with its prompt, scored
        expect([first.choices[0]!.text, first.choices[0]!.logprobs!.token_logprobs]).toEqual([prompts[Math.floor(k / 3)], want.token_logprobs]);
        const text = chunks.filter((c) => c.choices[0]!.index === k).map((c) => c.choices[0]!.text).join('');
        expect(text).toBe(whole.choices[k]!.text); // same seed: same tokens
      }
      const scoredOnly = await client.completions.create({ ...body, max_tokens: 0, n: 4 });
      expect(scoredOnly.choices.map((c) => c.logprobs!.token_logprobs)).toEqual([0, 0, 0, 0, 1, 1, 1, 1].map((i) => alone[i]!.choices[0]!.logprobs!.token_logprobs));
    } finally {
      model.submit = submit;
    }
  });

  it('accepts token-id prompts and arrays of prompts (choices ordered prompt by prompt)', async () => {
    const ids = encode('Token prompt');
    const fromIds = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 4, temperature: 0 });
    const fromText = await client.completions.create({ model: 'tiny', prompt: 'Token prompt', max_tokens: 4, temperature: 0 });
    expect(fromIds.choices[0]!.text).toBe(fromText.choices[0]!.text);

    const many = await client.completions.create({ model: 'tiny', prompt: ['First one', 'Second'], max_tokens: 3, temperature: 0, n: 2 });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    const second = await client.completions.create({ model: 'tiny', prompt: 'Second', max_tokens: 3, temperature: 0 });
    expect(many.choices[2]!.text).toBe(second.choices[0]!.text);
    expect(many.usage!.prompt_tokens).toBe(encode('First one').length + encode('Second').length);
    expect(many.usage!.completion_tokens).toBe(12);

    const idArrays = await client.completions.create({ model: 'tiny', prompt: [encode('First one'), encode('Second')], max_tokens: 3, temperature: 0 });
    expect(idArrays.choices.map((c) => c.text)).toEqual([many.choices[0]!.text, many.choices[2]!.text]);
  });

  it('stops at a stop string and leaves it out', async () => {
    const free = await client.completions.create({ model: 'tiny', prompt: 'Stop here', max_tokens: 12, temperature: 0 });
    const text = free.choices[0]!.text;
    const stop = text.slice(4, 7); // a piece from the middle of the greedy continuation
    const r = await client.completions.create({ model: 'tiny', prompt: 'Stop here', max_tokens: 12, temperature: 0, stop: [stop] });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.choices[0]!.text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it('chats with an Alpaca-templated model, streamed and not', async () => {
    const messages = [{ role: 'user' as const, content: 'Name three colors.' }];
    const r = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 6, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(typeof r.choices[0]!.message.content).toBe('string');
    // the prompt is the book's template: preamble, instruction, response header
    const prompt = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName three colors.\n\n### Response:\n';
    expect(r.usage!.prompt_tokens).toBe(encode(prompt).length);

    const stream = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    const content = chunks.flatMap((c) => c.choices.map((x) => x.delta.content ?? '')).join('');
    expect(content).toBe(r.choices[0]!.message.content);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    // the same prompt again: all its full blocks but the last token's come from the prefix cache
    expect(last.usage).toEqual({ ...r.usage, prompt_tokens_details: { cached_tokens: Math.floor((encode(prompt).length - 1) / 16) * 16 } });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe(r.choices[0]!.finish_reason);
    expect(chunks.at(-2)!.choices[0]!.delta).toEqual({});
  });

  it('chat logprobs come in the chat format', async () => {
    const r = await client.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }],
      max_tokens: 3,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(3);
    expect(content[0]!.top_logprobs).toHaveLength(2);
    expect(content[0]!.bytes!.length).toBeGreaterThan(0);
  });

  it('tokenize and detokenize round-trip (vLLM shapes)', async () => {
    const res = await fetch(`${server.url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'Hello world' }) });
    expect(res.status).toBe(200);
    const t = (await res.json()) as { tokens: number[]; count: number; max_model_len: number };
    expect(t).toEqual({ tokens: encode('Hello world'), count: 2, max_model_len: 128 });
    const back = await fetch(`${server.url}/detokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: t.tokens }) });
    expect(await back.json()).toEqual({ prompt: 'Hello world' });
  });

  it('/health is 200 once loaded; /metrics is Prometheus text', async () => {
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok' });
    const m = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of [
      'scratchgpt_requests_total',
      'scratchgpt_prompt_tokens_total',
      'scratchgpt_generation_tokens_total',
      'scratchgpt_time_to_first_token_seconds_bucket',
      'scratchgpt_inter_token_latency_seconds_bucket',
      'scratchgpt_queue_depth',
      'scratchgpt_running_sequences',
    ]) {
      expect(m).toContain(name);
    }
    expect(m).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
    expect(Number(/^process_resident_memory_bytes (\d+)$/m.exec(m)?.[1])).toBeGreaterThan(1e6);
    expect(m).toMatch(/scratchgpt_requests_total\{method="POST",route="\/v1\/completions",status="200"\} \d+/);
  });
});

// ───────────────────────────── errors, over raw HTTP ─────────────────────────────

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as { error: { message: string; type: string; param: string | null; code: string | null } } };
}

describe('errors', () => {
  const completions = () => `${server.url}/v1/completions`;

  it('malformed JSON is a 400 in the OpenAI error shape, with a request id', async () => {
    const r = await post(completions(), '{"model": "tiny", "prompt": ');
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param: null });
    expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(r.headers.get('x-request-id')).toMatch(/.+/);
  });

  it('schema violations are 400s that name the parameter', async () => {
    const cases: [unknown, string][] = [
      [{ model: 'tiny', prompt: 'x', temperature: 'hot' }, 'temperature'],
      [{ model: 'tiny', prompt: 'x', max_tokens: -1 }, 'max_tokens'],
      [{ model: 'tiny', prompt: 'x', logprobs: 6 }, 'logprobs'],
      [{ model: 'tiny', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ model: 'tiny', prompt: [1, 'a'] }, 'prompt'],
      [{ model: 'tiny', prompt: [] }, 'prompt'],
      [{ model: 'tiny', prompt: [99999] }, 'prompt'],
      [{ model: 'tiny' }, 'prompt'],
      [{ prompt: 'x' }, 'model'],
      [{ model: 'tiny', prompt: 'x', suffix: 'and then' }, 'suffix'],
      [{ model: 'tiny', prompt: 'x', best_of: 3 }, 'best_of'],
      [{ model: 'tiny', prompt: 'x', logit_bias: { '60000': 1 } }, 'logit_bias'],
      [{ model: 'tiny', prompt: 'x', frobnicate: true }, 'frobnicate'],
      [{ model: 'tiny', prompt: 'x', n: 500 }, 'n'],
    ];
    for (const [body, param] of cases) {
      const r = await post(completions(), body);
      expect({ body, status: r.status, param: r.body.error.param }).toEqual({ body, status: 400, param });
      expect(r.body.error.type).toBe('invalid_request_error');
    }
    const chat = await post(`${server.url}/v1/chat/completions`, { model: 'tiny-chat', messages: [{ role: 'robot', content: 'x' }] });
    expect([chat.status, chat.body.error.param]).toEqual([400, 'messages[0].role']);
  });

  it('a base model refuses chat with a 400 that says to use /v1/completions', async () => {
    const r = await post(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/base model.*\/v1\/completions/);
  });

  it('an unknown model is a 404 with code model_not_found', async () => {
    for (const r of [
      await post(completions(), { model: 'gpt-9', prompt: 'x' }),
      await post(`${server.url}/v1/chat/completions`, { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }),
      { status: (await fetch(`${server.url}/v1/models/gpt-9`)).status, body: { error: { code: 'model_not_found' } } },
    ]) {
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('model_not_found');
    }
  });

  it('prompt + max_tokens over the context window is a 400 context_length_exceeded', async () => {
    const r = await post(completions(), { model: 'tiny', prompt: 'word '.repeat(100), max_tokens: 100 });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('context_length_exceeded');
    expect(r.body.error.message).toMatch(/maximum context length is 128 tokens/);
    const chat = await post(`${server.url}/v1/chat/completions`, { model: 'tiny-chat', messages: [{ role: 'user', content: 'word '.repeat(200) }] });
    expect([chat.status, chat.body.error.code]).toEqual([400, 'context_length_exceeded']);
    // a text too long to fit whatever it encodes to is refused before it is encoded
    const huge = 'x'.repeat(128 * 128 + 1); // one unbroken word: at least 129 tokens
    for (const [url, body] of [
      [completions(), { model: 'tiny', prompt: huge }],
      [`${server.url}/v1/chat/completions`, { model: 'tiny-chat', messages: [{ role: 'user', content: huge }] }],
    ] as const) {
      const r2 = await post(url, body);
      expect([r2.status, r2.body.error.code]).toEqual([400, 'context_length_exceeded']);
      expect(r2.body.error.message).toMatch(/is at least 1[23][0-9] tokens long/);
    }
  });

  it('a body over the limit is a 413', async () => {
    const r = await post(completions(), { model: 'tiny', prompt: 'x'.repeat(100 * 1024) });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('request_too_large');
  });

  it('unknown routes are 404s in the same shape', async () => {
    const r = await post(`${server.url}/v1/engines`, {});
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('unknown_url');
  });

  it('with API keys set: 401 without or with a wrong key, 200 with any listed key; /health stays open', async () => {
    const url = `${guarded.url}/v1/completions`;
    const body = { model: 'tiny', prompt: 'x', max_tokens: 1 };
    const missing = await post(url, body);
    expect([missing.status, missing.body.error.code]).toEqual([401, 'missing_api_key']);
    const wrong = await post(url, body, { authorization: 'Bearer sk-three' });
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'invalid_api_key']);
    expect((await post(url, body, { authorization: 'Bearer sk-two' })).status).toBe(200);
    expect((await fetch(`${guarded.url}/health`)).status).toBe(200);
    expect((await fetch(`${guarded.url}/v1/models`)).status).toBe(401);
  });

  it('a full queue is a 429 with Retry-After', async () => {
    const auth = { authorization: 'Bearer sk-one', 'content-type': 'application/json' };
    const long = JSON.stringify({ model: 'tiny', prompt: 'x', max_tokens: 120, ignore_eos: true, stream: true });
    const aborts = [new AbortController(), new AbortController()];
    // one slot and a queue of one: the first runs, the second waits, the third is refused
    const running = await Promise.all(aborts.map((a) => fetch(`${guarded.url}/v1/completions`, { method: 'POST', headers: auth, body: long, signal: a.signal })));
    expect(running.map((r) => r.status)).toEqual([200, 200]);
    const r = await post(`${guarded.url}/v1/completions`, { model: 'tiny', prompt: 'x', max_tokens: 1 }, auth);
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.body.error.code).toBe('server_overloaded');
    for (const a of aborts) a.abort();
  });
});
