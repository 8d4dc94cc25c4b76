// The models this server serves, by id, each behind its own worker thread: language models
// (ModelWorker: completions, chat) and classifiers (ClassifierWorker: /v1/classifications).
// Base models come from --model (id = the folder's name, or the Hub id as given) and are fixed
// for the server's life; finetuned models ('ft:…') are added and removed while it runs. A job's
// checkpoints are models too, served on demand: the first request for one queues it to start
// (that request gets a 503 with Retry-After), at most MAX_ON_DEMAND run or load at once, and a
// start waits until one of them is idle and can be stopped — threads inside ONNX Runtime are
// never cut short. A finetuned model added loaded (a job finished here) counts among the
// LOADED_FINETUNED most recently used; past that, the least recently used idle one goes back to
// being served on demand.
import path from 'node:path';
import type { GPTConfig } from '../model/config.js';
import { ClassifierWorker } from './classifier-worker.js';
import { apiError, badRequest, modelNotFound } from './errors.js';
import type { Metrics } from './metrics.js';
import { isCheckpointModelId } from '../jobs/ids.js';
import { LOADED_FINETUNED } from '../jobs/served-models.js';
import { readModelFolder } from '../model/model-folder.js';
import { ModelWorker, type ModelOptions } from './model-worker.js';

export type ServedModel = ModelWorker | ClassifierWorker;

/** What is known of a served model without loading it (what /v1/models describes). */
export interface ModelInfo {
  id: string;
  dir: string;
  /** A PEFT LoRA adapter folder applied to `dir` (serve --lora). */
  lora?: string;
  kind: ServedModel['kind'];
  config: GPTConfig;
  created: number;
  labels?: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** On-demand models that may run or load at once; a start beyond that waits for an idle one to stop. */
export const MAX_ON_DEMAND = 2;

/** A loaded on-demand model not yet used is kept this long for the client that asked for it (its Retry-After is 5 s). */
const FIRST_USE_GRACE_MS = 15_000;

export class ModelRegistry {
  private readonly models = new Map<string, ServedModel>();
  private readonly finetuned = new Set<string>();
  /** Models served on demand (checkpoints): id → folder, whether running now or not. */
  private readonly onDemand = new Map<string, string>();
  /** What each on-demand model's folder says, read at the first info() (GET /v1/models lists them all). */
  private readonly described = new Map<string, ModelInfo>();
  /** The on-demand models running or loading now, least recently used first. */
  private readonly awake: string[] = [];
  /** On-demand models asked for and waiting to start, in order. */
  private readonly queued: string[] = [];
  /** On-demand models being stopped to make room (their threads still hold memory). */
  private stopping = 0;
  /** When each awake on-demand model became ready, until a request uses it. */
  private readonly unusedSince = new Map<string, number>();
  /** Finetuned models added loaded (not on demand), least recently used first. */
  private readonly loaded: string[] = [];

  constructor(
    dirs: (string | { id: string; dir: string; lora?: string })[],
    private readonly opts: ModelOptions,
    private readonly metrics: Metrics,
  ) {
    try {
      for (const entry of dirs) {
        const { id, dir, lora } = typeof entry === 'string' ? { id: path.basename(path.resolve(entry)), dir: entry, lora: undefined } : entry;
        if (this.models.has(id)) throw new Error(`two models are named '${id}': model ids (folder names, or Hub ids as given) must differ`);
        this.models.set(id, this.start(id, path.resolve(dir), lora === undefined ? undefined : path.resolve(lora)));
      }
    } catch (e) {
      void this.close(); // workers already started would keep the process alive
      throw e;
    }
    if (this.models.size === 0) throw new Error('no models to serve');
  }

  private start(id: string, dir: string, lora?: string): ServedModel {
    const folder = readModelFolder(dir, this.opts.chatTemplateFile, lora); // read once, handed to the worker
    if (!folder.config.labels) return new ModelWorker(id, dir, folder, this.opts, this.metrics, lora);
    if (lora !== undefined) throw new Error(`--lora ${lora}: ${dir} is a classifier; adapters are applied to language models only`);
    return new ClassifierWorker(id, dir, folder, this.opts);
  }

  /** Serves a finetuned model from now on (it loads in the background: await its `ready`). */
  add(id: string, dir: string): ServedModel {
    if (this.models.has(id)) throw new Error(`a model named '${id}' is already served`);
    const m = this.start(id, path.resolve(dir));
    this.models.set(id, m);
    this.finetuned.add(id);
    this.loaded.push(id);
    this.unloadBeyondCap();
    return m;
  }

  /** Past LOADED_FINETUNED loaded finetuned models, the least recently used idle ones are stopped and served on demand from then on. */
  private unloadBeyondCap(): void {
    while (this.loaded.length > LOADED_FINETUNED) {
      const victim = this.loaded.find((id) => this.models.get(id)!.state !== 'loading' && this.models.get(id)!.activeRequests === 0);
      if (victim === undefined) return; // all busy: a later request looks again
      this.onDemand.set(victim, this.models.get(victim)!.dir);
      void this.stop(victim, 0);
    }
  }

  /** Serves a finetuned model on demand: its worker starts at the first request for it. */
  addOnDemand(id: string, dir: string): void {
    if (this.has(id)) throw new Error(`a model named '${id}' is already served`);
    this.onDemand.set(id, path.resolve(dir));
    this.finetuned.add(id);
  }

  /**
   * Stops serving a finetuned model: new requests get 404 at once, requests in flight may finish
   * (up to `graceMs`), then its worker stops.
   */
  async remove(id: string, graceMs = 5000): Promise<void> {
    if (this.has(id) && !this.finetuned.has(id)) throw new Error(`'${id}' is a base model and cannot be removed`);
    this.onDemand.delete(id);
    this.described.delete(id);
    this.finetuned.delete(id);
    await this.stop(id, graceMs);
  }

  /** Stops a running model's worker (after its requests finish, up to `graceMs`); it is no longer found. */
  private async stop(id: string, graceMs: number): Promise<void> {
    const m = this.models.get(id);
    if (!m) return;
    this.models.delete(id);
    for (const list of [this.awake, this.loaded]) {
      const at = list.indexOf(id);
      if (at >= 0) list.splice(at, 1);
    }
    this.unusedSince.delete(id);
    const deadline = Date.now() + graceMs;
    while (m.activeRequests > 0 && Date.now() < deadline) await sleep(20);
    await m.close();
  }

  /**
   * An on-demand model for a request: the running one (marked most recently used), or a 503 while
   * it waits to start or loads. Starting one beyond MAX_ON_DEMAND first stops the least recently
   * used idle one; when none is idle, it stays queued and a later request starts it.
   */
  private wake(id: string): ServedModel {
    const at = this.awake.indexOf(id);
    if (at >= 0) this.awake.splice(at, 1);
    const running = this.models.get(id);
    if (running) {
      this.awake.push(id);
      if (running.state !== 'loading') this.unusedSince.delete(id);
      return running;
    }
    if (!this.queued.includes(id)) this.queued.push(id);
    this.startQueued();
    const started = this.models.get(id);
    if (started) return started;
    throw apiError(503, `The model '${id}' is waiting to load (at most ${MAX_ON_DEMAND} checkpoints are served at once); retry shortly.`, {
      code: 'model_loading',
      headers: { 'Retry-After': '5' },
    });
  }

  private startQueued(): void {
    while (this.queued.length && this.awake.length + this.stopping < MAX_ON_DEMAND) {
      const id = this.queued.shift()!;
      const dir = this.onDemand.get(id);
      if (!dir) continue; // removed while it waited
      const m = this.start(id, dir);
      m.ready.then(
        () => this.unusedSince.set(id, Date.now()),
        () => {}, // a failure shows as the model's state (503 model_unavailable)
      );
      this.models.set(id, m);
      this.awake.push(id);
    }
    if (!this.queued.length || this.stopping > 0) return; // one stop at a time; its end starts the next
    const victim = this.awake.find((other) => this.idle(other));
    if (victim === undefined) return;
    this.stopping++;
    void this.stop(victim, 0).finally(() => {
      this.stopping--;
      this.startQueued();
    });
  }

  /** Whether an awake on-demand model may be stopped: not loading, nothing running, and used since it loaded (or left unused for long). */
  private idle(id: string): boolean {
    const m = this.models.get(id)!;
    if (m.state === 'loading' || m.activeRequests > 0) return false;
    const since = this.unusedSince.get(id);
    return since === undefined || Date.now() - since > FIRST_USE_GRACE_MS;
  }

  isFinetuned(id: string): boolean {
    return this.finetuned.has(id);
  }

  /** Whether `id` is served, running or on demand. */
  has(id: string): boolean {
    return this.models.has(id) || this.onDemand.has(id);
  }

  /** The running models (on-demand ones only while awake). */
  list(): ServedModel[] {
    return [...this.models.values()];
  }

  /**
   * What /v1/models lists: the running models, then the finetuned ones served on demand (published
   * by another replica's worker); not checkpoints, which are listed per job.
   */
  listed(): ModelInfo[] {
    const running = this.list().filter((m) => !this.onDemand.has(m.id));
    const onDemand = [...this.onDemand.keys()].filter((id) => !isCheckpointModelId(id)).map((id) => this.info(id)!);
    return [...running, ...onDemand];
  }

  /** Whether `id` is served on demand (a checkpoint, or a model another process published): /v1/models lists only the latter. */
  isOnDemand(id: string): boolean {
    return this.onDemand.has(id);
  }

  /** The model named `id` of either kind to run a request on (an on-demand one starts: 503 until loaded), or a 404 (model_not_found). */
  find(id: string): ServedModel {
    const m = this.onDemand.has(id) ? this.wake(id) : this.models.get(id);
    if (!m) throw modelNotFound(id);
    const at = this.loaded.indexOf(id);
    if (at >= 0) {
      this.loaded.push(...this.loaded.splice(at, 1)); // most recently used
      this.unloadBeyondCap();
    }
    return m;
  }

  /** What is known of model `id` without starting it, or undefined when it is not served. */
  info(id: string): ModelInfo | undefined {
    const m = this.models.get(id);
    if (m) return m;
    const dir = this.onDemand.get(id);
    if (!dir) return undefined;
    let info = this.described.get(id);
    if (!info) {
      const { config, created } = readModelFolder(dir);
      info = { id, dir, kind: config.labels ? 'classifier' : 'generator', config, created, ...(config.labels ? { labels: config.labels } : {}) };
      this.described.set(id, info);
    }
    return info;
  }

  /** The language model named `id`: a 404 when unknown, a 400 when it is a classifier. */
  get(id: string): ModelWorker {
    const m = this.find(id);
    if (m.kind === 'classifier') {
      throw badRequest(`The model '${id}' is a classifier: it cannot generate text. Use POST /v1/classifications with it.`, 'model', 'model_not_generative');
    }
    return m;
  }

  /** The classifier named `id`: a 404 when unknown, a 400 when it is a language model. */
  classifier(id: string): ClassifierWorker {
    const m = this.find(id);
    if (m.kind !== 'classifier') {
      throw badRequest(
        `The model '${id}' is a language model, not a classifier: use /v1/completions or /v1/chat/completions with it. Classifiers come from fine-tuning with method.scratchgpt.task 'classification'.`,
        'model',
        'model_not_classifier',
      );
    }
    return m;
  }

  /** The first model: the default where the API lets the client leave `model` out (tokenize). */
  get first(): ServedModel {
    return this.list()[0]!;
  }

  private get base(): ServedModel[] {
    return this.list().filter((m) => !this.finetuned.has(m.id));
  }

  /**
   * The base models' state (what /health reports): a finetuned model that is loading or failed
   * shows in /health's per-model list but does not take the server out of rotation.
   */
  get state(): 'loading' | 'ready' | 'failed' {
    const states = this.base.map((m) => m.state);
    return states.includes('failed') ? 'failed' : states.includes('loading') ? 'loading' : 'ready';
  }

  /** Resolves when every base model is loaded; rejects with the first failure. */
  ready(): Promise<void> {
    return Promise.all(this.base.map((m) => m.ready)).then(() => undefined);
  }

  get activeRequests(): number {
    return this.list().reduce((n, m) => n + m.activeRequests, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((m) => m.close()));
  }
}
