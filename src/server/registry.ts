// The models this server serves, by id (= folder name), each behind its own worker thread.
import path from 'node:path';
import { modelNotFound } from './errors.js';
import type { Metrics } from './metrics.js';
import { ModelWorker, type ModelOptions } from './model-worker.js';

export class ModelRegistry {
  private readonly models = new Map<string, ModelWorker>();

  constructor(dirs: string[], opts: ModelOptions, metrics: Metrics) {
    try {
      for (const dir of dirs) {
        const id = path.basename(path.resolve(dir));
        if (this.models.has(id)) throw new Error(`two model folders are named '${id}': model ids are folder names and must differ`);
        this.models.set(id, new ModelWorker(id, path.resolve(dir), opts, metrics));
      }
    } catch (e) {
      void this.close(); // workers already started would keep the process alive
      throw e;
    }
    if (this.models.size === 0) throw new Error('no models to serve');
  }

  list(): ModelWorker[] {
    return [...this.models.values()];
  }

  /** The model named `id`, or a 404 (model_not_found). */
  get(id: string): ModelWorker {
    const m = this.models.get(id);
    if (!m) throw modelNotFound(id);
    return m;
  }

  /** The first model: the default where the API lets the client leave `model` out (tokenize). */
  get first(): ModelWorker {
    return this.list()[0]!;
  }

  get state(): 'loading' | 'ready' | 'failed' {
    const states = this.list().map((m) => m.state);
    return states.includes('failed') ? 'failed' : states.includes('loading') ? 'loading' : 'ready';
  }

  /** Resolves when every model is loaded; rejects with the first failure. */
  ready(): Promise<void> {
    return Promise.all(this.list().map((m) => m.ready)).then(() => undefined);
  }

  get activeJobs(): number {
    return this.list().reduce((n, m) => n + m.activeJobs, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((m) => m.close()));
  }
}
