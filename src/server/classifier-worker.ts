// The HTTP thread's handle on one classifier model (a GPT2ForSequenceClassification folder, made
// by finetuning with task 'classification'): starts its worker thread, sends it batches of texts,
// and bounds how many requests may wait. It never touches ORT.
import { Worker } from 'node:worker_threads';
import type { GPTConfig } from '../model/config.js';
import type { Classification } from '../model/classifier.js';
import type { ClassifierThreadConfig, FromClassifier, ToClassifier } from './classifier-thread.js';
import type { ModelFolder } from '../model/model-folder.js';
import { OverloadedError, type ModelOptions } from './model-worker.js';
import { CLOSE_GRACE_MS, stopWorker } from '../threads/stop.js';

let nextId = 1;

export class ClassifierWorker {
  readonly kind = 'classifier' as const;
  readonly config: GPTConfig;
  readonly labels: string[];
  readonly created: number;
  state: 'loading' | 'ready' | 'failed' = 'loading';
  failure: string | undefined;
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: Classification[]) => void; reject: (e: Error) => void }>();
  private closing = false;

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
    this.worker = new Worker(new URL('../threads/boot.js', import.meta.url), { workerData, name: `classifier ${id}` });
    this.ready = new Promise((resolve, reject) => {
      const fail = (message: string) => {
        this.state = 'failed';
        this.failure = message;
        for (const p of this.pending.values()) p.reject(new Error(`model ${id} stopped: ${message}`));
        this.pending.clear();
        reject(new Error(`model ${id} (${dir}): ${message}`));
      };
      this.worker.on('message', (msg: FromClassifier) => {
        if (msg.type === 'ready') {
          this.state = 'ready';
          resolve();
        } else if (msg.type === 'failed') fail(msg.message);
        else {
          const p = this.pending.get(msg.id);
          if (!p) return;
          this.pending.delete(msg.id);
          if (msg.type === 'result') p.resolve(msg.results);
          else p.reject(new Error(msg.message));
        }
      });
      this.worker.on('error', (e) => fail(e.message));
      this.worker.on('exit', (code) => {
        if (!this.closing && this.state !== 'failed') fail(`worker exited with code ${code}`);
      });
    });
    this.ready.catch(() => {});
  }

  /** Requests sent and not yet answered. */
  get activeJobs(): number {
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
      this.worker.postMessage({ type: 'classify', id, texts } satisfies ToClassifier);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.pending.values()) p.reject(new Error('The server shut down before this request finished.'));
    this.pending.clear();
    await stopWorker(this.worker, { type: 'close' } satisfies ToClassifier, CLOSE_GRACE_MS, () => console.error(`model ${this.id}: waiting for its thread to finish loading or running`));
  }
}
