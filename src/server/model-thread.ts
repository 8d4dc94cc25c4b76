// The thread body of one served model: owns the ModelSession (ORT's run blocks whatever thread calls it) and the
// Scheduler. Started by ModelWorker (model-worker.ts) through threads/boot.js.
import { parentPort, workerData } from 'node:worker_threads';
import { loadCheckpoint } from '../model/checkpoint.js';
import { Embedder } from '../model/embedding.js';
import type { Device } from '../model/runtime.js';
import { ModelSession, type Quantize } from '../model/session.js';
import type { FromModelThread, ToModelThread } from './protocol.js';
import { EmbeddingQueue } from './embedding-queue.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import { Turns } from './turns.js';

export interface ModelThreadConfig extends SchedulerOptions {
  /** This module (threads/boot.js imports it). */
  entry: string;
  dir: string;
  /** A PEFT LoRA adapter folder merged into `dir`'s weights. */
  lora?: string;
  slots: number;
  device?: Device;
  threads?: number;
  quantize?: Quantize;
  draft?: Quantize;
  draftTokens?: number;
}

const port = parentPort!;
const cfg = workerData as ModelThreadConfig;
const post = (msg: FromModelThread) => port.postMessage(msg);

try {
  const model = await ModelSession.load(cfg.dir, { lora: cfg.lora, slots: cfg.slots, device: cfg.device, threads: cfg.threads, quantize: cfg.quantize, draft: cfg.draft, draftTokens: cfg.draftTokens });
  // Generation and embeddings share the model's thread: each ORT call takes its turn (turns.ts),
  // so the scheduler stays unaware of embeddings.
  const turns = new Turns();
  const openEmbedder = async () => {
    const { config, weights } = loadCheckpoint(cfg.dir, { lora: cfg.lora }); // read again: holding the weights for a graph that may never open would cost a LoRA-merged model their memory
    return Embedder.create(config, weights, { device: cfg.device, threads: cfg.threads });
  };
  const embeddings = new EmbeddingQueue(openEmbedder, turns, post, cfg.prefillTokens ?? 512); // 512: the scheduler's default prefill budget
  const scheduler = new Scheduler({ config: model.config, cache: model.cache, draftTokens: model.draftTokens, draftCost: model.draftCost, forward: (rows, opts) => turns.take(() => model.forward(rows, opts)) }, post, cfg);
  port.on('message', (msg: ToModelThread) => {
    if (msg.type === 'submit') scheduler.submit(msg.seqs);
    else if (msg.type === 'cancel') scheduler.cancel(msg.ids);
    else if (msg.type === 'embed') embeddings.submit(msg);
    else scheduler.close();
  });
  post({ type: 'ready' });
  await scheduler.run(); // returns after a close, between forward calls
  await embeddings.close(); // answers the embeddings asked for, then releases their graph
  await model.close();
  port.close(); // nothing keeps the thread alive now: it exits
} catch (e) {
  post({ type: 'failed', message: (e as Error).message });
}
