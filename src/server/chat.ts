// POST /v1/chat/completions, for models with a chat template (model/chat-template.ts).
import { Hono } from 'hono';
import { z } from 'zod';
import type { TokenLogprob } from '../model/sampling-kernels.js';
import { decode, tokenBytes } from '../model/tokenizer.js';
import { admit } from './admission.js';
import { chatPrompt } from './chat-template.js';
import type { AppEnv } from './env.js';
import { badRequest } from './errors.js';
import { collect, finishOf, newId, unixTime, usage } from './response.js';
import { samplingFields, stopList } from './sampling.js';
import { streamGroup } from './sse.js';
import { json } from './validate.js';

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });

export const chatRequest = z.strictObject({
  ...samplingFields,
  messages: z
    .array(
      z.strictObject({
        role: z.enum(['system', 'developer', 'user', 'assistant']),
        content: z.union([z.string(), z.array(textPart)]),
        name: z.string().optional(),
      }),
    )
    .min(1),
  max_completion_tokens: z.number().int().min(0).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});

/** The chat format's logprobs entry for one token. */
function chatLogprob(token: number, logprob: number, top: TokenLogprob[] | undefined) {
  const entry = (t: number, lp: number) => ({ token: decode([t]), logprob: lp, bytes: Array.from(tokenBytes(t)) });
  return { ...entry(token, logprob), top_logprobs: (top ?? []).map((t) => entry(t.token, t.logprob)) };
}

export const chat = new Hono<AppEnv>().post('/chat/completions', json(chatRequest), async (c) => {
  const b = c.req.valid('json');
  const model = c.var.models.get(b.model);
  if (b.top_logprobs != null && !b.logprobs) throw badRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs');
  if (b.stream_options && !b.stream) throw badRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  const messages = b.messages.map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('') }));
  const { tokens, stop } = chatPrompt(model, messages);
  const { contextLength } = model.config;
  const requested = b.max_completion_tokens ?? b.max_tokens ?? undefined;
  const logprobs = b.logprobs ? (b.top_logprobs ?? 0) : undefined;
  const { group } = admit(model, {
    body: b,
    prompts: [tokens],
    tokenize: (t) => t,
    // No limit given: the model's max_new_tokens, else up to the context window, never past it;
    // a prompt that leaves no room at all is refused as one asking for a single token.
    maxTokens: (promptLength) => {
      const room = contextLength - promptLength;
      return requested ?? (room < 1 ? 1 : Math.min(model.generation.maxTokens ?? room, room));
    },
    param: 'messages',
    stop: [...stop, ...stopList(b.stop)],
    logprobs,
  });
  const id = newId('chatcmpl');
  const created = unixTime();

  if (b.stream) {
    const withUsage = b.stream_options?.include_usage ?? false;
    const chunk = (index: number, delta: object, lp: unknown, finish: string | null) => ({
      id,
      object: 'chat.completion.chunk' as const,
      created,
      model: model.id,
      choices: [{ index, delta, logprobs: lp, finish_reason: finish }],
      ...(withUsage ? { usage: null } : {}), // OpenAI: null on every chunk but the usage one
    });
    let generated = 0;
    return streamGroup(c, group, {
      start: () => group.ids.map((_, k) => chunk(k, { role: 'assistant', content: '' }, null, null)),
      event(e) {
        const k = group.index(e.id);
        if (e.type === 'prompt') return [];
        if (e.type === 'end') return [chunk(k, {}, null, finishOf(group, e))];
        generated++;
        const out: unknown[] = [];
        if (e.text || logprobs !== undefined) {
          const lp = logprobs === undefined ? null : { content: [chatLogprob(e.token, e.logprob!, e.top)], refusal: null };
          out.push(chunk(k, { content: e.text }, lp, null));
        }
        if (e.finish) out.push(chunk(k, {}, null, e.finish));
        return out;
      },
      usage: withUsage ? () => ({ id, object: 'chat.completion.chunk', created, model: model.id, choices: [], usage: usage(tokens.length, generated) }) : undefined,
    });
  }

  const results = await collect(c, group);
  const choices = results.map((r, index) => ({
    index,
    message: { role: 'assistant' as const, content: r.text, refusal: null },
    logprobs: logprobs === undefined ? null : { content: r.tokens.map((t, i) => chatLogprob(t, r.logprobs[i]!, r.top[i])), refusal: null },
    finish_reason: r.finish,
  }));
  const generated = results.reduce((s, r) => s + r.tokens.length, 0);
  return c.json({ id, object: 'chat.completion' as const, created, model: model.id, choices, usage: usage(tokens.length, generated) });
});
