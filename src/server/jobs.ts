// From validated request to worker and back, shared by completions and chat: admission (the 4xx/5xx
// that a full queue or a loading model means), collecting a job's events into per-choice results
// for non-streamed answers, and usage counts.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { TokenLogprob } from '../model/sampler.js';
import { MAX_TOKEN_BYTES } from '../model/tokenizer.js';
import type { FinishReason } from '../model/stop.js';
import { apiError, badRequest } from './errors.js';
import { OverloadedError, type Job, type ModelWorker } from './model-worker.js';
import type { PromptEvent, SeqEvent, SeqSpec } from './protocol.js';

/** Submits a request's sequences, or throws the error a client should see. */
export function submit(model: ModelWorker, specs: Omit<SeqSpec, 'id'>[]): Job {
  if (model.state === 'loading') throw apiError(503, `The model '${model.id}' is still loading; retry shortly.`, { code: 'model_loading', headers: { 'Retry-After': '5' } });
  if (model.state === 'failed') throw apiError(503, `The model '${model.id}' is unavailable: ${model.failure}`, { code: 'model_unavailable' });
  if (specs.length > model.capacity) {
    // Retrying would never help, so this is the client's 400, not a 429.
    throw badRequest(`This request needs ${specs.length} sequences (n × prompts), more than the ${model.capacity} this server can hold.`, 'n');
  }
  try {
    return model.submit(specs);
  } catch (e) {
    if (!(e instanceof OverloadedError)) throw e;
    throw apiError(429, 'The server is overloaded: too many requests are waiting. Retry after a moment.', {
      code: 'server_overloaded',
      headers: { 'Retry-After': '1' },
    });
  }
}

/** A 400 before tokenizing when a text cannot fit the context whatever it encodes to (encoding a large body is the costly part). */
export function tooLongToEncode(atLeast: number, contextLength: number, param: string): void {
  if (atLeast <= contextLength) return;
  throw badRequest(
    `This model's maximum context length is ${contextLength} tokens, and the ${param === 'prompt' ? 'prompt' : 'conversation'} is at least ${atLeast} tokens long (one token covers at most ${MAX_TOKEN_BYTES} bytes).`,
    param,
    'context_length_exceeded',
  );
}

/** Cancels the job's sequences when the client goes away (frees their batch slots); returns the undo. */
function cancelOnDisconnect(c: Context, job: Job): () => void {
  const signal = c.req.raw.signal;
  const cancel = () => job.cancel();
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel); // a listener left behind keeps the job reachable
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

/** A job's events gathered per sequence (non-streamed answers). */
export async function collect(c: Context, job: Job): Promise<ChoiceResult[]> {
  const undo = cancelOnDisconnect(c, job);
  const out: ChoiceResult[] = job.ids.map(() => ({ text: '', tokens: [], logprobs: [], top: [], offsets: [], finish: 'length' }));
  try {
    for await (const e of job) {
      const r = out[job.index(e.id)]!;
      if (e.type === 'prompt') r.prompt = e;
      else if (e.type === 'token') {
        r.offsets.push(r.text.length);
        r.text += e.text;
        r.tokens.push(e.token);
        r.logprobs.push(e.logprob ?? null);
        r.top.push(e.top);
        if (e.finish) r.finish = e.finish;
      } else r.finish = finishOf(job, e);
    }
  } finally {
    undo();
  }
  return out;
}

/** The finish reason of an 'end' event ('length' for max_tokens 0); throws for a cancelled or failed one. */
export function finishOf(job: Job, e: SeqEvent & { type: 'end' }): FinishReason {
  if (e.reason === 'length' || e.reason === 'stop') return e.reason;
  job.cancel(); // the other choices are of no use now
  if (job.endedBy === 'shutdown') throw apiError(503, 'The server shut down before this request finished.', { code: 'server_shutting_down' });
  if (e.reason === 'error') throw apiError(500, `Generation failed: ${e.message ?? 'unknown error'}`);
  // 499 (nginx's "client closed request"): the client is gone and reads nothing; the status only shows in metrics.
  throw apiError(499 as ContentfulStatusCode, 'Request cancelled by the client.', { code: 'cancelled' });
}

export function usage(promptTokens: number, completionTokens: number) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** OpenAI-style ids ('cmpl-…', 'chatcmpl-…'). */
export function newId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replace(/-/g, '')}`;
}

export const unixTime = () => Math.floor(Date.now() / 1000);
