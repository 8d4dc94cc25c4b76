// From a sequence group's events to a response, shared by completions and chat: per-choice results
// for non-streamed answers (sse.ts streams), finish reasons, usage counts and ids.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { TokenLogprob } from '../model/sampling-kernels.js';
import type { FinishReason } from '../model/stop.js';
import { apiError } from './errors.js';
import type { SequenceGroup } from './model-worker.js';
import type { PromptEvent, SeqEvent } from './protocol.js';

/** Cancels the group's sequences when the client goes away (frees their batch slots); returns the undo. */
function cancelOnDisconnect(c: Context, group: SequenceGroup): () => void {
  const signal = c.req.raw.signal;
  const cancel = () => group.cancel();
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel); // a listener left behind keeps the group reachable
}

export interface ChoiceResult {
  text: string;
  tokens: number[];
  logprobs: (number | null)[]; // null unless logprobs were requested
  top: (TokenLogprob[] | undefined)[];
  /** Emitted text length before each token (offsets for logprobs). */
  offsets: number[];
  prompt?: PromptEvent;
  finish: FinishReason;
}

/** A group's events gathered per sequence (non-streamed answers). */
export async function collect(c: Context, group: SequenceGroup): Promise<ChoiceResult[]> {
  const undo = cancelOnDisconnect(c, group);
  const out: ChoiceResult[] = group.ids.map(() => ({ text: '', tokens: [], logprobs: [], top: [], offsets: [], finish: 'length' }));
  try {
    for await (const e of group) {
      const r = out[group.index(e.id)]!;
      if (e.type === 'prompt') r.prompt = e;
      else if (e.type === 'token') {
        r.offsets.push(r.text.length);
        r.text += e.text;
        r.tokens.push(e.token);
        r.logprobs.push(e.logprob ?? null);
        r.top.push(e.top);
        if (e.finish) r.finish = e.finish;
      } else r.finish = finishOf(group, e);
    }
  } finally {
    undo();
  }
  return out;
}

/** The finish reason of an 'end' event ('length' for max_tokens 0); throws for a cancelled or failed one. */
export function finishOf(group: SequenceGroup, e: SeqEvent & { type: 'end' }): FinishReason {
  if (e.reason === 'length' || e.reason === 'stop') return e.reason;
  group.cancel(); // the other choices are of no use now
  if (group.endedBy === 'shutdown') throw apiError(503, 'The server shut down before this request finished.', { code: 'server_shutting_down' });
  if (e.reason === 'error' && e.invalidRequest) throw apiError(400, constraintFailure(e.message), { code: 'constraint_too_complex' });
  if (e.reason === 'error') throw apiError(500, `Generation failed: ${e.message ?? 'unknown error'}`);
  // 499 (nginx's "client closed request"): the client is gone and reads nothing; the status only shows in metrics.
  throw apiError(499 as ContentfulStatusCode, 'Request cancelled by the client.', { code: 'cancelled' });
}

/** What a client reads when its structured-output constraint could not be followed. */
export const constraintFailure = (message = '') => `The structured-output constraint could not be followed: ${message}`;

/** OpenAI's usage object; cachedTokens: prompt tokens whose K/V came from the prefix cache. */
export function usage(promptTokens: number, completionTokens: number, cachedTokens = 0) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: cachedTokens } };
}

/** OpenAI-style ids ('cmpl-…', 'chatcmpl-…'). */
export function newId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replace(/-/g, '')}`;
}

export const unixTime = () => Math.floor(Date.now() / 1000);
