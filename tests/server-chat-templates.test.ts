// The server prompts each model by its own chat template (tokenizer_config.json, as a Hub model
// carries it), or by --chat-template's file, and samples with its generation_config.json
// defaults where a request leaves fields unset.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { EOT, EOT_TEXT, encode } from '../src/model/tokenizer.js';
import { startServer, type RunningServer } from '../src/server/server.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
// A ChatML-like template in the style of Hub models: eos closes every turn.
const TURNS = "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
const RAISES = "{% if messages[0]['role'] != 'system' %}{{ raise_exception('A system message must come first.') }}{% endif %}{{ messages[-1]['content'] }}";

let tmp: string;
let server: RunningServer;
let overridden: RunningServer;
let client: OpenAI;

function model(name: string, files: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  saveCheckpoint(dir, cfg, randomInit(cfg, 4));
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), JSON.stringify(v));
  return dir;
}

async function post(s: RunningServer, route: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${s.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'server-chat-templates-'));
  const turns = model('turns', {
    'tokenizer_config.json': { chat_template: TURNS, eos_token: EOT_TEXT },
    'generation_config.json': { max_new_tokens: 3, do_sample: false },
  });
  const strict = model('strict', { 'tokenizer_config.json': { chat_template: RAISES } });
  const long = model('long', { 'tokenizer_config.json': { chat_template: TURNS }, 'generation_config.json': { max_new_tokens: 1000 } });
  const base = model('base', {});
  const override = path.join(tmp, 'override.jinja');
  fs.writeFileSync(override, "{{ 'Q: ' + messages[-1]['content'] + '\\nA:' }}");
  [server, overridden] = await Promise.all([
    startServer({ modelDirs: [turns, strict, long], port: 0, slots: 2, queue: 4, threads: 1 }),
    startServer({ modelDirs: [base], port: 0, slots: 1, queue: 1, threads: 1, chatTemplateFile: override }),
  ]);
  await Promise.all([server.ready, overridden.ready]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await Promise.all([server?.shutdown(), overridden?.shutdown()]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("a model's own Jinja template", () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: `Hi ${EOT_TEXT}` },
    { role: 'assistant' as const, content: 'Hello.' },
    { role: 'user' as const, content: 'Bye' },
  ];

  it('renders the conversation, its eos tokens special and a typed <|endoftext|> plain text', async () => {
    const r = await post(server, '/tokenize', { model: 'turns', messages });
    expect(r.status).toBe(200);
    const expected = [
      ...encode('<|system|>\nBe brief.'), EOT,
      ...encode(`<|user|>\nHi ${EOT_TEXT}`, { allowSpecial: false }), EOT,
      ...encode('<|assistant|>\nHello.'), EOT,
      ...encode('<|user|>\nBye'), EOT,
      ...encode('<|assistant|>\n'),
    ];
    expect(r.json.tokens).toEqual(expected);
    expect(r.json.tokens.filter((t: number) => t === EOT)).toHaveLength(4);
  });

  it('answers with the openai client, sampling by generation_config.json where the request is silent', async () => {
    const a = await client.chat.completions.create({ model: 'turns', messages, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const b = await client.chat.completions.create({ model: 'turns', messages, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(a.usage!.completion_tokens).toBe(3); // max_new_tokens
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content); // do_sample false: greedy
    const longer = await client.chat.completions.create({ model: 'turns', messages, max_tokens: 5, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(longer.usage!.completion_tokens).toBe(5);
    const completion = await client.completions.create({ model: 'turns', prompt: 'The', ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(completion.usage!.completion_tokens).toBe(3);
  });

  it('stops a max_new_tokens default at the context window instead of refusing the request', async () => {
    const prompt = encode('The cat sat on the mat');
    const c = await post(server, '/v1/completions', { model: 'long', prompt, ignore_eos: true });
    expect(c.status).toBe(200);
    expect(c.json.usage.completion_tokens).toBe(cfg.contextLength - prompt.length);
    const chat = await post(server, '/v1/chat/completions', { model: 'long', messages: [{ role: 'user', content: 'Hi' }], ignore_eos: true });
    expect(chat.status).toBe(200);
    expect(chat.json.usage.prompt_tokens + chat.json.usage.completion_tokens).toBe(cfg.contextLength);
    // An explicit max_tokens is the client's request, and is still checked.
    expect((await post(server, '/v1/completions', { model: 'long', prompt, max_tokens: 1000 })).json.error.code).toBe('context_length_exceeded');
    // A prompt already over the window leaves the default no room: a 400, not a negative limit (was a 500).
    const over = await post(server, '/v1/completions', { model: 'long', prompt: Array<number>(cfg.contextLength + 1).fill(464) });
    expect(over.status).toBe(400);
    expect(over.json.error).toMatchObject({ code: 'context_length_exceeded', param: 'prompt' });
  });

  it("turns the template's raise_exception into a 400 on messages", async () => {
    const r = await post(server, '/v1/chat/completions', { model: 'strict', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ type: 'invalid_request_error', param: 'messages' });
    expect(r.json.error.message).toBe("The chat template of 'strict' refused the messages: A system message must come first.");
    const ok = await post(server, '/v1/chat/completions', { model: 'strict', messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hi' }], max_tokens: 1 });
    expect(ok.status).toBe(200);
  });
});

describe('--chat-template FILE', () => {
  it('makes a base model chat with the given template', async () => {
    const r = await post(overridden, '/tokenize', { model: 'base', messages: [{ role: 'user', content: 'Why?' }] });
    expect(r.json.tokens).toEqual(encode('Q: Why?\nA:'));
    const c = await post(overridden, '/v1/chat/completions', { model: 'base', messages: [{ role: 'user', content: 'Why?' }], max_tokens: 2 });
    expect(c.status).toBe(200);
    expect(c.json.choices[0].message.role).toBe('assistant');
  });
});
