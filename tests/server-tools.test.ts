// Tool calling on /v1/chat/completions (tools, tool_choice, parallel_tool_calls; src/server/tools.ts)
// through the official `openai` client, on a tiny random GPT-2 with the real vocabulary and the
// Alpaca template; and the 'auto' constraint and the call parser at the model layer.
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generation } from '../src/model/generation.js';
import { decode, encode } from '../src/model/tokenizer.js';
import type { RunningServer } from '../src/server/server.js';
import { tinyChatServer, type TinyChatServer } from './helpers/tiny-chat-server.js';
import { CallParser, MARKER, planTools, ToolAnswer } from '../src/server/tools.js';

let tiny: TinyChatServer;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  tiny = await tinyChatServer('server-tools', 1024);
  ({ server, client } = tiny);
});

afterAll(() => tiny?.close());

const weatherParams = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 8 }, unit: { type: 'string', enum: ['c', 'f'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const timeParams = { type: 'object', properties: { tz: { type: 'string', maxLength: 6 } }, required: ['tz'], additionalProperties: false };
const tools: OpenAI.Chat.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city.', parameters: weatherParams } },
  { type: 'function', function: { name: 'get_time', parameters: timeParams } },
];
const schemas: Record<string, object> = { get_weather: weatherParams, get_time: timeParams };
const ajv = new Ajv({ strict: false });
const messages = [{ role: 'user' as const, content: 'What is the weather in Oslo?' }];

/** Every call names a tool and has arguments that parse and validate against its parameters. */
function expectValidCalls(calls: OpenAI.Chat.ChatCompletionMessageToolCall[] | undefined, max = Infinity) {
  expect(calls?.length).toBeGreaterThanOrEqual(1);
  expect(calls!.length).toBeLessThanOrEqual(max);
  for (const c of calls!) {
    if (c.type !== 'function') throw new Error('not a function call');
    expect(c.id).toMatch(/^call_/);
    const schema = schemas[c.function.name];
    expect(schema, c.function.name).toBeDefined();
    const args: unknown = JSON.parse(c.function.arguments);
    expect(ajv.validate(schema!, args), ajv.errorsText()).toBe(true);
  }
}

const callsOf = (m: { tool_calls?: OpenAI.Chat.ChatCompletionMessageToolCall[] | null }) => (m.tool_calls ?? []).map((c) => (c.type === 'function' ? [c.function.name, c.function.arguments] : []));

async function post(body: object): Promise<{ status: number; json: { error?: { param: string | null; message: string; type: string } } }> {
  const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'tiny', max_tokens: 5, ...body }) });
  return { status: res.status, json: (await res.json()) as never };
}

describe('tool_choice required and named', () => {
  it("required: tool_calls whose arguments validate, content null, finish_reason 'tool_calls'", async () => {
    for (const seed of [1, 2]) {
      const r = await client.chat.completions.create({ model: 'tiny', messages, tools, tool_choice: 'required', max_tokens: 600, seed });
      const choice = r.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.content).toBeNull();
      expectValidCalls(choice.message.tool_calls);
    }
  });

  it('a named function with parallel_tool_calls false: exactly one call of it', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, tools, tool_choice: { type: 'function', function: { name: 'get_time' } }, parallel_tool_calls: false, max_tokens: 100, seed: 4 });
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    expectValidCalls(r.choices[0]!.message.tool_calls, 1);
    expect(callsOf(r.choices[0]!.message)[0]![0]).toBe('get_time');
  });

  it('streaming, reassembled by the client, equals the non-streamed answer for the same seed (n = 2)', async () => {
    const body = { model: 'tiny', messages, tools, tool_choice: 'required' as const, max_tokens: 600, seed: 7, n: 2 };
    const plain = await client.chat.completions.create(body);
    const stream = client.chat.completions.stream(body);
    const deltas: string[] = [];
    stream.on('tool_calls.function.arguments.delta', (e) => deltas.push(e.arguments_delta));
    const streamed = await stream.finalChatCompletion();
    expect(streamed.choices).toHaveLength(2);
    for (const k of [0, 1]) {
      expect(streamed.choices[k]!.finish_reason).toBe('tool_calls');
      expect(streamed.choices[k]!.message.content ?? null).toBeNull();
      expectValidCalls(streamed.choices[k]!.message.tool_calls);
      expect(callsOf(streamed.choices[k]!.message)).toEqual(callsOf(plain.choices[k]!.message));
    }
    expect(callsOf(plain.choices[0]!.message)).not.toEqual(callsOf(plain.choices[1]!.message));
    expect(Math.max(...plain.choices.map((c) => c.message.tool_calls!.length))).toBeGreaterThan(1); // parallel calls, each its own index
    expect(deltas.length).toBeGreaterThan(2); // arguments came in fragments
  });

  it('the raw stream: first delta has role and the call header with arguments ""', async () => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages, tools, tool_choice: 'required', max_tokens: 600, seed: 3, stream: true });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const first = chunks[0]!.choices[0]!.delta;
    expect(first.role).toBe('assistant');
    expect(first.tool_calls![0]).toMatchObject({ index: 0, type: 'function', function: { arguments: '' } });
    expect(first.tool_calls![0]!.id).toMatch(/^call_/);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it("parameters with local $refs into $defs keep working inside the calls' schema", async () => {
    const params = { type: 'object', properties: { p: { $ref: '#/$defs/P' }, q: { $ref: '#/properties/p' } }, required: ['p', 'q'], additionalProperties: false, $defs: { P: { type: 'string', enum: ['a', 'b'] } } };
    const r = await client.chat.completions.create({ model: 'tiny', messages, tools: [{ type: 'function', function: { name: 'pick', parameters: params } }], tool_choice: 'required', max_tokens: 100, seed: 8 });
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    for (const c of r.choices[0]!.message.tool_calls!) expect(ajv.validate(params, JSON.parse((c as OpenAI.Chat.ChatCompletionMessageFunctionToolCall).function.arguments))).toBe(true);
  });

  it("max_tokens reached mid-call: finish_reason 'length', arguments cut", async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, tools, tool_choice: 'required', max_tokens: 12, seed: 1 });
    const choice = r.choices[0]!;
    expect(choice.finish_reason).toBe('length');
    expect(choice.message.content).toBeNull();
    const calls = choice.message.tool_calls ?? [];
    if (calls.length && calls.at(-1)!.type === 'function') expect(() => JSON.parse((calls.at(-1) as OpenAI.Chat.ChatCompletionMessageFunctionToolCall).function.arguments)).toThrow();
  });
});

describe('conversations with tool calls', () => {
  it('a manual round trip: assistant tool_calls and the tool result go back in and are answered', async () => {
    const first = await client.chat.completions.create({ model: 'tiny', messages, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, seed: 5 });
    const call = first.choices[0]!.message.tool_calls![0]!;
    const convo: OpenAI.Chat.ChatCompletionMessageParam[] = [...messages, first.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: '{"temp": 3}' }];
    const second = await client.chat.completions.create({ model: 'tiny', messages: convo, tools, tool_choice: 'none', max_tokens: 8, seed: 5 });
    expect(second.choices[0]!.message.content).toEqual(expect.any(String));
    expect(['stop', 'length']).toContain(second.choices[0]!.finish_reason);
    // How the conversation was rendered (tool_choice 'none': no tool list).
    const res = await fetch(`${server.url}/tokenize`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'tiny', messages: convo }) });
    const prompt = decode(((await res.json()) as { tokens: number[] }).tokens);
    const c = call.type === 'function' ? call.function : { name: '', arguments: '' };
    expect(prompt).toContain(`### Instruction:\nTool result (${c.name}, ${call.id}): {"temp": 3}`);
    expect(prompt).toContain(`User: What is the weather in Oslo?\n\nAssistant: ${MARKER}[{"name":"${c.name}","arguments":${c.arguments}}]`);
  });

  it("'auto' lets the model answer in text: no tool_calls, a text finish", async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, tools, max_tokens: 10, seed: 2 });
    const choice = r.choices[0]!;
    expect(choice.message.tool_calls).toBeUndefined();
    expect(typeof choice.message.content).toBe('string');
    expect(choice.message.content!.startsWith(MARKER)).toBe(false);
    expect(['stop', 'length']).toContain(choice.finish_reason);
  });

  it("'auto' streamed in text equals the non-streamed answer, logprobs on every token", async () => {
    const body = { model: 'tiny', messages, tools, max_tokens: 10, seed: 11, logprobs: true };
    const plain = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    let content = '';
    let tokens = 0;
    let role: string | undefined;
    let finish: string | null = null;
    for await (const c of stream) {
      role ??= c.choices[0]?.delta.role;
      content += c.choices[0]?.delta.content ?? '';
      tokens += c.choices[0]?.logprobs?.content?.length ?? 0;
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(role).toBe('assistant');
    expect(content).toBe(plain.choices[0]!.message.content);
    expect(finish).toBe(plain.choices[0]!.finish_reason);
    expect(tokens).toBe(plain.choices[0]!.logprobs!.content!.length);
  });

  it('runTools executes the call and sends the result back', async () => {
    const seen: unknown[] = [];
    const runner = client.chat.completions.runTools({
      model: 'tiny',
      messages,
      tool_choice: 'required',
      max_tokens: 600,
      seed: 6,
      tools: [{ type: 'function', function: { name: 'get_time', parameters: timeParams, function: (a: unknown) => (seen.push(a), '12:00'), parse: JSON.parse } }],
      parallel_tool_calls: false,
    } as never);
    // tool_choice 'required' calls a tool every round: stop after the second request.
    runner.on('functionToolCallResult', () => {});
    let requests = 0;
    runner.on('chatCompletion', () => {
      if (++requests === 2) runner.abort();
    });
    await runner.done().catch(() => {});
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(ajv.validate(timeParams, seen[0])).toBe(true);
    expect(runner.messages.some((m) => m.role === 'tool')).toBe(true);
  });
});

describe('refusals', () => {
  it('are 400s naming the parameter', async () => {
    const call = { id: 'call_1', type: 'function', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } };
    const cases: [object, string, RegExp][] = [
      [{ messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice', /no function named 'nope'/],
      [{ messages, tool_choice: 'required' }, 'tool_choice', /only allowed when 'tools'/],
      [{ messages, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string', pattern: 'x' } } } } }] }, 'tools[0].function.parameters', /'pattern'/],
      [{ messages, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string' } } }] }, 'tools[0].function.parameters', /type 'object'/],
      [{ messages, tools: [tools[1], tools[1]] }, 'tools[1].function.name', /duplicate/],
      [{ messages, tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools[0].function.name', /./],
      [{ messages, tools, tool_choice: 'sometimes' }, 'tool_choice', /./],
      [{ messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_2', content: 'x' }] }, 'messages[2].tool_call_id', /answers no tool call/],
      [{ messages: [...messages, { role: 'assistant', content: null }, ...messages] }, 'messages[1].content', /content or tool_calls/],
      [{ messages, tools, tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice', /cannot be combined/],
      [{ messages, tools, response_format: { type: 'json_object' } }, 'tools', /set tool_choice to 'none'/],
    ];
    for (const [body, param, message] of cases) {
      const r = await post(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error!.type).toBe('invalid_request_error');
      expect(r.json.error!.param, JSON.stringify(body)).toBe(param);
      expect(r.json.error!.message).toMatch(message);
    }
  });
});

describe("'auto' at the model layer", () => {
  const plan = planTools({ tools: tools as never, tool_choice: 'auto' });
  const vocab = 50257;
  /** Runs a Generation under the plan's constraint on fake logits that prefer `prefer` tokens in turn, then are flat. */
  function run(prefer: number[], seed: number): { text: string; finish: string | null } {
    const gen = new Generation([1, 2, 3], { maxTokens: 200, seed, constraint: plan.constraint }, tiny.config);
    let text = '';
    for (let i = 0; !gen.done; i++) {
      const logits = new Float32Array(vocab);
      if (i < prefer.length) logits[prefer[i]!] = 50;
      const s = gen.step(logits);
      text += s.text;
    }
    return { text, finish: gen.finishReason };
  }

  it('the marker then a call array that validates; the parser reads it', () => {
    const { text, finish } = run(encode(MARKER), 1);
    expect(finish).toBe('stop');
    expect(text.startsWith(MARKER)).toBe(true);
    const a = new ToolAnswer(plan);
    a.push(text);
    expect(a.isCalls).toBe(true);
    expectValidCalls(a.parser.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })));
  });

  it('text that leaves the marker is free text, and the marker cannot be followed by anything but a call', () => {
    const { text } = run(encode('<tool'), 2);
    expect(text.startsWith('<tool')).toBe(true);
    expect(text.startsWith(MARKER)).toBe(false);
    // Right after the marker, only the call array may come: '[' — a word is masked out.
    const gen = new Generation([1], { maxTokens: 20, seed: 1, constraint: plan.constraint }, tiny.config);
    for (const t of encode(MARKER)) {
      const logits = new Float32Array(vocab);
      logits[t] = 50;
      gen.step(logits);
    }
    const logits = new Float32Array(vocab);
    logits[encode(' hello')[0]!] = 50;
    expect(gen.step(logits).text).toBe('[');
  });

  it('ToolAnswer holds back a possible marker and streams calls in pieces', () => {
    const a = new ToolAnswer(plan);
    expect(a.push('<to')).toEqual({ content: '', events: [] });
    expect(a.push('ol_call>[{"name":"get_t').events).toEqual([]);
    const ev = a.push('ime","arguments":{"tz":"U');
    expect(ev.events.map((e) => e.type)).toEqual(['call', 'arguments']);
    a.push('TC"}}]');
    expect(a.parser.calls.map((c) => [c.name, c.arguments])).toEqual([['get_time', '{"tz":"UTC"}']]);
    const b = new ToolAnswer(plan);
    expect(b.push('<b').content).toBe('<b');
    const cut = new ToolAnswer(plan);
    cut.push('<tool');
    expect(cut.flush()).toBe('<tool');
    const p = new CallParser();
    p.push('[{"name":"a","arguments":{"s":"}\\"]"}},{"name":"b","arguments":{}}]');
    expect(p.calls.map((c) => [c.name, c.arguments])).toEqual([
      ['a', '{"s":"}\\"]"}'],
      ['b', '{}'],
    ]);
  });
});
