// Messages between the HTTP thread (ModelWorker, the handle) and a model's thread (model-thread.ts,
// one per model).
//
//   HTTP thread ── submit(seqs) / cancel(ids) ──► model thread: Scheduler ─► ModelSession.forward ─► Generation.step
//   HTTP thread ◄── step{events, running, waiting} ── model thread, one message per forward call
//
// A sequence is one choice of one request: its own prompt tokens, sampling options (seed) and KV
// slot. Data flows one way; the only message against the flow is cancel.
import type { EmbedRow } from '../model/embedding.js';
import type { PrefixCacheStats } from '../model/prefix-cache.js';
import type { DraftStats } from '../model/speculative.js';
import type { SamplingOptions } from '../model/sampler.js';
import type { TokenLogprob } from '../model/sampling-kernels.js';
import type { FinishReason } from '../model/stop.js';

export interface SeqSpec {
  id: number;
  prompt: number[];
  options: SamplingOptions;
  /** Score the prompt too (echo + logprobs): this many alternatives per prompt position. */
  promptLogprobs?: number;
}

/** close: finish the current step, close the session and exit (see threads/stop.ts). */
export type ToModelThread = { type: 'submit'; seqs: SeqSpec[] } | { type: 'cancel'; ids: number[] } | EmbedRequest | { type: 'close' };

/** One /v1/embeddings request's inputs, embedded between the scheduler's forward calls (embedding-queue.ts). */
export interface EmbedRequest {
  type: 'embed';
  id: number;
  rows: EmbedRow[];
}

/** An embed request's answer: its rows' vectors back to back ([rows × n_embd]), or why it failed. */
export type EmbedResult = { type: 'embeddings'; id: number; data: Float32Array } | { type: 'embed-error'; id: number; message: string };

/** Log-probabilities of the prompt's tokens; the first has none (nothing predicts it). */
export interface PromptEvent {
  type: 'prompt';
  id: number;
  logprobs: (number | null)[];
  top: (TokenLogprob[] | null)[];
}

export interface TokenEvent {
  type: 'token';
  id: number;
  token: number;
  /** Text this token completes (stop strings held back and cut, as Generation.step). */
  text: string;
  logprob?: number; // when logprobs were requested
  top?: TokenLogprob[];
  /** Set on the sequence's last token. */
  finish: FinishReason | null;
  /** On the first token: prompt tokens whose K/V came from the prefix cache (absent: none). */
  cached?: number;
}

/** A sequence that ends without a final token: max_tokens 0 ('length'), cancelled, or failed. */
export interface EndEvent {
  type: 'end';
  id: number;
  reason: FinishReason | 'cancelled' | 'error';
  message?: string;
  /** An 'error' the request caused (a constraint too complex to follow): the client's 400, not a 500. */
  invalidRequest?: true;
}

export type SeqEvent = PromptEvent | TokenEvent | EndEvent;

export type FromModelThread =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  /** `batch`: rows of the forward call these events came from (0: no call, e.g. a cancel). */
  | { type: 'step'; events: SeqEvent[]; running: number; waiting: number; batch: number; prefix?: PrefixCacheStats; draft?: DraftStats }
  | EmbedResult;

/** True when the event is the sequence's last. */
export function isFinal(e: SeqEvent): e is EndEvent | TokenEvent {
  return e.type === 'end' || (e.type === 'token' && e.finish !== null);
}
