// The HTTP thread's handle on one model: starts its worker thread, admits requests against a
// bounded queue, routes the worker's events to the job each sequence belongs to, and keeps the
// model's metrics. It never touches ORT.
import { Worker } from 'node:worker_threads';
import type { ChatTemplate } from '../model/chat-template.js';
import type { GPTConfig } from '../model/config.js';
import type { GenerationDefaults } from '../model/generation-config.js';
import type { Device } from '../model/runtime.js';
import type { Metrics } from './metrics.js';
import type { ModelFolder } from '../model/model-folder.js';
import { isFinal, type FromWorker, type SeqEvent, type SeqSpec, type ToWorker } from './protocol.js';
import { CLOSE_GRACE_MS, stopWorker } from '../threads/stop.js';
import type { WorkerConfig } from './worker.js';

export interface ModelOptions {
  /** KV-cache slots: the largest running batch. */
  slots: number;
  /** Sequences that may wait for a slot; beyond that, requests are refused (429). */
  queue: number;
  device?: Device;
  threads?: number;
  /** 'int8': decode steps run on blockwise int8 weights (faster, not fp32-exact; see quantize.ts). */
  quantize?: 'none' | 'int8';
  prefillTokens?: number;
  mixedPrefill?: boolean;
  /** A Jinja file used instead of every served model's own chat template (serve --chat-template). */
  chatTemplateFile?: string;
}

export class OverloadedError extends Error {}

let nextId = 1;

/**
 * The sequences of one request (n choices × prompts). Iterate it for their events, in order;
 * iteration ends when every sequence has had its final event.
 */
export class Job implements AsyncIterable<SeqEvent> {
  readonly ids: number[];
  /** Set when the server ended the job (shutdown) rather than the client or the model. */
  endedBy: 'shutdown' | undefined;
  private readonly open: Set<number>;
  private readonly queue: SeqEvent[] = [];
  private notify: (() => void) | undefined;

  constructor(
    private readonly owner: ModelWorker,
    count: number,
  ) {
    this.ids = Array.from({ length: count }, () => nextId++);
    this.open = new Set(this.ids);
  }

  /** Index of a sequence in this job (the order its specs were given in). */
  index(id: number): number {
    return id - this.ids[0]!;
  }

  get done(): boolean {
    return this.open.size === 0;
  }

  push(e: SeqEvent): void {
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
  job: Job;
  submitted: number;
  last: number | undefined;
}

export class ModelWorker {
  readonly kind = 'generator' as const;
  readonly config: GPTConfig;
  readonly chat: ChatTemplate | undefined;
  readonly generation: GenerationDefaults;
  readonly created: number;
  state: 'loading' | 'ready' | 'failed' = 'loading';
  failure: string | undefined;
  /** Resolves when the model is loaded; rejects when loading failed. */
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly seqs = new Map<number, Tracked>();
  private readonly jobs = new Set<Job>();
  private closing = false;

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
    const workerData: WorkerConfig = {
      entry: new URL('./worker.ts', import.meta.url).href,
      dir,
      lora,
      slots: opts.slots,
      device: opts.device,
      threads: opts.threads,
      quantize: opts.quantize,
      prefillTokens: opts.prefillTokens,
      mixed: opts.mixedPrefill,
    };
    this.worker = new Worker(new URL('../threads/boot.js', import.meta.url), { workerData, name: `model ${id}` });
    this.metrics.slots.set({ model: id }, opts.slots);
    this.metrics.running.set({ model: id }, 0);
    this.metrics.queueDepth.set({ model: id }, 0);
    this.ready = new Promise((resolve, reject) => {
      const fail = (message: string) => {
        this.state = 'failed';
        this.failure = message;
        for (const job of this.jobs) this.endAll(job, 'error', `model ${id} stopped: ${message}`);
        reject(new Error(`model ${id} (${dir}): ${message}`));
      };
      this.worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          this.state = 'ready';
          resolve();
        } else if (msg.type === 'failed') fail(msg.message);
        else this.onStep(msg);
      });
      this.worker.on('error', (e) => fail(e.message));
      this.worker.on('exit', (code) => {
        if (!this.closing && this.state !== 'failed') fail(`worker exited with code ${code}`);
      });
    });
    this.ready.catch(() => {}); // observed by whoever awaits it; a failed model must not crash the process
  }

  /** Sequences admitted and not yet finished (running or waiting). */
  get outstanding(): number {
    return this.seqs.size;
  }

  get capacity(): number {
    return this.opts.slots + this.opts.queue;
  }

  /** Admits a request's sequences, all or none; throws OverloadedError when the queue is full. */
  submit(specs: Omit<SeqSpec, 'id'>[]): Job {
    if (this.state !== 'ready') throw new Error(`model ${this.id} is ${this.state}`);
    if (this.outstanding + specs.length > this.capacity) throw new OverloadedError(`model ${this.id} is at capacity`);
    const job = new Job(this, specs.length);
    const now = performance.now();
    const seqs = specs.map((s, i) => ({ ...s, id: job.ids[i]! }));
    for (const s of seqs) {
      this.seqs.set(s.id, { job, submitted: now, last: undefined });
      this.metrics.promptTokens.inc({ model: this.id }, s.prompt.length);
    }
    this.jobs.add(job);
    this.send({ type: 'submit', seqs });
    return job;
  }

  cancel(ids: number[]): void {
    this.send({ type: 'cancel', ids });
  }

  /** Server shutdown: ends every job now (their streams close cleanly) and stops the thread. */
  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.jobs) {
      job.endedBy = 'shutdown';
      this.endAll(job, 'cancelled');
    }
    await stopWorker(this.worker, { type: 'close' } satisfies ToWorker, CLOSE_GRACE_MS, () => console.error(`model ${this.id}: waiting for its thread to finish loading or running`));
  }

  get activeJobs(): number {
    return this.jobs.size;
  }

  /** Finishes a job's open sequences on this side (worker gone or server stopping). */
  private endAll(job: Job, reason: 'cancelled' | 'error', message?: string): void {
    for (const id of job.ids) if (this.seqs.has(id)) this.deliver({ type: 'end', id, reason, ...(message ? { message } : {}) });
  }

  private onStep({ events, running, waiting, batch }: FromWorker & { type: 'step' }): void {
    const labels = { model: this.id };
    this.metrics.running.set(labels, running);
    this.metrics.queueDepth.set(labels, waiting);
    if (batch) this.metrics.batchSize.observe(labels, batch);
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

  private deliver(e: SeqEvent): void {
    const t = this.seqs.get(e.id);
    if (!t) return;
    if (isFinal(e)) {
      this.seqs.delete(e.id);
      const reason = e.type === 'end' ? e.reason : e.finish!;
      this.metrics.finished.inc({ model: this.id, reason });
    }
    t.job.push(e);
    if (t.job.done) this.jobs.delete(t.job);
  }

  private send(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }
}
