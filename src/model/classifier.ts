// A finetuned sequence classifier (Hugging Face GPT2ForSequenceClassification) ready to run:
// texts or token lists in, one label and the probability of every label out.
//
// The head reads the hidden state at each row's LAST REAL token (the book's chapter 6 "better
// variant", and what transformers does with pad_token_id = <|endoftext|>). Rows of a batch are
// right-padded to the longest one; causal attention means padding after a token never changes
// that token's hidden state, so rows of any length share a batch without an attention mask
// beyond the causal one, and give the same result as when run alone.
import * as ort from 'onnxruntime-node';
import { Graph } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { loadCheckpoint, type WeightSource } from './checkpoint.js';
import type { GPTConfig } from './config.js';
import { causalAttention, classifierHead, placeParams, transformer, type WeightFn } from './gpt.js';
import { CausalInputs } from './causal-inputs.js';
import { createSession, type RuntimeOptions } from './runtime.js';
import { encode, EOT } from './tokenizer.js';

export interface ClassifierOptions extends RuntimeOptions {
  /**
   * Rows × padded length per ORT run (default 4096): bounds the attention scores' memory
   * (rows · heads · T² floats) for long inputs; shorter inputs batch more rows.
   */
  maxBatchTokens?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Classification {
  /** The most probable label. */
  label: string;
  /** Softmax over the head's logits, every label. */
  probabilities: Record<string, number>;
}

/**
 * Inputs:  tokens int64 [B, T]; positions int64 [1, T]; mask float [1, 1, T, T] (causal, additive);
 *          last_rows int64 [B] (row b·T + index of row b's last real token in the flattened batch).
 * Outputs: logits [B, num_labels].
 */
export function buildClassifierGraph(cfg: GPTConfig, weight: WeightFn): Graph {
  if (!cfg.labels) throw new Error('buildClassifierGraph: the config has no labels (not a classifier)');
  const g = new Graph('gpt2_classify');
  const p = placeParams(g, cfg, weight);
  const tokens = g.input('tokens', 'int64', ['B', 'T']);
  const positions = g.input('positions', 'int64', [1, 'T']);
  const mask = g.input('mask', 'float32', [1, 1, 'T', 'T']);
  const lastRows = g.input('last_rows', 'int64', ['B']);
  const h = transformer(cfg, p, tokens, positions, causalAttention(cfg, mask)); // [B, T, C]
  const last = op.gather(op.reshape(h, [-1, cfg.nEmbd]), lastRows); // [B, C]
  g.output(classifierHead(p, last), 'logits');
  return g;
}

export class ClassifierSession {
  readonly labels: string[];
  private readonly causal = new CausalInputs();

  private constructor(
    readonly config: GPTConfig,
    private readonly session: ort.InferenceSession,
    private readonly maxBatchTokens: number,
  ) {
    this.labels = config.labels!;
  }

  static async create(config: GPTConfig, weights: Map<string, WeightSource>, opts: ClassifierOptions = {}): Promise<ClassifierSession> {
    if (!config.labels) throw new Error('this model is a language model, not a classifier (its config.json has no GPT2ForSequenceClassification labels)');
    const maxBatchTokens = opts.maxBatchTokens ?? 4096;
    if (!(Number.isInteger(maxBatchTokens) && maxBatchTokens > 0)) throw new RangeError(`maxBatchTokens must be a positive integer, got ${maxBatchTokens}`);
    const session = await createSession((weight) => buildClassifierGraph(config, weight), weights, opts);
    return new ClassifierSession(config, session, maxBatchTokens);
  }

  /** Opens a Hugging Face GPT2ForSequenceClassification folder (config.json + model.safetensors). */
  static async open(dir: string, opts: ClassifierOptions = {}): Promise<ClassifierSession> {
    const { config, weights } = loadCheckpoint(dir, { onProgress: opts.onProgress });
    if (!config.labels) throw new Error(`${dir} holds a language model, not a classifier (config.json's architectures is not GPT2ForSequenceClassification)`);
    return ClassifierSession.create(config, weights, opts);
  }

  /**
   * Texts are encoded with "<|endoftext|>" as plain text (as in training); longer inputs keep
   * their first context-length tokens (the book truncates the same way); an empty input is read
   * as a lone <|endoftext|>, as transformers reads a row of padding.
   */
  async classify(inputs: readonly (string | readonly number[])[]): Promise<Classification[]> {
    const logits = await this.logits(inputs.map((x) => (typeof x === 'string' ? encode(x, { allowSpecial: false }) : x)));
    return logits.map((row) => {
      const probs = softmax(row);
      let best = 0;
      for (let k = 1; k < probs.length; k++) if (probs[k]! > probs[best]!) best = k;
      return { label: this.labels[best]!, probabilities: Object.fromEntries(this.labels.map((l, k) => [l, probs[k]!])) };
    });
  }

  /** Raw head logits [num_labels] per token row, in input order. */
  async logits(rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const { contextLength, vocabSize } = this.config;
    const prepared = rows.map((r, i) => {
      for (const t of r) if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) throw new RangeError(`input ${i}: token ${t} is not in [0, ${vocabSize})`);
      return r.length === 0 ? [EOT] : r.slice(0, contextLength);
    });
    // Longest first, so each run's rows have similar lengths (little padding).
    const order = prepared.map((_, i) => i).sort((a, b) => prepared[b]!.length - prepared[a]!.length);
    const out = new Array<Float32Array>(rows.length);
    for (let start = 0; start < order.length; ) {
      const T = prepared[order[start]!]!.length;
      const B = Math.max(1, Math.min(order.length - start, Math.floor(this.maxBatchTokens / T)));
      const chunk = order.slice(start, start + B);
      const logits = await this.run(chunk.map((i) => prepared[i]!), T);
      const K = this.labels.length;
      chunk.forEach((i, b) => (out[i] = logits.slice(b * K, (b + 1) * K)));
      start += B;
    }
    return out;
  }

  private async run(rows: number[][], T: number): Promise<Float32Array> {
    const B = rows.length;
    const tokens = new BigInt64Array(B * T).fill(BigInt(EOT));
    const lastRows = new BigInt64Array(B);
    rows.forEach((r, b) => {
      r.forEach((t, i) => (tokens[b * T + i] = BigInt(t)));
      lastRows[b] = BigInt(b * T + r.length - 1);
    });
    const { positions, mask } = this.causal.get(T);
    const out = await this.session.run({
      tokens: new ort.Tensor('int64', tokens, [B, T]),
      positions,
      mask,
      last_rows: new ort.Tensor('int64', lastRows, [B]),
    });
    return out.logits!.data as Float32Array;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Softmax in float64 (probabilities that sum to 1 within rounding, whatever the logits' scale). */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const e = Array.from({ length: logits.length }, (_, i) => Math.exp(logits[i]! - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}
