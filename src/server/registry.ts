// The models this server serves, by id, each behind its own worker thread: language models
// (ModelWorker: completions, chat) and classifiers (ClassifierWorker: /v1/classifications).
// Base models come from --model folders (id = folder name) and are fixed for the server's life;
// finetuned models ('ft:…') are added and removed while it runs.
import fs from 'node:fs';
import path from 'node:path';
import { fromHFConfig } from '../model/config.js';
import { ClassifierWorker } from './classifier-worker.js';
import { badRequest, modelNotFound } from './errors.js';
import type { Metrics } from './metrics.js';
import { ModelWorker, type ModelOptions } from './model-worker.js';

export type ServedModel = ModelWorker | ClassifierWorker;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when the folder's config.json describes a classifier (GPT2ForSequenceClassification). */
function isClassifier(dir: string): boolean {
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new Error(`${dir} is not a model folder: no config.json (expected a Hugging Face GPT-2 folder)`);
  return fromHFConfig(JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>, configPath).labels !== undefined;
}

export class ModelRegistry {
  private readonly models = new Map<string, ServedModel>();
  private readonly finetuned = new Set<string>();

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

  /**
   * Stops serving a finetuned model: new requests get 404 at once, requests in flight may finish
   * (up to `graceMs`), then its worker stops.
   */
  async remove(id: string, graceMs = 5000): Promise<void> {
    const m = this.models.get(id);
    if (!m) return;
    if (!this.finetuned.has(id)) throw new Error(`'${id}' is a base model and cannot be removed`);
    this.models.delete(id);
    this.finetuned.delete(id);
    const deadline = Date.now() + graceMs;
    while (m.activeJobs > 0 && Date.now() < deadline) await sleep(20);
    await m.close();
  }

  isFinetuned(id: string): boolean {
    return this.finetuned.has(id);
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  list(): ServedModel[] {
    return [...this.models.values()];
  }

  /** The model named `id` of either kind, or a 404 (model_not_found). */
  find(id: string): ServedModel {
    const m = this.models.get(id);
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
