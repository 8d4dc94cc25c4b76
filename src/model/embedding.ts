// Text embeddings from a language model: the final hidden states (after ln_f, what Hugging Face's
// last_hidden_state and OpenAI-style GPT embeddings give: the normalised residual stream the
// output head reads) of the input's tokens, pooled to one vector of n_embd floats.
//
// Pooling: 'mean' (default) averages every token's state; 'last' takes the last token's state,
// the only one that has seen the whole input under causal attention. Both are one weighted sum
// in the graph (`pool` holds 1/n per real token, or a 1 at the last), so rows of either pooling
// share a run. Rows are right-padded to the longest: causal attention keeps padding from ever
// changing a real token's state (as in classifier.ts), so a row gives the same vector alone or
// in a batch.
import * as ort from 'onnxruntime-node';
import { Graph } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import type { WeightSource } from './checkpoint.js';
import type { GPTConfig } from './config.js';
import { causalAttention, placeParams, transformer, type WeightFn } from './gpt.js';
import { CausalInputs } from './causal-inputs.js';
import { createSession, type RuntimeOptions } from './runtime.js';
import { EOT } from './tokenizer.js';

export const POOLINGS = ['mean', 'last'] as const;
export type Pooling = (typeof POOLINGS)[number];

export interface EmbedRow {
  tokens: readonly number[];
  pooling: Pooling;
}

/**
 * Inputs:  tokens int64 [B, T]; positions int64 [1, T]; mask float [1, 1, T, T] (causal, additive);
 *          pool float [B, T] (each row's weights over its positions: 0 on padding).
 * Outputs: embeddings [B, C] = Σ_t pool[b, t] · h[b, t].
 * No output head: the logits over the vocabulary would cost more than the whole transformer at GPT-2's size.
 */
export function buildEmbeddingGraph(cfg: GPTConfig, weight: WeightFn): Graph {
  const g = new Graph('gpt2_embed');
  const p = placeParams(g, cfg, weight);
  const tokens = g.input('tokens', 'int64', ['B', 'T']);
  const positions = g.input('positions', 'int64', [1, 'T']);
  const mask = g.input('mask', 'float32', [1, 1, 'T', 'T']);
  const pool = g.input('pool', 'float32', ['B', 'T']);
  const h = transformer(cfg, p, tokens, positions, causalAttention(cfg, mask)); // [B, T, C]
  const pooled = op.matmul(op.unsqueeze(pool, [1]), h); // [B, 1, T] · [B, T, C] → [B, 1, C]
  g.output(op.reshape(pooled, [-1, cfg.nEmbd]), 'embeddings');
  return g;
}

/**
 * Rows to run together, as lists of indexes into `lengths`: longest first (little padding), each
 * run at most `maxTokens` rows × padded length, and at least one row whatever its length.
 */
export function planRuns(lengths: readonly number[], maxTokens: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const runs: number[][] = [];
  for (let start = 0; start < order.length; ) {
    const T = lengths[order[start]!]!;
    const B = Math.max(1, Math.min(order.length - start, Math.floor(maxTokens / Math.max(1, T))));
    runs.push(order.slice(start, start + B));
    start += B;
  }
  return runs;
}

export class Embedder {
  private readonly causal = new CausalInputs();

  private constructor(
    readonly config: GPTConfig,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(config: GPTConfig, weights: Map<string, WeightSource>, opts: RuntimeOptions = {}): Promise<Embedder> {
    if (config.labels) throw new Error('this model is a classifier: embeddings come from language models');
    return new Embedder(config, await createSession((weight) => buildEmbeddingGraph(config, weight), weights, opts));
  }

  /** Every row's embedding, in order, in runs of at most `maxTokens` padded tokens. */
  async embed(rows: readonly EmbedRow[], maxTokens = 512): Promise<Float32Array[]> {
    const out = new Array<Float32Array>(rows.length);
    for (const run of planRuns(rows.map((r) => r.tokens.length), maxTokens)) {
      const data = await this.run(run.map((i) => rows[i]!));
      run.forEach((i, b) => (out[i] = data.slice(b * this.config.nEmbd, (b + 1) * this.config.nEmbd)));
    }
    return out;
  }

  /** One ORT run over `rows` (the caller bounds their size): [rows × n_embd] floats. */
  async run(rows: readonly EmbedRow[]): Promise<Float32Array> {
    const { contextLength, vocabSize } = this.config;
    rows.forEach((r, i) => {
      if (r.tokens.length === 0) throw new RangeError(`row ${i}: no tokens to embed`);
      if (r.tokens.length > contextLength) throw new RangeError(`row ${i}: ${r.tokens.length} tokens exceed the context length ${contextLength}`);
      for (const t of r.tokens) if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) throw new RangeError(`row ${i}: token ${t} is not in [0, ${vocabSize})`);
    });
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.tokens.length));
    const tokens = new BigInt64Array(B * T).fill(BigInt(EOT));
    const pool = new Float32Array(B * T);
    rows.forEach((r, b) => {
      const n = r.tokens.length;
      r.tokens.forEach((t, i) => (tokens[b * T + i] = BigInt(t)));
      if (r.pooling === 'last') pool[b * T + n - 1] = 1;
      else pool.fill(1 / n, b * T, b * T + n);
    });
    const { positions, mask } = this.causal.get(T);
    const out = await this.session.run({
      tokens: new ort.Tensor('int64', tokens, [B, T]),
      positions,
      mask,
      pool: new ort.Tensor('float32', pool, [B, T]),
    });
    return out.embeddings!.data as Float32Array;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
