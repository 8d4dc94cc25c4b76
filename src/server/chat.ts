// POST /v1/chat/completions, for models with a chat template (model/chat-template.ts).
import { Hono } from 'hono';
import { z } from 'zod';
import type { ChatMessage } from '../model/chat-template.js';
import type { TokenLogprob } from '../model/sampling-kernels.js';
import { decode, tokenBytes } from '../model/tokenizer.js';
import { admit } from './admission.js';
import { chatPrompt } from './chat-template.js';
import type { AppEnv } from './env.js';
import { badRequest } from './errors.js';
import { doc } from './openapi.js';
import { collect, finishOf, newId, unixTime, usage } from './response.js';
import { requestConstraint, samplingFields, stopList } from './sampling.js';
import { streamGroup } from './sse.js';
import { planTools, toolCallSchema, toolFields, toolMessages, ToolAnswer, type CallEvent, type RequestMessage, type ToolPlan } from './tools.js';
import { json } from './validate.js';

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)]);

const message = z.discriminatedUnion('role', [
  z.strictObject({ role: z.enum(['system', 'developer', 'user']), content, name: z.string().optional() }),
  z.strictObject({
    role: z.literal('assistant'),
    content: content.nullish(), // null when the turn was tool calls
    name: z.string().optional(),
    tool_calls: z.array(toolCallSchema).nullish(),
    refusal: z.string().nullish(),
  }),
  z.strictObject({ role: z.literal('tool'), content, tool_call_id: z.string() }),
]);

const text = (c: z.infer<typeof content>): string => (typeof c === 'string' ? c : c.map((p) => p.text).join(''));

/** The request's messages as the chat template takes them (tool calls and results rendered: tools.ts). */
export function templateMessages(messages: z.infer<typeof message>[], plan: ToolPlan = { mode: 'text', offered: [] }): ChatMessage[] {
  const out: RequestMessage[] = messages.map((m) =>
    m.role === 'assistant' ? { role: m.role, content: m.content == null ? null : text(m.content), tool_calls: m.tool_calls } : m.role === 'tool' ? { role: m.role, content: text(m.content), tool_call_id: m.tool_call_id } : { role: m.role, content: text(m.content) },
  );
  return toolMessages(out, plan);
}

export const chatRequest = z.strictObject({
  ...samplingFields,
  ...toolFields,
  messages: z.array(message).min(1),
  max_completion_tokens: z.number().int().min(0).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});

/** The chat format's logprobs entry for one token. */
function chatLogprob(token: number, logprob: number, top: TokenLogprob[] | undefined) {
  const entry = (t: number, lp: number) => ({ token: decode([t]), logprob: lp, bytes: Array.from(tokenBytes(t)) });
  return { ...entry(token, logprob), top_logprobs: (top ?? []).map((t) => entry(t.token, t.logprob)) };
}

export const chat = new Hono<AppEnv>().post('/chat/completions', doc('Chat', 'Answer a conversation (streamed with stream: true)'), json(chatRequest), async (c) => {
  const b = c.req.valid('json');
  const model = c.var.models.get(b.model);
  if (b.top_logprobs != null && !b.logprobs) throw badRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs');
  if (b.stream_options && !b.stream) throw badRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  const plan = planTools(b);
  if (plan.constraint && requestConstraint(b)) {
    const param = b.tool_choice != null ? 'tool_choice' : 'tools';
    throw badRequest("Tool calls (tool_choice 'auto', the default with 'tools', 'required' or a function) cannot be combined with a structured-output constraint (response_format, structured_outputs, guided_*); set tool_choice to 'none' to use one.", param);
  }
  const { tokens, stop } = chatPrompt(model, templateMessages(b.messages, plan));
  const tooling = plan.mode !== 'text';
  /** OpenAI's finish reason for a tool answer: a whole call array is 'tool_calls' (one cut by a stop string stays 'stop'). */
  const finishFor = (a: ToolAnswer, f: string) => (f === 'stop' && a.isCalls && a.parser.complete ? 'tool_calls' : f);
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
    constraint: plan.constraint,
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
    if (tooling) {
      // OpenAI's shape: the role rides on a choice's first delta; a call's first delta has its
      // index, id, type and name with arguments '', then its argument text comes in fragments.
      const answers = group.ids.map(() => new ToolAnswer(plan));
      const started = group.ids.map(() => false);
      const delta = (k: number, d: object, lp: unknown = null, finish: string | null = null) => {
        const first = !started[k];
        started[k] = true;
        return chunk(k, first ? { role: 'assistant', content: null, ...d } : d, lp, finish);
      };
      const callDelta = (ev: CallEvent) =>
        ev.type === 'call' ? { tool_calls: [{ index: ev.index, id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } }] } : { tool_calls: [{ index: ev.index, function: { arguments: ev.text } }] };
      const end = (k: number, reason: string) => {
        const a = answers[k]!;
        const rest = a.flush();
        const out = rest ? [delta(k, { content: rest })] : [];
        out.push(delta(k, {}, null, finishFor(a, reason)));
        return out;
      };
      return streamGroup(c, group, {
        event(e) {
          const k = group.index(e.id);
          if (e.type === 'prompt') return [];
          if (e.type === 'end') return end(k, finishOf(group, e));
          generated++;
          const r = answers[k]!.push(e.text);
          let lp: unknown = logprobs === undefined ? null : { content: [chatLogprob(e.token, e.logprob!, e.top)], refusal: null };
          const out: unknown[] = [];
          const send = (d: object) => {
            out.push(delta(k, d, lp));
            lp = null; // a token's logprobs go on its first chunk
          };
          if (r.content) send({ content: r.content });
          for (const ev of r.events) if (ev.type === 'call' || ev.text) send(callDelta(ev));
          if (lp !== null) send({});
          if (e.finish) out.push(...end(k, e.finish));
          return out;
        },
        usage: withUsage ? () => ({ id, object: 'chat.completion.chunk', created, model: model.id, choices: [], usage: usage(tokens.length, generated, group.cached[0]) }) : undefined,
      });
    }
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
      usage: withUsage ? () => ({ id, object: 'chat.completion.chunk', created, model: model.id, choices: [], usage: usage(tokens.length, generated, group.cached[0]) }) : undefined,
    });
  }

  const results = await collect(c, group);
  const choices = results.map((r, index) => {
    const lp = logprobs === undefined ? null : { content: r.tokens.map((t, i) => chatLogprob(t, r.logprobs[i]!, r.top[i])), refusal: null };
    if (!tooling) return { index, message: { role: 'assistant' as const, content: r.text, refusal: null }, logprobs: lp, finish_reason: r.finish };
    const a = new ToolAnswer(plan);
    a.push(r.text);
    a.flush();
    const calls = a.parser.calls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } }));
    const message = a.isCalls ? { role: 'assistant' as const, content: null, refusal: null, ...(calls.length ? { tool_calls: calls } : {}) } : { role: 'assistant' as const, content: a.content, refusal: null };
    return { index, message, logprobs: lp, finish_reason: finishFor(a, r.finish) };
  });
  const generated = results.reduce((s, r) => s + r.tokens.length, 0);
  return c.json({ id, object: 'chat.completion' as const, created, model: model.id, choices, usage: usage(tokens.length, generated, group.cached[0]) });
});
