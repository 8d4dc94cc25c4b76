// The models this server serves, by id, each behind its own worker thread: language models
// (ModelWorker: completions, chat) and classifiers (ClassifierWorker: /v1/classifications).
// Base models come from --model folders (id = folder name) and are fixed for the server's life;
// finetuned models ('ft:…') are added and removed while it runs. A job's checkpoints are models
// too, served on demand: a worker starts at the first request for one (which gets a 503 with
// Retry-After while it loads), and only the few most recently used keep running.
import fs from 'node:fs';
import path from 'node:path';
import { fromHFConfig } from '../model/config.js';
import { ClassifierWorker } from './classifier-worker.js';
import { badRequest, modelNotFound } from './errors.js';
import type { Metrics } from './metrics.js';
import { ModelWorker, type ModelOptions } from './model-worker.js';

export type ServedModel = ModelWorker | ClassifierWorker;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** On-demand models that may run at once; starting one more stops the least recently used idle one. */
export const MAX_ON_DEMAND = 2;

/** True when the folder's config.json describes a classifier (GPT2ForSequenceClassification). */
function isClassifier(dir: string): boolean {
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new Error(`${dir} is not a model folder: no config.json (expected a Hugging Face GPT-2 folder)`);
  return fromHFConfig(JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>, configPath).labels !== undefined;
}

export class ModelRegistry {
  private readonly models = new Map<string, ServedModel>();
  private readonly finetuned = new Set<string>();
  /** Models served on demand (checkpoints): id → folder, whether running now or not. */
  private readonly onDemand = new Map<string, string>();
  /** The on-demand models running now, least recently used first. */
  private readonly awake: string[] = [];

  constructor(
    dirs: string[],
    private readonly opts: ModelOptions,
    private readonly metrics: Metrics,
  ) {
    try {
      for (const dir of dirs) {
        const id = path.basename(path.resolve(dir));
        if (this.models.has(id)) throw new Error(`two model folders are named '${id}': model ids are folder names and must differ`);
        this.models.set(id, this.start(id, path.resolve(dir)));
      }
    } catch (e) {
      void this.close(); // workers already started would keep the process alive
      throw e;
    }
    if (this.models.size === 0) throw new Error('no models to serve');
  }

  private start(id: string, dir: string): ServedModel {
    return isClassifier(dir) ? new ClassifierWorker(id, dir, this.opts) : new ModelWorker(id, dir, this.opts, this.metrics);
  }

  /** Serves a finetuned model from now on (it loads in the background: await its `ready`). */
  add(id: string, dir: string): ServedModel {
    if (this.models.has(id)) throw new Error(`a model named '${id}' is already served`);
    const m = this.start(id, path.resolve(dir));
    this.models.set(id, m);
    this.finetuned.add(id);
    return m;
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
    this.finetuned.delete(id);
    await this.stop(id, graceMs);
  }

  /** Stops a running model's worker (after its requests finish, up to `graceMs`); it is no longer found. */
  private async stop(id: string, graceMs: number): Promise<void> {
    const m = this.models.get(id);
    if (!m) return;
    this.models.delete(id);
    const at = this.awake.indexOf(id);
    if (at >= 0) this.awake.splice(at, 1);
    const deadline = Date.now() + graceMs;
    while (m.activeJobs > 0 && Date.now() < deadline) await sleep(20);
    await m.close();
  }

  /** Starts an on-demand model (or marks it used, when running), stopping the least recently used idle one beyond MAX_ON_DEMAND. */
  private wake(id: string): ServedModel | undefined {
    const dir = this.onDemand.get(id);
    if (!dir) return undefined;
    const at = this.awake.indexOf(id);
    if (at >= 0) this.awake.splice(at, 1);
    this.awake.push(id);
    let m = this.models.get(id);
    if (!m) {
      m = this.start(id, dir);
      m.ready.catch(() => {}); // a failure shows as the model's state (503 model_unavailable)
      this.models.set(id, m);
      const idle = this.awake.filter((other) => other !== id && this.models.get(other)!.activeJobs === 0);
      for (const other of idle.slice(0, Math.max(0, this.awake.length - MAX_ON_DEMAND))) void this.stop(other, 0);
    }
    return m;
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

  /** Whether `id` is served on demand (a checkpoint): /v1/models leaves these out. */
  isOnDemand(id: string): boolean {
    return this.onDemand.has(id);
  }

  /** The model named `id` of either kind (an on-demand one starts loading), or a 404 (model_not_found). */
  find(id: string): ServedModel {
    const m = this.onDemand.has(id) ? this.wake(id) : this.models.get(id);
    if (!m) throw modelNotFound(id);
    return m;
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

  get activeJobs(): number {
    return this.list().reduce((n, m) => n + m.activeJobs, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((m) => m.close()));
  }
}
