// One model's answer to a playground request, as it streams in: each choice's text and tokens
// (with logprobs when asked for), the usage, and timings measured in the page.
import { stream } from './api.js';

export interface Alternative {
  token: string;
  logprob: number;
}

export interface GeneratedToken {
  /** The token's share of the answer's text: '' for a token that ends inside a UTF-8 character. */
  text: string;
  /** null for the first token of an echoed prompt, which nothing predicts. */
  logprob: number | null;
  /** The most likely tokens at this position, most likely first. */
  top: Alternative[];
  /** The token's bytes, hex, when known (chat). */
  bytes?: string;
  /** A special token ('<|endoftext|>'), which ends the answer without adding text to it. */
  special?: string;
  /** Part of the echoed prompt, not generated. */
  prompt?: boolean;
}

export interface ChoiceOutput {
  text: string;
  tokens: GeneratedToken[];
  finish: string | null;
}

export interface Generation {
  model: string;
  choices: ChoiceOutput[];
  /** performance.now() at the request, the first generated text, and the end. */
  started: number;
  firstToken?: number;
  ended?: number;
  completionTokens?: number;
  /** Ended by the Stop button. */
  stopped?: boolean;
  error?: unknown;
}

interface ChatChunk {
  choices: {
    index: number;
    delta: { content?: string | null };
    logprobs?: { content: { token: string; logprob: number; bytes: number[] | null; top_logprobs: Alternative[] }[] | null } | null;
    finish_reason: string | null;
  }[];
  usage?: { completion_tokens: number } | null;
}

interface CompletionChunk {
  choices: {
    index: number;
    text: string;
    logprobs?: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[] } | null;
    finish_reason: string | null;
  }[];
  usage?: { completion_tokens: number } | null;
}

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');

const byLikelihood = (a: Alternative, b: Alternative) => b.logprob - a.logprob;

function choiceAt(g: Generation, index: number): ChoiceOutput {
  while (g.choices.length <= index) g.choices.push({ text: '', tokens: [], finish: null });
  return g.choices[index]!;
}

function addChat(g: Generation, chunk: ChatChunk): boolean {
  let generated = false;
  for (const c of chunk.choices) {
    const out = choiceAt(g, c.index);
    const text = c.delta.content ?? '';
    out.text += text;
    // The server sends one token per chunk: its logprobs entry rides with its text.
    for (const t of c.logprobs?.content ?? []) {
      const special = text === '' && /^<\|\w+\|>$/.test(t.token) ? t.token : undefined;
      out.tokens.push({ text, logprob: t.logprob, top: [...t.top_logprobs].sort(byLikelihood), bytes: t.bytes && !special ? hex(t.bytes) : undefined, special });
      generated = true;
    }
    if (text) generated = true;
    if (c.finish_reason) out.finish = c.finish_reason;
  }
  return generated;
}

function addCompletion(g: Generation, chunk: CompletionChunk): boolean {
  let generated = false;
  for (const c of chunk.choices) {
    const out = choiceAt(g, c.index);
    out.text += c.text;
    const lp = c.logprobs;
    if (lp && lp.tokens.length) {
      const top = (i: number) =>
        Object.entries(lp.top_logprobs[i] ?? {})
          .map(([token, logprob]) => ({ token, logprob }))
          .sort(byLikelihood);
      // A generated token comes alone, with a logprob; the echoed prompt comes in one chunk
      // whose first token has none. Alone, a token's text is the chunk's (UTF-8 kept whole).
      const prompt = lp.tokens.length > 1 || lp.token_logprobs[0] == null;
      if (prompt) lp.tokens.forEach((token, i) => out.tokens.push({ text: token, logprob: lp.token_logprobs[i] ?? null, top: top(i), prompt: true }));
      else {
        out.tokens.push({ text: c.text, logprob: lp.token_logprobs[0]!, top: top(0) });
        generated = true;
      }
    } else if (c.text) generated = true;
    if (c.finish_reason) out.finish = c.finish_reason;
  }
  return generated;
}

/**
 * Streams `body` to `path` for one model, calling `update` with a fresh Generation after each
 * chunk. Resolves when the answer ends, is stopped (the signal) or fails (in `error`); never throws.
 */
export async function generate(path: string, body: Record<string, unknown>, signal: AbortSignal, update: (g: Generation) => void): Promise<Generation> {
  let g: Generation = { model: String(body.model), choices: [], started: performance.now() };
  const chat = path.endsWith('/chat/completions');
  update(g);
  try {
    for await (const chunk of stream<ChatChunk & CompletionChunk>(path, { ...body, stream_options: { include_usage: true } }, signal)) {
      const next: Generation = { ...g, choices: g.choices.map((c) => ({ ...c, tokens: [...c.tokens] })) };
      const generated = chat ? addChat(next, chunk) : addCompletion(next, chunk);
      if (generated && next.firstToken === undefined) next.firstToken = performance.now();
      if (chunk.usage) next.completionTokens = chunk.usage.completion_tokens;
      g = next;
      update(g);
    }
  } catch (e) {
    g = signal.aborted ? { ...g, stopped: true } : { ...g, error: e };
  }
  g = { ...g, ended: performance.now() };
  update(g);
  return g;
}

/** The usage line: tokens, time to first token, tokens per second after it, and the finish reasons. */
export function usageLine(g: Generation): string {
  const parts: string[] = [];
  const tokens = g.completionTokens ?? g.choices.reduce((s, c) => s + c.tokens.filter((t) => !t.prompt).length, 0);
  parts.push(`${tokens} token${tokens === 1 ? '' : 's'}`);
  if (g.firstToken !== undefined) parts.push(`first token ${Math.round(g.firstToken - g.started)} ms`);
  if (g.firstToken !== undefined && g.ended !== undefined && tokens > 1 && g.ended > g.firstToken) {
    // The first token's time is the prompt's: the rate counts the tokens after it.
    parts.push(`${((tokens - 1) / ((g.ended - g.firstToken) / 1000)).toFixed(1)} tokens/s`);
  }
  const finishes = [...new Set(g.choices.map((c) => c.finish).filter((f) => f))];
  if (g.stopped) parts.push('stopped');
  else if (finishes.length) parts.push(`finish: ${finishes.join(', ')}`);
  return parts.join(' · ');
}
