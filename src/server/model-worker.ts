// The HTTP thread's handle on one model: starts its thread (model-thread.ts, through
// threads/serving-worker.ts), admits requests against a bounded queue, routes the thread's events
// to the sequence group each sequence belongs to, and keeps the model's metrics. It never touches ORT.
import type { ChatTemplate } from '../model/chat-template.js';
import type { EmbedRow } from '../model/embedding.js';
import type { GPTConfig } from '../model/config.js';
import type { GenerationDefaults } from '../model/generation-config.js';
import type { Device } from '../model/runtime.js';
import type { Metrics } from './metrics.js';
import type { ModelFolder } from '../model/model-folder.js';
import type { PrefixCacheStats } from '../model/prefix-cache.js';
import { isFinal, type FromModelThread, type SeqEvent, type SeqSpec, type ToModelThread } from './protocol.js';
import { ServingWorker } from '../threads/serving-worker.js';
import type { ModelThreadConfig } from './model-thread.js';
import { EmbedRequests } from './embed-requests.js';
import type { Quantize } from '../model/session.js';

export interface ModelOptions {
  /** KV-cache slots: the largest running batch. */
  slots: number;
  /** Sequences that may wait for a slot; beyond that, requests are refused (429). */
  queue: number;
  device?: Device;
  threads?: number;
  /** 'int8' / 'int4': decode steps run on blockwise int8 / int4 weights (faster, not fp32-exact; see src/onnx/rewrite.ts). */
  quantize?: Quantize;
  /** 'int8' / 'int4': a sequence decoding alone drafts on such weights, checked by fp32 (src/model/speculative.ts). */
  draft?: Quantize;
  draftTokens?: number;
  prefillTokens?: number;
  /** Prompt tokens per prefill call (SchedulerOptions.prefillCallTokens). */
  prefillCallTokens?: number;
  mixedPrefill?: boolean;
  /** Prefix-cache budget per model in MiB (0: off; default DEFAULT_PREFIX_CACHE_MB). */
  prefixCacheMb?: number;
  /** A Jinja file used instead of every served model's own chat template (serve --chat-template). */
  chatTemplateFile?: string;
}

export class OverloadedError extends Error {}

let nextId = 1;

/**
 * The sequences of one request (n choices × prompts). Iterate it for their events, in order;
 * iteration ends when every sequence has had its final event.
 */
export class SequenceGroup implements AsyncIterable<SeqEvent> {
  readonly ids: number[];
  /** Set when the server ended the group (shutdown) rather than the client or the model. */
  endedBy: 'shutdown' | undefined;
  /** Per sequence: prompt tokens taken from the prefix cache (usage.prompt_tokens_details.cached_tokens). */
  readonly cached: number[];
  private readonly open: Set<number>;
  private readonly queue: SeqEvent[] = [];
  private notify: (() => void) | undefined;

  constructor(
    private readonly owner: ModelWorker,
    count: number,
  ) {
    this.ids = Array.from({ length: count }, () => nextId++);
    this.open = new Set(this.ids);
    this.cached = this.ids.map(() => 0);
  }

  /** Index of a sequence in this group (the order its specs were given in). */
  index(id: number): number {
    return id - this.ids[0]!;
  }

  get done(): boolean {
    return this.open.size === 0;
  }

  push(e: SeqEvent): void {
    if (e.type === 'token' && e.cached) this.cached[this.index(e.id)] = e.cached;
    this.queue.push(e);
    if (isFinal(e)) this.open.delete(e.id);
    this.notify?.();
  }

  /** Stops every unfinished sequence; each still gets its final ('cancelled') event. */
  cancel(): void {
    if (!this.done) this.owner.cancel([...this.open]);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SeqEvent> {
    for (;;) {
      while (this.queue.length) yield this.queue.shift()!;
      if (this.done) return;
      await new Promise<void>((resolve) => (this.notify = resolve));
      this.notify = undefined;
    }
  }
}

interface Tracked {
  group: SequenceGroup;
  submitted: number;
  last: number | undefined;
}

export class ModelWorker {
  readonly kind = 'generator' as const;
  readonly config: GPTConfig;
  readonly chat: ChatTemplate | undefined;
  readonly generation: GenerationDefaults;
  readonly created: number;
  /** Resolves when the model is loaded; rejects when loading failed. */
  readonly ready: Promise<void>;
  private readonly thread: ServingWorker<ToModelThread, FromModelThread>;
  private readonly seqs = new Map<number, Tracked>();
  private readonly groups = new Set<SequenceGroup>();
  private readonly embeds = new EmbedRequests();
  /** The prefix cache's totals as last posted (its counters take the differences). */
  private prefix: PrefixCacheStats = { queriedTokens: 0, hitTokens: 0, blocks: 0, evictions: 0 };

  constructor(
    readonly id: string,
    readonly dir: string,
    /** What the folder says (read by the registry): /v1/models and request checks work while the worker loads. */
    folder: ModelFolder,
    readonly opts: ModelOptions,
    private readonly metrics: Metrics,
    /** A PEFT LoRA adapter folder applied to `dir` (serve --lora). */
    readonly lora?: string,
  ) {
    ({ config: this.config, chat: this.chat, generation: this.generation, created: this.created } = folder);
    const workerData: ModelThreadConfig = {
      entry: new URL('./model-thread.ts', import.meta.url).href,
      dir,
      lora,
      slots: opts.slots,
      device: opts.device,
      threads: opts.threads,
      quantize: opts.quantize,
      draft: opts.draft,
      draftTokens: opts.draftTokens,
      prefillTokens: opts.prefillTokens,
      prefillCallTokens: opts.prefillCallTokens,
      mixed: opts.mixedPrefill,
      prefixCacheMb: opts.prefixCacheMb,
    };
    this.thread = new ServingWorker(workerData, {
      name: `model ${id}`,
      describe: `model ${id} (${dir})`,
      onMessage: (msg) => (msg.type === 'step' ? this.onStep(msg) : this.embeds.settle(msg)),
      onFail: (message) => {
        this.embeds.failAll(`The model '${id}' stopped: ${message}`, 'model_unavailable');
        for (const group of this.groups) this.endAll(group, 'error', `model ${id} stopped: ${message}`);
      },
    });
    this.ready = this.thread.ready;
    this.metrics.slots.set({ model: id }, opts.slots);
    this.metrics.running.set({ model: id }, 0);
    this.metrics.queueDepth.set({ model: id }, 0);
  }

  get state(): 'loading' | 'ready' | 'failed' {
    return this.thread.state;
  }

  get failure(): string | undefined {
    return this.thread.failure;
  }

  /** Sequences admitted and not yet finished (running or waiting). */
  get outstanding(): number {
    return this.seqs.size;
  }

  get capacity(): number {
    return this.opts.slots + this.opts.queue;
  }

  /** Admits a request's sequences, all or none; throws OverloadedError when the queue is full. */
  submit(specs: Omit<SeqSpec, 'id'>[]): SequenceGroup {
    if (this.state !== 'ready') throw new Error(`model ${this.id} is ${this.state}`);
    if (this.outstanding + specs.length > this.capacity) throw new OverloadedError(`model ${this.id} is at capacity`);
    const group = new SequenceGroup(this, specs.length);
    const now = performance.now();
    const seqs = specs.map((s, i) => ({ ...s, id: group.ids[i]! }));
    for (const s of seqs) {
      this.seqs.set(s.id, { group, submitted: now, last: undefined });
      this.metrics.promptTokens.inc({ model: this.id }, s.prompt.length);
    }
    this.groups.add(group);
    this.send({ type: 'submit', seqs });
    return group;
  }

  cancel(ids: number[]): void {
    this.send({ type: 'cancel', ids });
  }

  /**
   * Embeds rows on the model's thread, between its generation steps: [rows × n_embd] floats. At most
   * `queue` requests wait (at least one); beyond that, OverloadedError (→ 429).
   */
  embed(rows: EmbedRow[]): Promise<Float32Array> {
    if (this.state !== 'ready') return Promise.reject(new Error(`model ${this.id} is ${this.state}`));
    if (this.embeds.size >= Math.max(1, this.opts.queue)) return Promise.reject(new OverloadedError(`model ${this.id} is at capacity`));
    return this.embeds.add((id) => this.send({ type: 'embed', id, rows }));
  }

  /** Server shutdown: ends every request now (their streams close cleanly) and stops the thread. */
  async close(): Promise<void> {
    for (const group of this.groups) {
      group.endedBy = 'shutdown';
      this.endAll(group, 'cancelled');
    }
    this.embeds.failAll('The server shut down before this request finished.', 'server_shutting_down');
    await this.thread.close({ type: 'close' }, () => console.error(`model ${this.id}: waiting for its thread to finish loading or running`));
  }

  get activeRequests(): number {
    return this.groups.size + this.embeds.size;
  }

  /** Finishes a group's open sequences on this side (worker gone or server stopping). */
  private endAll(group: SequenceGroup, reason: 'cancelled' | 'error', message?: string): void {
    for (const id of group.ids) if (this.seqs.has(id)) this.deliver({ type: 'end', id, reason, ...(message ? { message } : {}) });
  }

  private onStep({ events, running, waiting, batch, prefix, draft }: FromModelThread & { type: 'step' }): void {
    const labels = { model: this.id };
    this.metrics.running.set(labels, running);
    this.metrics.queueDepth.set(labels, waiting);
    if (batch) this.metrics.batchSize.observe(labels, batch);
    if (draft) {
      this.metrics.draftTokens.inc(labels, draft.proposed);
      this.metrics.draftAccepted.inc(labels, draft.accepted);
    }
    if (prefix) this.prefixMetrics(prefix);
    const now = performance.now();
    for (const e of events) {
      const t = this.seqs.get(e.id);
      if (!t) continue; // already ended here (shutdown)
      if (e.type === 'token') {
        this.metrics.generationTokens.inc(labels);
        if (t.last === undefined) this.metrics.ttft.observe(labels, (now - t.submitted) / 1000);
        else this.metrics.itl.observe(labels, (now - t.last) / 1000);
        t.last = now;
      }
      this.deliver(e);
    }
  }

  private prefixMetrics(now: PrefixCacheStats): void {
    const [labels, m, was] = [{ model: this.id }, this.metrics, this.prefix];
    m.prefixQueries.inc(labels, now.queriedTokens - was.queriedTokens);
    m.prefixHits.inc(labels, now.hitTokens - was.hitTokens);
    m.prefixEvictions.inc(labels, now.evictions - was.evictions);
    m.prefixBlocks.set(labels, now.blocks);
    if (now.queriedTokens) m.prefixHitRate.set(labels, now.hitTokens / now.queriedTokens);
    this.prefix = now;
  }

  private deliver(e: SeqEvent): void {
    const t = this.seqs.get(e.id);
    if (!t) return;
    if (isFinal(e)) {
      this.seqs.delete(e.id);
      const reason = e.type === 'end' ? e.reason : e.finish!;
      this.metrics.finished.inc({ model: this.id, reason });
    }
    t.group.push(e);
    if (t.group.done) this.groups.delete(t.group);
  }

  private send(msg: ToModelThread): void {
    this.thread.post(msg);
  }
}
