// POST /v1/completions: OpenAI's legacy text completions, streamed or not.
import { Hono } from 'hono';
import { z } from 'zod';
import type { TokenLogprob } from '../model/sampling-kernels.js';
import { decode, encode, EOT, minTokens } from '../model/tokenizer.js';
import { admit, checkTokenIds, inputList, tooLongToEncode } from './admission.js';
import type { AppEnv } from './env.js';
import { badRequest } from './errors.js';
import { doc } from './openapi.js';
import type { PromptEvent, SeqEvent } from './protocol.js';
import { collect, finishOf, newId, unixTime, usage, type ChoiceResult } from './response.js';
import { samplingFields, stopList } from './sampling.js';
import { streamGroup } from './sse.js';
import { json } from './validate.js';

const tokenIds = z.array(z.number().int().min(0)).min(1);

export const completionRequest = z.strictObject({
  ...samplingFields,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)], {
    error: 'must be a string, an array of strings, an array of token ids, or an array of token-id arrays',
  }),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().min(0).max(5).nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.unknown().optional(), // accepted by the schema only to be refused by name below
});

interface Prompt {
  tokens: number[];
  text: string; // what echo returns
}

/** One prompt's token ids, or a 400 for a text too long to fit or an id outside the vocabulary. */
function tokenizePrompt(x: string | number[], i: number, count: number, vocabSize: number, contextLength: number): number[] {
  if (typeof x === 'string') {
    tooLongToEncode(minTokens(x), contextLength, 'prompt');
    // An empty prompt starts from <|endoftext|>, as GPT-2 does for unconditional samples.
    const tokens = encode(x);
    return tokens.length ? tokens : [EOT];
  }
  checkTokenIds(x, vocabSize, 'prompt', i, count);
  return x;
}

/** OpenAI's legacy logprobs object: parallel lists, top alternatives as {token text: logprob}. */
interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

function legacyLogprobs(tokens: number[], logprobs: (number | null)[], tops: (TokenLogprob[] | null | undefined)[], offsets: number[]): LegacyLogprobs {
  return {
    tokens: tokens.map((t) => decode([t])),
    token_logprobs: logprobs,
    // The N most likely, plus the chosen token (OpenAI: "up to logprobs+1 elements").
    top_logprobs: tops.map((top, i) => {
      if (!top) return null;
      const dict: Record<string, number> = {};
      for (const t of top) dict[decode([t.token])] ??= t.logprob;
      dict[decode([tokens[i]!])] ??= logprobs[i]!;
      return dict;
    }),
    text_offset: offsets,
  };
}

/** The prompt's logprobs (echo): offsets run over the prompt's token texts from 0. */
function promptLogprobs(p: Prompt, e: PromptEvent): LegacyLogprobs {
  const offsets: number[] = [];
  let at = 0;
  for (const t of p.tokens) {
    offsets.push(at);
    at += decode([t]).length;
  }
  return legacyLogprobs(p.tokens, e.logprobs, e.top, offsets);
}

function concat(a: LegacyLogprobs, b: LegacyLogprobs): LegacyLogprobs {
  return {
    tokens: [...a.tokens, ...b.tokens],
    token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
    top_logprobs: [...a.top_logprobs, ...b.top_logprobs],
    text_offset: [...a.text_offset, ...b.text_offset],
  };
}

export const completions = new Hono<AppEnv>().post('/completions', doc('Completions', 'Complete a prompt (streamed with stream: true)'), json(completionRequest), async (c) => {
  const b = c.req.valid('json');
  const model = c.var.models.get(b.model);
  // Insertion needs a model trained for it; GPT-2 only continues text. Refused, never ignored.
  if (b.suffix != null) throw badRequest("'suffix' is not supported: GPT-2 models only continue text (no insertion).", 'suffix');
  const n = b.n ?? 1;
  if (b.best_of != null && b.best_of !== n) throw badRequest(`best_of (${b.best_of}) must equal n (${n}): this server does not rank candidates.`, 'best_of');
  if (b.stream_options && !b.stream) throw badRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  const { vocabSize, contextLength } = model.config;
  const list = inputList(b.prompt);
  const logprobs = b.logprobs ?? undefined;
  const echo = b.echo ?? false;
  const scoresPrompt = echo && logprobs !== undefined;
  const { group, prompts: tokens } = admit(model, {
    body: b,
    prompts: list,
    tokenize: (x, i) => tokenizePrompt(x, i, list.length, vocabSize, contextLength),
    // A model's max_new_tokens is a default, not a request: it stops at the context window (vLLM).
    maxTokens: (promptLength) =>
      b.max_tokens ?? (model.generation.maxTokens === undefined ? 16 : Math.max(0, Math.min(model.generation.maxTokens, contextLength - promptLength))), // 16: OpenAI's default
    param: 'prompt',
    stop: stopList(b.stop),
    logprobs,
    // A prompt's logprobs are the same for all its n choices: computed once (each costs the
    // prompt's length × the vocabulary).
    promptLogprobs: scoresPrompt ? logprobs : undefined,
  });
  const prompts: Prompt[] = list.map((x, i) => ({ tokens: tokens[i]!, text: typeof x === 'string' ? x : decode(x) }));
  const promptOf = (k: number) => prompts[Math.floor(k / n)]!;
  const promptTokens = prompts.reduce((s, p) => s + p.tokens.length, 0); // once per prompt, whatever n
  // Likewise cached tokens: each prompt's first choice's (the others share its prefill).
  const cachedTokens = () => prompts.reduce((s, _, i) => s + group.cached[i * n]!, 0);
  const head = { id: newId('cmpl'), object: 'text_completion' as const, created: unixTime(), model: model.id };

  if (b.stream) {
    const choice = (index: number, text: string, lp: LegacyLogprobs | null, finish: string | null) => ({
      ...head,
      choices: [{ index, text, logprobs: lp, finish_reason: finish }],
    });
    const state = group.ids.map(() => ({ echo: echo ? undefined : '', emitted: 0 }));
    // With prompt logprobs, a choice's events wait for its prompt's first choice to bring them.
    const scored: (PromptEvent | undefined)[] = prompts.map(() => undefined);
    const held: SeqEvent[][] = group.ids.map(() => []);
    let generated = 0;
    const render = (e: SeqEvent): unknown[] => {
      const k = group.index(e.id);
      const s = state[k]!;
      const p = promptOf(k);
      const first = k - (k % n);
      if (e.type === 'prompt') {
        scored[first / n] = e;
        return Array.from({ length: n }, (_, i) => first + i).flatMap((j) => {
          state[j]!.echo = '';
          state[j]!.emitted = p.text.length;
          return [choice(j, p.text, promptLogprobs(p, e), null), ...held[j]!.splice(0).flatMap(render)];
        });
      }
      if (scoresPrompt && !scored[first / n]) {
        held[k]!.push(e);
        return [];
      }
      const pre = s.echo ?? p.text; // echo without logprobs: the prompt rides in the first chunk
      s.echo = '';
      s.emitted += pre.length;
      if (e.type === 'end') return [choice(k, pre, null, finishOf(group, e))];
      generated++;
      const lp = logprobs === undefined ? null : legacyLogprobs([e.token], [e.logprob ?? null], [e.top], [s.emitted]);
      s.emitted += e.text.length;
      return [choice(k, pre + e.text, lp, e.finish)];
    };
    return streamGroup(c, group, {
      event: render,
      usage: b.stream_options?.include_usage ? () => ({ ...head, choices: [], usage: usage(promptTokens, generated, cachedTokens()) }) : undefined,
    });
  }

  const results = await collect(c, group);
  const choices = results.map((r: ChoiceResult, k) => {
    const p = promptOf(k);
    const pre = echo ? p.text : '';
    let lp: LegacyLogprobs | null = null;
    if (logprobs !== undefined) {
      lp = legacyLogprobs(r.tokens, r.logprobs, r.top, r.offsets.map((o) => o + pre.length));
      const scored = results[k - (k % n)]!.prompt;
      if (echo && scored) lp = concat(promptLogprobs(p, scored), lp);
    }
    return { text: pre + r.text, index: k, logprobs: lp, finish_reason: r.finish };
  });
  const generated = results.reduce((s, r) => s + r.tokens.length, 0);
  return c.json({ ...head, choices, usage: usage(promptTokens, generated, cachedTokens()) });
});
