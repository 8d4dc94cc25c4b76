// A loaded model ready to run: the inference graph (gpt.ts's transformer with cachedAttention),
// its ORT session and its KV cache.
// One `forward` call serves prefill (many tokens per row), decode (one token per row) and any mix,
// for rows of different lengths, so a scheduler can batch whatever is ready.
import * as ort from 'onnxruntime-node';
import { Graph, type Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { fuseSkipLayerNorm, quantizeGraph, weightBits } from '../onnx/rewrite.js';
import { loadCheckpoint, materialize, type WeightSource } from './checkpoint.js';
import type { GPTConfig } from './config.js';
import { DeviceKVCache } from './device-cache.js';
import { cachedAttention, HIDDEN, lmHead, placeParams, transformer, type DeviceCache, type WeightFn } from './gpt.js';
import { KVCache } from './kv-cache.js';
import { createSession, SPIN_WITHIN_RUNS, type Device, type RuntimeOptions } from './runtime.js';

export interface ForwardRow {
  slot: number; // KV-cache slot this sequence owns
  tokens: number[]; // new tokens
  start: number; // position of the first new token (= tokens already in the cache)
  logits: 'last' | 'all'; // which positions' logits to return
}

/** Weights for decode steps: fp32 as stored, or blockwise int8 / int4 (¼ / ⅛ of the bytes to read per token). */
export const QUANTIZE = ['none', 'int8', 'int4'] as const;
export type Quantize = (typeof QUANTIZE)[number];

/** Tokens a draft proposes per speculative round: GPT-2 124M's int8 draft agrees with fp32 on ~97 % of greedy tokens, and 4–7 gave the same speed-up. */
export const DEFAULT_DRAFT_TOKENS = 4;

export interface SessionOptions extends RuntimeOptions {
  /** Sequences that can be in flight at once (KV-cache slots). */
  slots?: number;
  /** 'int8' / 'int4': decode steps run on blockwise int8 / int4 weights; prefill stays fp32. */
  quantize?: Quantize;
  /**
   * 'int8' / 'int4': speculative decoding (speculative.ts) drafts on blockwise int8 / int4 weights,
   * forward(rows, { draft: true }); every token is still chosen from fp32 logits. Not with `quantize`.
   */
  draft?: Quantize;
  /** Tokens a draft proposes per round (default DEFAULT_DRAFT_TOKENS). */
  draftTokens?: number;
  onProgress?: (done: number, total: number) => void;
  /** A PEFT LoRA adapter folder merged into the model's weights at load (instead of into the base it names). */
  lora?: string;
  /**
   * Where the KV cache lives between runs: 'device' (WebGPU's default; device-cache.ts) or 'host'
   * (JS buffers fed to every run: CPU's, and CUDA's, whose binding returns every output to the host).
   */
  kvCache?: 'host' | 'device';
}

/** Bytes of one forward call's host-side inputs and outputs: what crosses the bus on a GPU. */
export interface Transfer {
  toDevice: number;
  fromDevice: number;
}

/**
 * The inference graph, used for both prefill and decode, for a batch of sequences of different
 * lengths, with the KV cache on the host or on the device (cachedAttention). `decodeOnly`: T is 1
 * (the quantized decode session's graph).
 *
 * Inputs:  tokens, positions int64 [B, T]; mask float [B, 1, T, P+T] (additive: 0 = visible);
 *          logit_rows int64 [N] (rows of the flattened [B·T] batch whose logits to return);
 *          host: past_k.l, past_v.l float [B, H, P, hd] (P = cache capacity, or 0 for a fresh batch);
 *          device: cache_k.l, cache_v.l [S, H, P', hd], slots [B], read_len [1] (= P), write_at [B, H, T, 3].
 * Outputs: logits [N, V]; host: present_k.l, present_v.l [B, H, T, hd]; device: next_k.l, next_v.l [S, H, P', hd].
 */
export function buildInferenceGraph(cfg: GPTConfig, weight: WeightFn, kvCache: 'host' | 'device' = 'host', decodeOnly = false): Graph {
  const g = new Graph('gpt2_infer');
  const p = placeParams(g, cfg, weight);
  const T = decodeOnly ? 1 : 'T'; // one new token per row: ORT then moves heads with reshapes, not transposes
  const tokens = g.input('tokens', 'int64', ['B', T]);
  const positions = g.input('positions', 'int64', ['B', T]);
  const mask = g.input('mask', 'float32', ['B', 1, T, 'PT']);
  const logitRows = g.input('logit_rows', 'int64', ['N']);
  const device: DeviceCache | undefined =
    kvCache === 'device'
      ? { slots: g.input('slots', 'int64', ['B']), readLen: g.input('read_len', 'int64', [1]), writeAt: g.input('write_at', 'int64', ['B', cfg.nHead, T, 3]) }
      : undefined;
  const presents: Value[] = [];
  const h = transformer(cfg, p, tokens, positions, cachedAttention(cfg, mask, presents, device)); // [B, T, C]
  const rows = op.gather(op.reshape(h, [-1, cfg.nEmbd]), logitRows); // [N, C]: only the positions asked for
  g.output(lmHead(cfg, p, rows), 'logits');
  const prefix = device ? 'next_' : 'present_';
  presents.forEach((x, i) => g.output(x, `${prefix}${i % 2 ? 'v' : 'k'}.${i >> 1}`));
  fuseSkipLayerNorm(g);
  return g;
}

export class ModelSession {
  /** Bytes fed from and returned to the host by the latest forward call. */
  lastTransfer: Transfer = { toDevice: 0, fromDevice: 0 };

  private constructor(
    readonly config: GPTConfig,
    private readonly session: ort.InferenceSession,
    /** With `quantize`: an int8 / int4 session on a decode-only graph, for steps where every row decodes one token. */
    private readonly decodeSession: ort.InferenceSession | undefined,
    /** With `draft`: the same kind of session, for draft calls only. */
    private readonly draftSession: ort.InferenceSession | undefined,
    readonly cache: KVCache | DeviceKVCache,
    private readonly device: Device,
    /** Tokens a draft proposes per speculative round, at most; 0: this model has no draft. */
    readonly draftTokens: number,
    /** A draft call's cost over an fp32 call's, for DraftPolicy: batch-1 calls read their weights once, so the bytes of weights each reads. */
    readonly draftCost: number,
  ) {}

  static async create(config: GPTConfig, weights: Map<string, WeightSource>, opts: SessionOptions = {}): Promise<ModelSession> {
    if (config.labels) throw new Error(`this model is a classifier (labels ${config.labels.join(', ')}): it has no language-model head to generate with; open it with ClassifierSession`);
    const [quantize, draft] = [opts.quantize ?? 'none', opts.draft ?? 'none'];
    if (quantize !== 'none' && draft !== 'none') throw new Error('quantize and draft exclude each other: quantized decode steps are not fp32-exact, drafts are checked by fp32 ones');
    const draftTokens = draft === 'none' ? 0 : (opts.draftTokens ?? DEFAULT_DRAFT_TOKENS);
    if (!Number.isInteger(draftTokens) || draftTokens < 0) throw new Error(`draftTokens must be a whole number ≥ 0, not ${draftTokens}`);
    const device = opts.device ?? 'cpu';
    const kvCache = opts.kvCache ?? (device === 'webgpu' ? 'device' : 'host');
    if (kvCache === 'device' && device !== 'webgpu') throw new Error(`a device-resident KV cache needs the webgpu device (the ${device} provider returns every output to the host)`);
    // The next cache stays where the run left it; only the logits come back.
    const extra: ort.InferenceSession.SessionOptions = { ...SPIN_WITHIN_RUNS, ...(kvCache === 'device' ? { preferredOutputLocation: outputLocations(config) } : {}) };
    const build = (weight: WeightFn, decodeOnly = false) => buildInferenceGraph(config, weight, kvCache, decodeOnly);
    const session = await createSession(build, weights, opts, extra);
    let quantized: ort.InferenceSession | undefined;
    if (quantize !== 'none' || draft !== 'none') {
      const bits = (quantize === 'none' ? draft : quantize) === 'int4' ? 4 : 8;
      const read = (name: string) => materialize(new Map([[name, weights.get(name)!]])).get(name)!.data;
      quantized = await createSession((weight) => {
        const g = build(weight, true);
        quantizeGraph(g, read, bits);
        return g;
      }, weights, opts, extra);
    }
    const slots = opts.slots ?? 1;
    const cache = kvCache === 'device' ? new DeviceKVCache(config, slots) : new KVCache(config, slots);
    const draftCost = draft === 'none' ? 0 : weightBits(draft === 'int4' ? 4 : 8) / 32;
    return new ModelSession(config, session, quantize === 'none' ? undefined : quantized, draft === 'none' ? undefined : quantized, cache, device, draftTokens, draftCost);
  }

  /** Loads a Hugging Face GPT-2 folder (config.json + model.safetensors) or a PEFT LoRA adapter folder on its base. */
  static async load(dir: string, opts: SessionOptions = {}): Promise<ModelSession> {
    const { config, weights } = loadCheckpoint(dir, { onProgress: opts.onProgress, lora: opts.lora });
    return ModelSession.create(config, weights, opts);
  }

  /**
   * Runs new tokens of each row through the model, appends their K/V to the cache, and returns
   * each row's logits: [1, V] for 'last', [tokens, V] for 'all', flattened. `draft`: on the draft
   * weights (one token per row, 'last'), whose K/V the fp32 call that checks the drafts overwrites.
   */
  async forward(rows: ForwardRow[], opts: { draft?: boolean } = {}): Promise<Float32Array[]> {
    const { vocabSize: V, contextLength } = this.config;
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.tokens.length));
    for (const r of rows) {
      if (r.tokens.length === 0) throw new Error('forward: a row has no tokens');
      if (r.start + r.tokens.length > contextLength) throw new Error(`forward: position ${r.start + r.tokens.length} exceeds the context length ${contextLength}`);
      if (r.slot < 0 || r.slot >= this.cache.slots) throw new Error(`forward: slot ${r.slot} out of range`);
    }
    const P = this.pastLength(rows);

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

    const feeds: Record<string, ort.Tensor> = {
      tokens: i64(tokens, [B, T]),
      positions: i64(positions, [B, T]),
      mask: new ort.Tensor('float32', mask, [B, 1, T, P + T]),
      logit_rows: i64(BigInt64Array.from(logitRows.map(BigInt)), [logitRows.length]),
      ...(this.cache instanceof DeviceKVCache ? deviceCacheFeeds(this.cache, rows, T, P) : hostCacheFeeds(this.cache, this.config, rows, P)),
    };
    const decoding = rows.every((r) => r.tokens.length === 1 && r.logits === 'last');
    if (opts.draft && !(decoding && this.draftSession)) throw new Error(opts.draft && this.draftSession ? 'forward: a draft call decodes one token per row' : 'forward: this model has no draft (SessionOptions.draft)');
    const out = await (opts.draft ? this.draftSession! : decoding && this.decodeSession ? this.decodeSession : this.session).run(feeds);
    this.lastTransfer = { toDevice: hostBytes(Object.values(feeds)), fromDevice: hostBytes(Object.values(out)) };

    if (this.cache instanceof DeviceKVCache) this.cache.update(out);
    else storePresents(this.cache, this.config, rows, T, out);
    const logits = out.logits!.data as Float32Array; // [N, V]
    let row = 0;
    return rows.map((r) => {
      const n = r.logits === 'last' ? 1 : r.tokens.length;
      const slice = logits.subarray(row * V, (row + n) * V);
      row += n;
      return slice;
    });
  }

  /** Cached positions attention reads this call (the mask hides those a row has not filled). */
  private pastLength(rows: ForwardRow[]): number {
    const used = Math.max(...rows.map((r) => r.start));
    if (this.cache instanceof DeviceKVCache) return Math.min(this.config.contextLength, roundedUp(used));
    this.cache.reserve(Math.max(...rows.map((r) => r.start + r.tokens.length)));
    if (this.device === 'cpu') {
      // A fresh batch reads no cache (zero-size past inputs); otherwise every allocated position,
      // a zero-copy view, the mask hiding the unused.
      return rows.every((r) => r.start === 0) ? 0 : this.cache.capacity;
    }
    // Across a bus only the used positions travel (copied on the host, cheaper than the bus),
    // rounded up so decode runs keep their shapes a while, never zero (zero-size tensors crashed ORT's WebGPU provider).
    return Math.min(this.cache.capacity, roundedUp(used));
  }

  async close(): Promise<void> {
    if (this.cache instanceof DeviceKVCache) this.cache.dispose();
    await (this.decodeSession ?? this.draftSession)?.release();
    await this.session.release();
  }
}

const i64 = (data: BigInt64Array, dims: number[]) => new ort.Tensor('int64', data, dims);

/** Cached positions to read for a batch whose longest past is `used`: a multiple of 64, at least 64, so decode calls share shapes. */
const roundedUp = (used: number) => Math.ceil(Math.max(1, used) / 64) * 64;

/** The batch's slots of the host cache, one tensor per layer and kind: a zero-copy view where the slots are neighbours. */
function hostCacheFeeds(cache: KVCache, cfg: GPTConfig, rows: ForwardRow[], P: number): Record<string, ort.Tensor> {
  const { nLayer, nHead: H, nEmbd: C } = cfg;
  const B = rows.length;
  const slots = rows.map((r) => r.slot);
  const neighbours = slots.every((s, i) => s === slots[0]! + i);
  const feeds: Record<string, ort.Tensor> = {};
  for (let l = 0; l < nLayer; l++) {
    for (const kind of ['k', 'v'] as const) {
      const whole = P === cache.capacity;
      const past = P === 0 ? new Float32Array(0) : neighbours && whole ? cache.view(kind, l, slots[0]!, B) : cache.gather(kind, l, slots, P);
      feeds[`past_${kind}.${l}`] = new ort.Tensor('float32', past, [B, H, P, C / H]);
    }
  }
  return feeds;
}

/** The new tokens' K/V rows into the host cache. */
function storePresents(cache: KVCache, cfg: GPTConfig, rows: ForwardRow[], T: number, out: ort.InferenceSession.OnnxValueMapType): void {
  for (let l = 0; l < cfg.nLayer; l++) {
    for (const kind of ['k', 'v'] as const) {
      const present = out[`present_${kind}.${l}`]!.data as Float32Array; // [B, H, T, hd]
      rows.forEach((r, b) => cache.write(kind, l, r.slot, r.start, present, b, T, r.tokens.length));
    }
  }
}

/** The device cache, which rows to read (`read_len` positions of their physical slots) and where each new token's K/V goes (padding: the scratch position). */
function deviceCacheFeeds(cache: DeviceKVCache, rows: ForwardRow[], T: number, P: number): Record<string, ort.Tensor> {
  const H = cache.cfg.nHead;
  const B = rows.length;
  const writeAt = new BigInt64Array(B * H * T * 3);
  rows.forEach((r, b) => {
    const slot = BigInt(cache.slot(r.slot));
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const at = ((b * H + h) * T + t) * 3;
        writeAt[at] = slot;
        writeAt[at + 1] = BigInt(h);
        writeAt[at + 2] = BigInt(t < r.tokens.length ? r.start + t : cache.scratch);
      }
    }
  });
  return {
    ...cache.feeds(),
    slots: i64(BigInt64Array.from(rows, (r) => BigInt(cache.slot(r.slot))), [B]),
    read_len: i64(BigInt64Array.of(BigInt(P)), [1]),
    write_at: i64(writeAt, [B, H, T, 3]),
  };
}

/** Every next_k.l / next_v.l output stays on the device; the logits come to the host. */
function outputLocations(cfg: GPTConfig): Record<string, ort.Tensor.DataLocation> {
  const loc: Record<string, ort.Tensor.DataLocation> = { logits: 'cpu' };
  for (let l = 0; l < cfg.nLayer; l++) for (const kind of ['k', 'v']) loc[`next_${kind}.${l}`] = 'gpu-buffer';
  return loc;
}

/** Bytes of the tensors that sit in host memory (GPU-buffer tensors stay where they are). */
function hostBytes(tensors: readonly ort.OnnxValue[]): number {
  let n = 0;
  for (const t of tensors) if (t instanceof ort.Tensor && t.location === 'cpu') n += t.size * (t.type === 'int64' ? 8 : 4);
  return n;
}
