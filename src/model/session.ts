// A loaded model ready to run: the inference graph (gpt.ts's transformer with cachedAttention),
// its ORT session and its KV cache.
// One `forward` call serves prefill (many tokens per row), decode (one token per row) and any mix,
// for rows of different lengths, so a scheduler can batch whatever is ready.
import * as ort from 'onnxruntime-node';
import { Graph, type Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { quantizeGraph } from '../onnx/rewrite.js';
import { loadCheckpoint, materialize, type WeightSource } from './checkpoint.js';
import type { GPTConfig } from './config.js';
import { cachedAttention, HIDDEN, lmHead, placeParams, transformer, type WeightFn } from './gpt.js';
import { KVCache } from './kv-cache.js';
import { createSession, type Device, type RuntimeOptions } from './runtime.js';

export interface ForwardRow {
  slot: number; // KV-cache slot this sequence owns
  tokens: number[]; // new tokens
  start: number; // position of the first new token (= tokens already in the cache)
  logits: 'last' | 'all'; // which positions' logits to return
}

export interface SessionOptions extends RuntimeOptions {
  /** Sequences that can be in flight at once (KV-cache slots). */
  slots?: number;
  /** 'int8': decode steps run on blockwise int8 weights (¼ of the bytes to read per token). */
  quantize?: 'none' | 'int8';
  onProgress?: (done: number, total: number) => void;
  /** A PEFT LoRA adapter folder merged into the model's weights at load (instead of into the base it names). */
  lora?: string;
}

/**
 * The inference graph, used for both prefill and decode, for a batch of sequences of different
 * lengths. The KV cache lives in JS buffers laid out [slot, head, position, hd] (kv-cache.ts): the
 * batch's slots arrive as one zero-copy input per layer, already in the layout attention reads, and
 * the graph returns only the new tokens' K/V rows and the logits that were asked for.
 *
 * Inputs:  tokens, positions int64 [B, T]; mask float [B, 1, T, P+T] (additive: 0 = visible);
 *          logit_rows int64 [N] (rows of the flattened [B·T] batch whose logits to return);
 *          past_k.l, past_v.l float [B, H, P, hd] (P = cache capacity, or 0 for a fresh batch).
 * Outputs: logits [N, V]; present_k.l, present_v.l [B, T, C].
 */
export function buildInferenceGraph(cfg: GPTConfig, weight: WeightFn): Graph {
  const g = new Graph('gpt2_infer');
  const p = placeParams(g, cfg, weight);
  const tokens = g.input('tokens', 'int64', ['B', 'T']);
  const positions = g.input('positions', 'int64', ['B', 'T']);
  const mask = g.input('mask', 'float32', ['B', 1, 'T', 'PT']);
  const logitRows = g.input('logit_rows', 'int64', ['N']);
  const presents: Value[] = [];
  const h = transformer(cfg, p, tokens, positions, cachedAttention(cfg, mask, presents)); // [B, T, C]
  const rows = op.gather(op.reshape(h, [-1, cfg.nEmbd]), logitRows); // [N, C]: only the positions asked for
  g.output(lmHead(cfg, p, rows), 'logits');
  presents.forEach((x, i) => g.output(x, `present_${i % 2 ? 'v' : 'k'}.${i >> 1}`));
  return g;
}

export class ModelSession {
  readonly cache: KVCache;

  private constructor(
    readonly config: GPTConfig,
    private readonly session: ort.InferenceSession,
    /** Optional int8 session, used for steps where every row decodes one token. */
    private readonly decodeSession: ort.InferenceSession | undefined,
    slots: number,
    private readonly device: Device,
  ) {
    this.cache = new KVCache(config, slots);
  }

  static async create(config: GPTConfig, weights: Map<string, WeightSource>, opts: SessionOptions = {}): Promise<ModelSession> {
    if (config.labels) throw new Error(`this model is a classifier (labels ${config.labels.join(', ')}): it has no language-model head to generate with; open it with ClassifierSession`);
    const session = await createSession((weight) => buildInferenceGraph(config, weight), weights, opts);
    let decodeSession: ort.InferenceSession | undefined;
    if (opts.quantize === 'int8') {
      const read = (name: string) => materialize(new Map([[name, weights.get(name)!]])).get(name)!.data;
      decodeSession = await createSession((weight) => {
        const g = buildInferenceGraph(config, weight);
        quantizeGraph(g, read);
        return g;
      }, weights, opts);
    }
    return new ModelSession(config, session, decodeSession, opts.slots ?? 1, opts.device ?? 'cpu');
  }

  /** Loads a Hugging Face GPT-2 folder (config.json + model.safetensors) or a PEFT LoRA adapter folder on its base. */
  static async load(dir: string, opts: SessionOptions = {}): Promise<ModelSession> {
    const { config, weights } = loadCheckpoint(dir, { onProgress: opts.onProgress, lora: opts.lora });
    return ModelSession.create(config, weights, opts);
  }

  /**
   * Runs new tokens of each row through the model, appends their K/V to the cache, and returns
   * each row's logits: [1, V] for 'last', [tokens, V] for 'all', flattened.
   */
  async forward(rows: ForwardRow[]): Promise<Float32Array[]> {
    const { nLayer, vocabSize: V, contextLength } = this.config;
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.tokens.length));
    // A fresh batch reads no cache (zero-size past inputs), except on GPU providers, where
    // zero-size tensors crashed ORT's WebGPU provider.
    const fresh = this.device === 'cpu' && rows.every((r) => r.start === 0);
    for (const r of rows) {
      if (r.tokens.length === 0) throw new Error('forward: a row has no tokens');
      if (r.start + r.tokens.length > contextLength) throw new Error(`forward: position ${r.start + r.tokens.length} exceeds the context length ${contextLength}`);
      if (r.slot < 0 || r.slot >= this.cache.slots) throw new Error(`forward: slot ${r.slot} out of range`);
    }
    this.cache.reserve(Math.max(...rows.map((r) => r.start + r.tokens.length)));
    const P = fresh ? 0 : this.cache.capacity; // attention reads every cached position; the mask hides the unused

    const tokens = new BigInt64Array(B * T);
    const positions = new BigInt64Array(B * T);
    const mask = new Float32Array(B * T * (P + T)).fill(HIDDEN);
    const logitRows: number[] = [];
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) {
        const real = t < r.tokens.length;
        tokens[b * T + t] = BigInt(real ? r.tokens[t]! : 0);
        positions[b * T + t] = BigInt(real ? r.start + t : 0);
        const m = (b * T + t) * (P + T);
        if (real) {
          mask.fill(0, m, m + r.start); // this row's own cached past
          mask.fill(0, m + P, m + P + t + 1); // causal within the new tokens
        } else mask[m + P + t] = 0; // padding sees itself only, so softmax stays finite
      }
      if (r.logits === 'last') logitRows.push(b * T + r.tokens.length - 1);
      else for (let t = 0; t < r.tokens.length; t++) logitRows.push(b * T + t);
    });

    const i64 = (data: BigInt64Array, dims: number[]) => new ort.Tensor('int64', data, dims);
    const feeds: Record<string, ort.Tensor> = {
      tokens: i64(tokens, [B, T]),
      positions: i64(positions, [B, T]),
      mask: new ort.Tensor('float32', mask, [B, 1, T, P + T]),
      logit_rows: i64(BigInt64Array.from(logitRows.map(BigInt)), [logitRows.length]),
    };
    const { nHead: H, nEmbd: C } = this.config;
    const slots = rows.map((r) => r.slot);
    const neighbours = slots.every((s, i) => s === slots[0]! + i);
    for (let l = 0; l < nLayer; l++) {
      for (const kind of ['k', 'v'] as const) {
        // Neighbouring slots are one zero-copy view.
        const past = P === 0 ? new Float32Array(0) : neighbours ? this.cache.view(kind, l, slots[0]!, B) : this.cache.gather(kind, l, slots);
        feeds[`past_${kind}.${l}`] = new ort.Tensor('float32', past, [B, H, P === 0 ? 0 : this.cache.capacity, C / H]);
      }
    }
    const decoding = rows.every((r) => r.tokens.length === 1 && r.logits === 'last');
    const out = await (decoding && this.decodeSession ? this.decodeSession : this.session).run(feeds);

    for (let l = 0; l < nLayer; l++) {
      for (const kind of ['k', 'v'] as const) {
        const present = out[`present_${kind}.${l}`]!.data as Float32Array; // [B, T, C]
        rows.forEach((r, b) => this.cache.write(kind, l, r.slot, r.start, present, b * T, r.tokens.length));
      }
    }
    const logits = out.logits!.data as Float32Array; // [N, V]
    let row = 0;
    return rows.map((r) => {
      const n = r.logits === 'last' ? 1 : r.tokens.length;
      const slice = logits.subarray(row * V, (row + n) * V);
      row += n;
      return slice;
    });
  }

  async close(): Promise<void> {
    await this.decodeSession?.release();
    await this.session.release();
  }
}
