// Structured output over HTTP: response_format (OpenAI), structured_outputs and guided_* (vLLM),
// through the official `openai` client, on a tiny random GPT-2 with the real vocabulary.
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { HTTPException } from 'hono/http-exception';
import type { SequenceGroup } from '../src/server/model-worker.js';
import { finishOf } from '../src/server/response.js';
import type { RunningServer } from '../src/server/server.js';
import { tinyChatServer, type TinyChatServer } from './helpers/tiny-chat-server.js';

let tiny: TinyChatServer;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  tiny = await tinyChatServer('server-structured', 256);
  ({ server, client } = tiny);
});

afterAll(() => tiny?.close());

const Person = z.object({ name: z.string().max(8), age: z.number().int(), kind: z.enum(['cat', 'dog']), nick: z.string().max(4).nullable() });
const personSchema = zodResponseFormat(Person, 'person').json_schema.schema!;
const messages = [{ role: 'user' as const, content: 'Describe a pet as JSON.' }];

async function post(route: string, body: object): Promise<{ status: number; json: { error?: { param: string | null; message: string; type: string } } }> {
  const res = await fetch(`${server.url}/v1/${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as never };
}

describe('response_format', () => {
  it('chat.completions.parse with a zod schema gives a parsed, valid object', async () => {
    for (const seed of [1, 2]) {
      const r = await client.chat.completions.parse({ model: 'tiny', messages, response_format: zodResponseFormat(Person, 'person'), max_tokens: 120, temperature: 1, seed });
      const choice = r.choices[0]!;
      expect(choice.finish_reason).toBe('stop');
      expect(Person.parse(choice.message.parsed)).toEqual(choice.message.parsed);
    }
  });

  it('json_object on /v1/completions, n = 2 with each choice its own automaton, the same seed the same output', async () => {
    // The near-uniform tiny model rarely closes a free-form string; logit_bias on '"' helps it along.
    const body = { model: 'tiny', prompt: 'JSON:', response_format: { type: 'json_object' }, logit_bias: { '1': 5 }, max_tokens: 150, n: 2, seed: 9 };
    const a = await client.completions.create(body as never);
    const b = await client.completions.create(body as never);
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
    expect(a.choices[0]!.text).not.toBe(a.choices[1]!.text);
    for (const c of a.choices) {
      expect(c.finish_reason).toBe('stop');
      const v: unknown = JSON.parse(c.text);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
    }
  });

  it('streams a schema-constrained chat reply whose chunks join into valid JSON', async () => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages, response_format: zodResponseFormat(Person, 'person'), max_tokens: 120, seed: 3, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('stop');
    expect(Person.parse(JSON.parse(text))).toBeTruthy();
  });

  it('a constrained and an unconstrained request in one batch each get what they get alone', async () => {
    const free = { model: 'tiny', prompt: 'Hello', max_tokens: 20, seed: 4, ignore_eos: true };
    const constrained = { model: 'tiny', prompt: 'Hello', max_tokens: 100, seed: 4, structured_outputs: { json: personSchema } };
    const [aloneFree, aloneConstrained] = [await client.completions.create(free), await client.completions.create(constrained as never)];
    const [f, c] = await Promise.all([client.completions.create(free), client.completions.create(constrained as never)]);
    expect(f.choices[0]!.text).toBe(aloneFree.choices[0]!.text);
    expect(c.choices[0]!.text).toBe(aloneConstrained.choices[0]!.text);
    expect(Person.parse(JSON.parse(c.choices[0]!.text))).toBeTruthy();
  });

  it('logprobs under a constraint are of the raw distribution: finite for the chosen token', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, response_format: zodResponseFormat(Person, 'person'), max_tokens: 30, seed: 5, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content.length).toBeGreaterThan(0);
    for (const t of content) {
      expect(Number.isFinite(t.logprob) && t.logprob < 0).toBe(true);
      expect(t.top_logprobs).toHaveLength(2);
    }
  });

  it("max_tokens reached mid-object: finish_reason 'length' and the output is cut", async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, response_format: zodResponseFormat(Person, 'person'), max_tokens: 3, seed: 1 });
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(() => JSON.parse(r.choices[0]!.message.content!)).toThrow();
  });
});

describe('structured_outputs and guided_*', () => {
  it('choice, regex, and the older guided_ names', async () => {
    const choice = await client.completions.create({ model: 'tiny', prompt: 'Pick:', max_tokens: 10, structured_outputs: { choice: ['red', 'green', 'blue'] } } as never);
    expect(['red', 'green', 'blue']).toContain(choice.choices[0]!.text);
    expect(choice.choices[0]!.finish_reason).toBe('stop');
    const regex = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 20, structured_outputs: { regex: '[0-9]{3}-[a-z]{2}' } } as never);
    expect(regex.choices[0]!.message.content).toMatch(/^[0-9]{3}-[a-z]{2}$/);
    const guided = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 10, guided_choice: ['yes', 'no'] } as never);
    expect(['yes', 'no']).toContain(guided.choices[0]!.text);
    const guidedRegex = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 10, guided_regex: '(ab|cd)!' } as never);
    expect(guidedRegex.choices[0]!.text).toMatch(/^(ab|cd)!$/);
  });

  it('refuses what the engine cannot compile with a 400 naming the field', async () => {
    const cases: [string, object, string, RegExp][] = [
      ['chat/completions', { messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a' } } } }, 'response_format', /unsupported keyword 'pattern'/],
      ['completions', { prompt: 'x', structured_outputs: { regex: 'a(?=b)' } }, 'structured_outputs', /lookaround/],
      ['completions', { prompt: 'x', guided_json: { type: 'object', properties: { a: { type: 'number', minimum: 5 } } } }, 'guided_json', /'minimum'/],
      ['completions', { prompt: 'x', response_format: { type: 'json_object' }, guided_choice: ['a'] }, 'guided_choice', /Only one/],
      ['completions', { prompt: 'x', structured_outputs: { regex: 'a', choice: ['a'] } }, 'structured_outputs', /exactly one/],
      ['completions', { prompt: 'x', response_format: { type: 'xml' } }, 'response_format.type', /./],
    ];
    for (const [route, body, param, message] of cases) {
      const r = await post(route, { model: 'tiny', max_tokens: 5, ...body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error!.type).toBe('invalid_request_error');
      expect(r.json.error!.param).toBe(param);
      expect(r.json.error!.message).toMatch(message);
    }
    // Nested too deeply even for JSON.stringify: still the client's 400, not a 500.
    const deep = '{"items":'.repeat(5000) + '{}' + '}'.repeat(5000);
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: `{"model":"tiny","prompt":"x","guided_json":${deep}}` });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe('guided_json');
    // response_format text is the default: no constraint.
    expect((await post('completions', { model: 'tiny', prompt: 'x', max_tokens: 2, response_format: { type: 'text' } })).status).toBe(200);
  });

  it("a constraint that fails while generating (its automaton outgrew the limit) is the client's 400, not a 500", () => {
    const group = { cancel() {}, endedBy: undefined } as unknown as SequenceGroup;
    const failed = { type: 'end' as const, id: 0, reason: 'error' as const, message: 'its automaton grew past 20000 states; simplify the pattern or schema' };
    const refusal = (invalidRequest?: true) => {
      try {
        finishOf(group, { ...failed, ...(invalidRequest && { invalidRequest }) });
      } catch (e) {
        return [(e as HTTPException).status, ((e as HTTPException).cause as { code?: string }).code];
      }
    };
    expect(refusal(true)).toEqual([400, 'constraint_too_complex']);
    expect(refusal()).toEqual([500, undefined]);
  });
});
