// The thread body of one served model: owns the ModelSession (ORT's run blocks whatever thread calls it) and the
// Scheduler. Started by ModelWorker (model-worker.ts) through threads/boot.js.
import { parentPort, workerData } from 'node:worker_threads';
import type { Device } from '../model/runtime.js';
import { ModelSession } from '../model/session.js';
import type { FromModelThread, ToModelThread } from './protocol.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';

export interface ModelThreadConfig extends SchedulerOptions {
  /** This module (threads/boot.js imports it). */
  entry: string;
  dir: string;
  /** A PEFT LoRA adapter folder merged into `dir`'s weights. */
  lora?: string;
  slots: number;
  device?: Device;
  threads?: number;
  quantize?: 'none' | 'int8';
}

const port = parentPort!;
const cfg = workerData as ModelThreadConfig;
const post = (msg: FromModelThread) => port.postMessage(msg);

try {
  const model = await ModelSession.load(cfg.dir, { lora: cfg.lora, slots: cfg.slots, device: cfg.device, threads: cfg.threads, quantize: cfg.quantize });
  const scheduler = new Scheduler(model, post, cfg);
  port.on('message', (msg: ToModelThread) => {
    if (msg.type === 'submit') scheduler.submit(msg.seqs);
    else if (msg.type === 'cancel') scheduler.cancel(msg.ids);
    else scheduler.close();
  });
  post({ type: 'ready' });
  await scheduler.run(); // returns after a close, between forward calls
  await model.close();
  port.close(); // nothing keeps the thread alive now: it exits
} catch (e) {
  post({ type: 'failed', message: (e as Error).message });
}
