// Admission: the one step from a validated body to the model thread, shared by completions and
// chat. The schema (validate.ts) has checked what the body decides alone; this step does the
// checks that depend on the model (capacity, context window, vocabulary), in that order, builds
// each choice's sequence spec, and submits them, as the error a client should see on refusal.
import type { ConstraintSpec } from '../model/constraint.js';
import { checkContextLength, ContextLengthError } from '../model/errors.js';
import { MAX_TOKEN_BYTES, VOCAB_SIZE } from '../model/tokenizer.js';
import { badRequest, ContextLengthExceeded, requireReady, serverOverloaded } from './errors.js';
import { OverloadedError, type ModelWorker, type SequenceGroup } from './model-worker.js';
import type { SeqSpec } from './protocol.js';
import { requestConstraint, samplingOptions, type SamplingBody } from './sampling.js';

/** What an endpoint hands to admission: its prompts as the client gave them, and its rules. */
export interface AdmissionRequest<P> {
  body: SamplingBody;
  /** Each becomes n sequences. */
  prompts: readonly P[];
  /**
   * Tokens of one prompt, or a 400 of the endpoint's own. Called after the capacity check: a body
   * of 100k tiny prompts must not cost 100k encodes to refuse.
   */
  tokenize(prompt: P, index: number): number[];
  /** Tokens to generate after a prompt of this length: the request's limit, else the endpoint's default. */
  maxTokens(promptLength: number): number;
  /** The parameter a context-window error names: 'prompt' or 'messages'. */
  param: string;
  stop: string[];
  logprobs?: number;
  /** echo + logprobs: score each prompt too, in the first of its n choices only (the rest reuse it). */
  promptLogprobs?: number;
  /** A constraint of the endpoint's own (chat's tool calls, tools.ts), already checked to compile; replaces the body's. */
  constraint?: ConstraintSpec;
}

export interface Admitted {
  group: SequenceGroup;
  /** Each prompt's tokens, in the request's order. */
  prompts: number[][];
}

const invalid = (param: string, message: string) => badRequest(`${param}: ${message}`, param, 'invalid_parameter');

/** Checks a request against the model, then submits its sequences: prompt i's choices are sequences i·n … i·n + n − 1. */
export function admit<P>(model: ModelWorker, r: AdmissionRequest<P>): Admitted {
  const b = r.body;
  const n = b.n ?? 1;
  const sequences = r.prompts.length * n;
  // Retrying would never help, so this is the client's 400, not a 429.
  if (sequences > model.capacity) throw badRequest(`This request needs ${sequences} sequences (n × prompts), more than the ${model.capacity} this server can hold.`, 'n');
  const { contextLength, vocabSize } = model.config;
  const prompts = r.prompts.map((p, i) => r.tokenize(p, i));
  for (const tokens of prompts) fitContext(tokens.length, r.maxTokens(tokens.length), contextLength, r.param);
  const logitBias = b.logit_bias ? tokenBiases(b.logit_bias, vocabSize) : undefined;
  const constraint = r.constraint ?? requestConstraint(b);
  // Choice i draws with seed + i, which must stay an exact integer.
  if (b.seed != null && !Number.isSafeInteger(b.seed + (n - 1))) throw invalid('seed', `must be an integer, got ${Number.MAX_SAFE_INTEGER + 1}`);
  const specs: Omit<SeqSpec, 'id'>[] = prompts.flatMap((tokens) => {
    const settings = { maxTokens: r.maxTokens(tokens.length), stop: r.stop, logprobs: r.logprobs, logitBias, constraint, defaults: model.generation };
    return Array.from({ length: n }, (_, i) => ({
      prompt: tokens,
      options: samplingOptions(b, settings, i),
      promptLogprobs: i === 0 ? r.promptLogprobs : undefined,
    }));
  });
  return { group: submit(model, specs), prompts };
}

/** prompt + completion within the context window, or the 400 that names `param`. */
export function fitContext(promptTokens: number, maxTokens: number, contextLength: number, param: string): void {
  try {
    checkContextLength(promptTokens, maxTokens, contextLength);
  } catch (e) {
    if (e instanceof ContextLengthError) throw new ContextLengthExceeded(e, param);
    throw e;
  }
}

/** A 400 before tokenizing when a text cannot fit the context whatever it encodes to (encoding a large body is the costly part). */
export function tooLongToEncode(atLeast: number, contextLength: number, param: string): void {
  if (atLeast <= contextLength) return;
  throw badRequest(
    `This model's maximum context length is ${contextLength} tokens, and the ${param === 'messages' ? 'conversation' : param} is at least ${atLeast} tokens long (one token covers at most ${MAX_TOKEN_BYTES} bytes).`,
    param,
    'context_length_exceeded',
  );
}

/** logit_bias keyed by token id; keys must be ids in the vocabulary written as integers ('50256', not '1e3' or ' 7'). */
function tokenBiases(bias: Record<string, number>, vocabSize: number): Record<number, number> {
  const keys = Object.keys(bias);
  for (const key of keys) if (!/^\d+$/.test(key)) throw invalid('logit_bias', `invalid token id '${key}'`);
  for (const key of keys) if (Number(key) >= vocabSize) throw invalid('logit_bias', `invalid token id '${key}' (vocabulary has ${vocabSize} tokens)`);
  return Object.fromEntries(keys.map((key) => [Number(key), bias[key]!]));
}

/** Submits the sequences, or throws the 503 (model not ready) or 429 (queue full) a client should see. */
function submit(model: ModelWorker, specs: Omit<SeqSpec, 'id'>[]): SequenceGroup {
  requireReady(model);
  try {
    return model.submit(specs);
  } catch (e) {
    if (!(e instanceof OverloadedError)) throw e;
    throw serverOverloaded();
  }
}

/** Every input form OpenAI accepts (a string, strings, token ids, token-id arrays), as a list. */
export function inputList(x: string | string[] | number[] | number[][]): (string | number[])[] {
  return typeof x === 'string' ? [x] : typeof x[0] === 'number' ? [x as number[]] : (x as (string | number[])[]);
}

/** The 400 for an id outside the vocabulary in input `i` of `count` (named when there are several). */
export function checkTokenIds(tokens: readonly number[], vocabSize: number, param: string, i: number, count: number): void {
  const bad = tokens.find((t) => t >= Math.min(vocabSize, VOCAB_SIZE));
  if (bad !== undefined) throw badRequest(`Invalid token id ${bad} in ${param}${count > 1 ? ` ${i}` : ''}: the vocabulary has ${vocabSize} tokens.`, param);
}
