// Pretraining data as the book builds it: the text split by characters (validation = the last
// part), tokenized, cut into sliding windows of max_length tokens every `stride` tokens, and
// batched with a seeded shuffle per epoch. Batches are addressed by a global index, so a
// resumed run only needs that index to continue with exactly the batches it would have seen.
import { encode } from '../model/tokenizer.js';
import { epochOrder } from './streams.js';

export const IGNORE_INDEX = -100;

/** The book's split: train = the first (1 - valRatio) of the characters, validation = the rest. */
export function splitText(text: string, valRatio: number): { train: string; val: string } {
  if (!(valRatio >= 0 && valRatio < 1)) throw new Error(`validation ratio must be in [0, 1), got ${valRatio}`);
  const at = Math.floor((1 - valRatio) * text.length);
  return { train: text.slice(0, at), val: text.slice(at) };
}

export function tokenize(text: string): Int32Array {
  return Int32Array.from(encode(text));
}

/**
 * GPTDatasetV1: window i covers tokens [start, start + maxLength) as input and the same
 * shifted by one as target, for start = 0, stride, 2·stride, … while a full target fits.
 */
export class SlidingWindows {
  readonly length: number;

  constructor(
    readonly tokens: Int32Array,
    readonly maxLength: number,
    readonly stride: number,
  ) {
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`max_length must be a positive integer, got ${maxLength}`);
    if (!Number.isInteger(stride) || stride < 1) throw new Error(`stride must be a positive integer, got ${stride}`);
    // range(0, len(tokens) - max_length, stride) in the book
    this.length = Math.max(0, Math.ceil((tokens.length - maxLength) / stride));
  }

  input(i: number): Int32Array {
    return this.tokens.subarray(i * this.stride, i * this.stride + this.maxLength);
  }

  target(i: number): Int32Array {
    return this.tokens.subarray(i * this.stride + 1, i * this.stride + this.maxLength + 1);
  }
}

export interface Batch {
  tokens: BigInt64Array; // [B, T]
  targets: BigInt64Array; // [B·T], IGNORE_INDEX on padding rows; [B] class ids for a classification batch
  /** Targets that count (not ignored). */
  count: number;
  /** Classification only: [B] flattened position (b·T + t) of the token each row's head reads. */
  lastRows?: BigInt64Array;
}

export interface LoaderOptions {
  batchSize: number;
  shuffle: boolean;
  /** Drop the last partial batch (training) or pad it with ignored rows (evaluation). */
  dropLast: boolean;
  seed: number;
}

export class BatchLoader {
  readonly batchesPerEpoch: number;
  private order: Uint32Array | undefined;
  private orderEpoch = -1;

  constructor(
    readonly windows: SlidingWindows,
    readonly opts: LoaderOptions,
  ) {
    const n = windows.length / opts.batchSize;
    this.batchesPerEpoch = opts.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** Batch `k` counted from the start of training; epoch = floor(k / batchesPerEpoch). */
  batch(k: number): Batch {
    if (this.batchesPerEpoch === 0) throw new Error(`not enough data for one batch of ${this.opts.batchSize} windows (have ${this.windows.length})`);
    const epoch = Math.floor(k / this.batchesPerEpoch);
    const first = (k % this.batchesPerEpoch) * this.opts.batchSize;
    const order = this.shuffled(epoch);
    const { batchSize: B } = this.opts;
    const T = this.windows.maxLength;
    const tokens = new BigInt64Array(B * T);
    const targets = new BigInt64Array(B * T).fill(BigInt(IGNORE_INDEX));
    let count = 0;
    for (let b = 0; b < B && first + b < this.windows.length; b++) {
      const w = order ? order[first + b]! : first + b;
      const [x, y] = [this.windows.input(w), this.windows.target(w)];
      for (let t = 0; t < T; t++) {
        tokens[b * T + t] = BigInt(x[t]!);
        targets[b * T + t] = BigInt(y[t]!);
      }
      count += T;
    }
    return { tokens, targets, count };
  }

  private shuffled(epoch: number): Uint32Array | undefined {
    if (!this.opts.shuffle) return undefined;
    if (this.orderEpoch !== epoch) {
      this.order = epochOrder(this.windows.length, this.opts.seed, epoch);
      this.orderEpoch = epoch;
    }
    return this.order;
  }
}
