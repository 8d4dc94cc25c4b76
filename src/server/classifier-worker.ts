// The HTTP thread's handle on one classifier model (a GPT2ForSequenceClassification folder, made
// by finetuning with task 'classification'): starts its thread (classifier-thread.ts), sends it batches of texts,
// and bounds how many requests may wait. It never touches ORT.
import type { GPTConfig } from '../model/config.js';
import type { Classification } from '../model/classifier.js';
import type { ClassifierThreadConfig, FromClassifier, ToClassifier } from './classifier-thread.js';
import type { ModelFolder } from '../model/model-folder.js';
import { OverloadedError, type ModelOptions } from './model-worker.js';
import { ServingWorker } from '../threads/serving-worker.js';

let nextId = 1;

export class ClassifierWorker {
  readonly kind = 'classifier' as const;
  readonly config: GPTConfig;
  readonly labels: string[];
  readonly created: number;
  readonly ready: Promise<void>;
  private readonly thread: ServingWorker<ToClassifier, FromClassifier>;
  private readonly pending = new Map<number, { resolve: (r: Classification[]) => void; reject: (e: Error) => void }>();

  constructor(
    readonly id: string,
    readonly dir: string,
    folder: ModelFolder,
    readonly opts: ModelOptions,
  ) {
    ({ config: this.config, created: this.created } = folder);
    if (!this.config.labels) throw new Error(`${dir} is a language model, not a classifier`);
    this.labels = this.config.labels;
    const workerData: ClassifierThreadConfig = {
      entry: new URL('./classifier-thread.ts', import.meta.url).href,
      dir,
      device: opts.device,
      threads: opts.threads,
    };
    this.thread = new ServingWorker(workerData, {
      name: `classifier ${id}`,
      describe: `model ${id} (${dir})`,
      onMessage: (msg) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.type === 'result') p.resolve(msg.results);
        else p.reject(new Error(msg.message));
      },
      onFail: (message) => {
        for (const p of this.pending.values()) p.reject(new Error(`model ${id} stopped: ${message}`));
        this.pending.clear();
      },
    });
    this.ready = this.thread.ready;
  }

  get state(): 'loading' | 'ready' | 'failed' {
    return this.thread.state;
  }

  get failure(): string | undefined {
    return this.thread.failure;
  }

  /** Requests sent and not yet answered. */
  get activeRequests(): number {
    return this.pending.size;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  /** At most `queue` requests wait (at least one); beyond that, OverloadedError (→ 429). */
  classify(texts: string[]): Promise<Classification[]> {
    if (this.state !== 'ready') return Promise.reject(new Error(`model ${this.id} is ${this.state}`));
    if (this.pending.size >= Math.max(1, this.opts.queue)) return Promise.reject(new OverloadedError(`model ${this.id} is at capacity`));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.post({ type: 'classify', id, texts });
    });
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) p.reject(new Error('The server shut down before this request finished.'));
    this.pending.clear();
    await this.thread.close({ type: 'close' }, () => console.error(`model ${this.id}: waiting for its thread to finish loading or running`));
  }
}
