// Tokenized instruction examples and the book's chapter 7 `custom_collate_fn`.
//
// As in the book, an example's token list does NOT end with <|endoftext|>: the collate function
// appends it (so each row is encode(prompt + response) + [50256], then padding). Targets are the
// inputs shifted by one; in each target row the first pad (that appended end-of-text, which the
// model must learn to emit) is kept and every later pad becomes ignoreIndex, so padding adds no
// loss.
import { EOT, encode } from '../model/tokenizer.js';
import type { InstructionExample } from './template.js';

export const IGNORE_INDEX = -100; // PyTorch cross_entropy's default ignore_index, as in the book

export interface EncodedInstruction {
  /** encode(prompt + response), without the end-of-text token (collate adds it). */
  tokens: number[];
  /** How many leading tokens belong to the prompt alone (for maskPrompt). */
  promptLength: number;
}

/**
 * Text that a user types as "<|endoftext|>" is encoded as ordinary text, never as token 50256:
 * otherwise a record could inject end-of-text (which collate treats as padding) mid-example.
 *
 * The prompt and response are encoded together, like the book, so the tokens are what the model
 * sees at inference. BPE can merge across the prompt/response boundary (e.g. a response starting
 * with "\n"); promptLength counts only tokens wholly inside the prompt, so a merged boundary
 * token is treated as response (trained on, never masked).
 */
export function encodeInstruction(example: InstructionExample): EncodedInstruction {
  const tokens = encode(example.prompt + example.response, { allowSpecial: false });
  const promptTokens = encode(example.prompt, { allowSpecial: false });
  let promptLength = 0;
  // Equal ids over a common prefix cover equal bytes, so the shared prefix lies inside the prompt.
  while (promptLength < promptTokens.length && promptTokens[promptLength] === tokens[promptLength]) promptLength++;
  return { tokens, promptLength };
}

export interface CollateInstructionOptions {
  padId?: number;
  ignoreIndex?: number;
  /** Truncate every row to at most this many positions (the book uses the context length, 1024). */
  allowedMaxLength?: number;
  /** Book exercise 7.2: no loss on the prompt tokens, only on the response (and end-of-text). */
  maskPrompt?: boolean;
}

export interface InstructionBatch {
  /** [B, T] row-major token ids. */
  inputs: Int32Array;
  /** [B, T] row-major next-token ids, ignoreIndex where no loss is taken. */
  targets: Int32Array;
  B: number;
  T: number;
  /** Targets that are not ignoreIndex (the loss is averaged over these). */
  count: number;
}

/** Accepts encoded examples, or bare token lists (then maskPrompt is unavailable). */
export function collateInstructions(
  examples: readonly (EncodedInstruction | readonly number[])[],
  opts: CollateInstructionOptions = {},
): InstructionBatch {
  const { padId = EOT, ignoreIndex = IGNORE_INDEX, allowedMaxLength, maskPrompt = false } = opts;
  if (examples.length === 0) throw new RangeError('collateInstructions: empty batch');
  if (allowedMaxLength !== undefined && !(Number.isInteger(allowedMaxLength) && allowedMaxLength > 0)) {
    throw new RangeError(`collateInstructions: allowedMaxLength must be a positive integer, got ${allowedMaxLength}`);
  }
  const rows = examples.map((e, b) => {
    const tokens = isTokenList(e) ? e : e.tokens;
    if (maskPrompt && isTokenList(e)) throw new TypeError(`collateInstructions: maskPrompt needs promptLength (example ${b} is a bare token list)`);
    for (const t of tokens) if (!Number.isInteger(t)) throw new RangeError(`collateInstructions: example ${b} has a non-integer token ${t}`);
    return { tokens, promptLength: isTokenList(e) ? 0 : e.promptLength };
  });

  // The book: batch_max_length = max(len(item) + 1); each row is padded to it, then inputs drop
  // the last position and targets the first, so rows are batch_max_length - 1 long.
  const full = Math.max(...rows.map((r) => r.tokens.length)); // = batch_max_length - 1
  const T = allowedMaxLength === undefined ? full : Math.min(full, allowedMaxLength);
  if (T === 0) throw new RangeError('collateInstructions: every example is empty');
  const B = rows.length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  let count = 0;

  rows.forEach(({ tokens, promptLength }, b) => {
    const padded = [...tokens, ...new Array<number>(full + 1 - tokens.length).fill(padId)];
    const target = padded.slice(1);
    // Keep the first pad in the targets, ignore every later one (found by value, as the book does).
    let seenPad = false;
    for (let t = 0; t < target.length; t++) {
      if (target[t] !== padId) continue;
      if (seenPad) target[t] = ignoreIndex;
      seenPad = true;
    }
    // Exercise 7.2: target t predicts token t + 1, so targets 0 … promptLength - 2 predict prompt
    // tokens; the target at promptLength - 1 predicts the first response token and stays.
    // (max(0, …) avoids the book's targets[:-1] when promptLength is 0.)
    if (maskPrompt) target.fill(ignoreIndex, 0, Math.max(0, promptLength - 1));
    // Truncate last, as the book does (after masking).
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = padded[t]!;
      targets[b * T + t] = target[t]!;
      if (target[t] !== ignoreIndex) count++;
    }
  });
  return { inputs, targets, B, T, count };
}

function isTokenList(e: EncodedInstruction | readonly number[]): e is readonly number[] {
  return Array.isArray(e);
}

/** Row b of a [B, T] batch array as a plain list (for tests and debugging). */
export function row(data: Int32Array, T: number, b: number): number[] {
  return Array.from(data.subarray(b * T, (b + 1) * T));
}
