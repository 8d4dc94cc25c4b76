// Finetuning examples as training batches: the book's chapter 7 collate (instructions) and
// chapter 6 padding (classification), with two changes that leave every loss unchanged:
//
//  - Rows are padded to a BUCKETED length instead of exactly the batch's longest row. ORT
//    sessions have static shapes (one per (B, T)), and the book's per-batch length would need
//    one per distinct length. Buckets are ≤ 25 % apart, so a run uses a handful of sessions; the
//    extra positions are padding with ignored targets (instructions) or lie after the token the
//    head reads (classification), and causal attention keeps them from changing earlier ones.
//  - Classification rows are read at their last real token (the book's better variant) and
//    padded per batch, not to the longest example of the dataset.
import { EOT } from '../model/tokenizer.js';
import {
  classIds,
  collateClassification,
  collateInstructions,
  encodeInstruction,
  encodeText,
  IGNORE_INDEX,
  toInstructionExamples,
  type ClassificationRecord,
  type EncodedInstruction,
  type InstructionRecord,
} from '../datasets/index.js';
import type { Batch } from './data.js';
import { epochOrder } from './streams.js';

/** Rounds a row length up to its bucket: multiples of 8 to 32, then 4 buckets per doubling. */
export function bucketLength(n: number, maxLength: number): number {
  const q = n <= 32 ? 8 : 2 ** (Math.floor(Math.log2(n)) - 2);
  return Math.min(maxLength, Math.ceil(n / q) * q);
}

/** A finetuning dataset: how long each example's row is, and how to batch any of them. */
export interface Examples {
  readonly size: number;
  readonly maxLength: number;
  /** Positions example i occupies (its real tokens, truncated to maxLength). */
  length(i: number): number;
  /** Rows for `indices`, padded to T (≥ their lengths); rows past indices.length are padding (ignored). */
  batch(indices: readonly number[], B: number, T: number): Batch;
}

/** Chapter 7: Alpaca-template examples (chat and prompt/completion records map onto it). */
export class InstructionExamples implements Examples {
  readonly encoded: EncodedInstruction[];

  constructor(
    records: readonly InstructionRecord[],
    readonly maxLength: number,
    readonly maskPrompt = false,
  ) {
    this.encoded = records.flatMap((r) => toInstructionExamples(r)).map(encodeInstruction);
  }

  get size(): number {
    return this.encoded.length;
  }

  length(i: number): number {
    return Math.min(this.encoded[i]!.tokens.length, this.maxLength);
  }

  batch(indices: readonly number[], B: number, T: number): Batch {
    const c = collateInstructions(
      indices.map((i) => this.encoded[i]!),
      { allowedMaxLength: this.maxLength, maskPrompt: this.maskPrompt },
    );
    if (c.T > T || indices.length > B) throw new Error(`batch of ${indices.length}×${c.T} does not fit ${B}×${T}`);
    const tokens = new BigInt64Array(B * T).fill(BigInt(EOT));
    const targets = new BigInt64Array(B * T).fill(BigInt(IGNORE_INDEX));
    for (let b = 0; b < c.B; b++) {
      for (let t = 0; t < c.T; t++) {
        tokens[b * T + t] = BigInt(c.inputs[b * c.T + t]!);
        targets[b * T + t] = BigInt(c.targets[b * c.T + t]!);
      }
    }
    return { tokens, targets, count: c.count };
  }
}

/** Chapter 6: texts with class ids; the head reads each row's last real token. */
export class ClassificationExamples implements Examples {
  readonly tokens: number[][];
  readonly labels: number[];

  /** `encoded`: classificationTokens(records), so the caller can find the longest before choosing maxLength. */
  constructor(
    records: readonly ClassificationRecord[],
    encoded: readonly number[][],
    /** Class names in id order. */
    readonly classes: readonly string[],
    readonly maxLength: number,
  ) {
    this.tokens = encoded.map((t) => t.slice(0, maxLength));
    this.labels = classIds(records, classes);
  }

  get size(): number {
    return this.tokens.length;
  }

  length(i: number): number {
    return this.tokens[i]!.length;
  }

  batch(indices: readonly number[], B: number, T: number): Batch {
    const n = indices.length;
    if (n > B) throw new Error(`batch of ${n} rows does not fit ${B}`);
    const c = collateClassification(
      indices.map((i) => this.tokens[i]!),
      indices.map((i) => this.labels[i]!),
      { maxLength: T },
    );
    const tokens = new BigInt64Array(B * T).fill(BigInt(EOT));
    const targets = new BigInt64Array(B).fill(BigInt(IGNORE_INDEX));
    const lastRows = new BigInt64Array(B);
    for (let b = 0; b < n; b++) {
      for (let t = 0; t < T; t++) tokens[b * T + t] = BigInt(c.inputs[b * T + t]!);
      targets[b] = BigInt(c.labels[b]!);
      lastRows[b] = BigInt(b * T + c.lastIndex[b]!);
    }
    for (let b = n; b < B; b++) lastRows[b] = BigInt(b * T); // padding rows: any position, their target is ignored
    return { tokens, targets, count: n, lastRows };
  }
}

/** Texts as token rows; an empty text is read as a lone <|endoftext|> (as ClassifierSession and transformers do). */
export function classificationTokens(records: readonly ClassificationRecord[]): number[][] {
  return records.map((r) => {
    const t = encodeText(r.text);
    return t.length ? t : [EOT];
  });
}

/**
 * Which examples form batch k (counted from the start of training), as the book's DataLoader
 * with shuffle=True, drop_last=True: a seeded shuffle per epoch (stream (seed, epoch), so a
 * resumed run needs only k), full batches only, except that a dataset smaller than one batch
 * still gives one (partial) batch per epoch.
 */
export class TrainOrder {
  readonly batchesPerEpoch: number;
  private order: Uint32Array = new Uint32Array(0);
  private orderEpoch = -1;

  constructor(
    readonly size: number,
    readonly batchSize: number,
    readonly seed: number,
  ) {
    if (size === 0) throw new Error('no training examples');
    this.batchesPerEpoch = Math.max(1, Math.floor(size / batchSize));
  }

  indices(k: number): number[] {
    const epoch = Math.floor(k / this.batchesPerEpoch);
    if (epoch !== this.orderEpoch) {
      this.order = epochOrder(this.size, this.seed, epoch);
      this.orderEpoch = epoch;
    }
    const first = (k % this.batchesPerEpoch) * this.batchSize;
    return Array.from(this.order.subarray(first, first + this.batchSize));
  }
}

/**
 * Evaluation batches: every example once (or the first `limit` batches' worth, in file order),
 * longest first, so each batch holds similar lengths (less padding, fewer buckets); the order
 * does not change a token- or example-weighted mean.
 */
export function evalBatches(examples: Examples, batchSize: number, limit = Infinity): number[][] {
  const n = Math.min(examples.size, limit * batchSize);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => examples.length(b) - examples.length(a) || a - b);
  const out: number[][] = [];
  for (let i = 0; i < order.length && out.length < limit; i += batchSize) out.push(order.slice(i, i + batchSize));
  return out;
}

/** The bucketed row length for a batch of examples. */
export function batchLength(examples: Examples, indices: readonly number[]): number {
  return bucketLength(Math.max(...indices.map((i) => examples.length(i))), examples.maxLength);
}
