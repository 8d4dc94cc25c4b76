// Classification batches (chapter 6): each text is encoded, truncated to maxLength, and padded
// with end-of-text to exactly maxLength, as the book's SpamDataset does.
//
// The book's head reads the logits at the LAST position, which for a short text is a padding
// token. Here each row also reports the index of its last real token, so the head can read that
// position instead (the "better variant": causal attention means only that position has seen the
// whole text, and its hidden state does not depend on how much padding follows).
import { EOT, encode } from '../model/tokenizer.js';
import type { ClassificationRecord } from './records.js';

export interface ClassificationBatch {
  /** [B, T] row-major token ids, T = maxLength. */
  inputs: Int32Array;
  /** [B] position of each row's last non-padding token. */
  lastIndex: Int32Array;
  /** [B] class ids. */
  labels: Int32Array;
  B: number;
  T: number;
}

export interface CollateClassificationOptions {
  /** Fixed row length: longer texts are truncated (keeping the start, as the book does). */
  maxLength: number;
  padId?: number;
}

/** Texts are encoded with "<|endoftext|>" as plain text, so no text can contain a padding token. */
export function encodeText(text: string): number[] {
  return encode(text, { allowSpecial: false });
}

/** The book's default max_length: the longest encoded text (of the training set). */
export function longestEncodedLength(texts: readonly (string | readonly number[])[]): number {
  return texts.reduce((m, t) => Math.max(m, (typeof t === 'string' ? encodeText(t) : t).length), 0);
}

export function collateClassification(
  texts: readonly (string | readonly number[])[],
  labels: readonly number[],
  opts: CollateClassificationOptions,
): ClassificationBatch {
  const { maxLength: T, padId = EOT } = opts;
  if (!(Number.isInteger(T) && T > 0)) throw new RangeError(`collateClassification: maxLength must be a positive integer, got ${T}`);
  if (texts.length === 0) throw new RangeError('collateClassification: empty batch');
  if (labels.length !== texts.length) throw new RangeError(`collateClassification: ${texts.length} texts but ${labels.length} labels`);
  const B = texts.length;
  const inputs = new Int32Array(B * T).fill(padId);
  const lastIndex = new Int32Array(B);
  texts.forEach((text, b) => {
    const tokens = (typeof text === 'string' ? encodeText(text) : text).slice(0, T);
    // An empty row has no real token for the head to read.
    if (tokens.length === 0) throw new RangeError(`collateClassification: example ${b} has no tokens`);
    tokens.forEach((t, i) => {
      if (!Number.isInteger(t)) throw new RangeError(`collateClassification: example ${b} has a non-integer token ${t}`);
      inputs[b * T + i] = t;
    });
    lastIndex[b] = tokens.length - 1;
  });
  labels.forEach((l, b) => {
    if (!(Number.isInteger(l) && l >= 0)) throw new RangeError(`collateClassification: label ${b} must be a class id (integer >= 0), got ${l}`);
  });
  return { inputs, lastIndex, labels: Int32Array.from(labels), B, T };
}

/** Class id of each record: the index of its label in the dataset's sorted `labels`. */
export function classIds(records: readonly ClassificationRecord[], labels: readonly string[]): number[] {
  const id = new Map(labels.map((l, i) => [l, i]));
  return records.map((r) => {
    const i = id.get(String(r.label));
    if (i === undefined) throw new RangeError(`classIds: label ${JSON.stringify(r.label)} is not one of the dataset's labels`);
    return i;
  });
}
