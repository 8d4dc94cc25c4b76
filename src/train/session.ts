// One ORT session per (B, T) shape running the training graph (loss and gradients) or the eval
// graph (loss only). Trainable parameters are fed as zero-copy views of the flat buffer, so the
// optimizer's in-place updates are what the next run reads; gradient outputs (copied by ORT, as
// every output is) land in the flat gradient buffer.
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { WeightSource } from '../model/checkpoint.js';
import type { GPTConfig } from '../model/config.js';
import { Rng } from '../model/rng.js';
import { createSession, type RuntimeOptions } from '../model/runtime.js';
import type { Batch } from './data.js';
import type { FlatLayout } from './flat.js';
import { buildTrainGraph, gradName, type DropoutSite } from './training-graph.js';
import type { LoraConfig } from './lora.js';

export interface TrainSessionOptions extends RuntimeOptions {
  batchSize: number;
  seqLen: number;
  /** true: loss and gradients (dropout on when config.dropout > 0); false: loss only. */
  train: boolean;
  /** ORT profiling (enableProfiling): the trace file's prefix. */
  profile?: string;
  /** 'classify': the classifier head's loss (batches carry lastRows and class-id targets); default 'lm'. */
  head?: 'lm' | 'classify';
  /** LoRA adapters (their tensors are in the layout, the adapted weights in `frozen`). */
  lora?: LoraConfig;
}

export class TrainSession {
  private feeds: Record<string, ort.Tensor> = {};
  private fedParams: Float32Array | undefined;
  private readonly masks: { site: DropoutSite; data: Uint8Array }[];

  private constructor(
    readonly config: GPTConfig,
    readonly layout: FlatLayout,
    readonly opts: TrainSessionOptions,
    private readonly session: ort.InferenceSession,
    dropoutSites: DropoutSite[],
  ) {
    this.masks = dropoutSites.map((site) => ({ site, data: new Uint8Array(site.shape.reduce((a, b) => a * b, 1)) }));
  }

  /**
   * `layout` names the trainable parameters (graph inputs); every other parameter must be in
   * `frozen` and becomes an initializer.
   */
  static async create(config: GPTConfig, layout: FlatLayout, frozen: Map<string, WeightSource>, opts: TrainSessionOptions): Promise<TrainSession> {
    const trainable = new Set(layout.segments.map((s) => s.name));
    let sites: DropoutSite[] = [];
    // Memory patterns plan one block per run for all intermediates; at GPT-2 124M that block kept
    // landing in fresh pages, which slowed the big elementwise ops (src/train/README.md).
    const extra: ort.InferenceSession.SessionOptions = { enableMemPattern: false };
    if (opts.profile) Object.assign(extra, { enableProfiling: true, profileFilePrefix: opts.profile });
    const session = await createSession(
      (weight) => {
        const built = buildTrainGraph(config, { batchSize: opts.batchSize, seqLen: opts.seqLen, trainable, weight, train: opts.train, head: opts.head, lora: opts.lora, device: opts.device });
        sites = built.dropoutSites;
        return built.graph;
      },
      frozen,
      opts,
      extra,
    );
    return new TrainSession(config, layout, opts, session, sites);
  }

  get dropoutSites(): DropoutSite[] {
    return this.masks.map((m) => m.site);
  }

  /**
   * Runs one micro-batch and returns its mean loss. With `grads`, writes (accumulate=false) or
   * adds (accumulate=true) the gradients into it, in the layout's places. `rng` draws the
   * dropout masks (required when the graph has dropout sites). `logits` (classification only)
   * receives the head's [B, num_labels] logits.
   */
  async run(
    params: Float32Array,
    batch: Batch,
    opts: { grads?: Float32Array; accumulate?: boolean; rng?: Rng; logits?: Float32Array; timings?: { run: number; gather: number } } = {},
  ): Promise<number> {
    const { batchSize: B, seqLen: T } = this.opts;
    const classify = this.opts.head === 'classify';
    const nTargets = classify ? B : B * T;
    if (batch.tokens.length !== B * T || batch.targets.length !== nTargets) throw new Error(`batch is not ${B}×${T}`);
    if (classify && batch.lastRows?.length !== B) throw new Error(`a classification batch needs lastRows for its ${B} rows`);
    if (opts.logits && !classify) throw new Error('logits are an output of classification graphs only');
    if (this.fedParams !== params) this.bindParams(params);
    const feeds = this.feeds;
    feeds.tokens = new ort.Tensor('int64', batch.tokens, [B, T]);
    feeds.targets = new ort.Tensor('int64', batch.targets, [nTargets]);
    if (classify) feeds.last_rows = new ort.Tensor('int64', batch.lastRows!, [B]);
    if (this.masks.length) {
      if (!opts.rng) throw new Error('this training graph has dropout: pass an rng for the masks');
      for (const m of this.masks) {
        dropoutMask(opts.rng, this.config.dropout, m.data);
        feeds[m.site.name] = new ort.Tensor('bool', m.data, m.site.shape);
      }
    }
    const fetches = opts.grads ? undefined : opts.logits ? ['loss', 'logits'] : ['loss'];
    let t = performance.now();
    const out = fetches ? await this.session.run(feeds, fetches) : await this.session.run(feeds);
    if (opts.timings) opts.timings.run += performance.now() - t;
    t = performance.now();
    if (opts.grads) {
      for (const seg of this.layout.segments) {
        const g = out[gradName(seg.name)]!.data as Float32Array;
        if (!opts.accumulate) opts.grads.set(g, seg.offset);
        else for (let i = 0, o = seg.offset; i < g.length; i++, o++) opts.grads[o]! += g[i]!;
      }
    }
    if (opts.timings) opts.timings.gather += performance.now() - t;
    if (opts.logits) opts.logits.set(out.logits!.data as Float32Array);
    return (out.loss!.data as Float32Array)[0]!;
  }

  private bindParams(params: Float32Array): void {
    if (params.length !== this.layout.size) throw new Error(`parameter buffer has ${params.length} floats, layout needs ${this.layout.size}`);
    this.feeds = {};
    for (const seg of this.layout.segments) this.feeds[seg.name] = new ort.Tensor('float32', this.layout.view(params, seg.name), seg.shape);
    this.fedParams = params;
  }

  /** Stops ORT profiling and returns the trace file (`<profile>_<timestamp>.json`). */
  endProfiling(): string {
    const prefix = this.opts.profile;
    if (!prefix) throw new Error('this session was not created with profiling on');
    this.session.endProfiling();
    const dir = path.dirname(prefix);
    const files = fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(prefix) + '_') && f.endsWith('.json'));
    const newest = files.map((f) => path.join(dir, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    if (!newest) throw new Error(`no ORT profile found at ${prefix}_*.json`);
    return newest;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Keep-masks for inverted dropout: each element kept with probability 1 - p, resolved to
 * 1/65536 (two masks per 32-bit draw, which keeps mask generation cheap).
 */
export function dropoutMask(rng: Rng, p: number, out: Uint8Array): void {
  const threshold = Math.round(p * 65536);
  const n = out.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const r = rng.nextU32();
    out[i] = (r & 0xffff) >= threshold ? 1 : 0;
    out[i + 1] = r >>> 16 >= threshold ? 1 : 0;
  }
  if (i < n) out[i] = (rng.nextU32() & 0xffff) >= threshold ? 1 : 0;
}
