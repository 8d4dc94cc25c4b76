// The thread body of one served classifier: owns one ClassifierSession (ORT's run blocks the thread that calls
// it, so it never runs on the HTTP thread) and answers classify requests one at a time, in order.
// Started by ClassifierWorker (classifier-worker.ts) through threads/boot.js.
import { parentPort, workerData } from 'node:worker_threads';
import { ClassifierSession } from '../model/classifier.js';
import type { Device } from '../model/runtime.js';

export interface ClassifierThreadConfig {
  entry: string;
  dir: string;
  device?: Device;
  threads?: number;
}

/** close: answer what was asked, close the session and exit (see threads/stop.ts). */
export type ToClassifier = { type: 'classify'; id: number; texts: string[] } | { type: 'close' };
export type FromClassifier =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; results: { label: string; probabilities: Record<string, number> }[] }
  | { type: 'error'; id: number; message: string };

const port = parentPort!;
const cfg = workerData as ClassifierThreadConfig;
const post = (msg: FromClassifier) => port.postMessage(msg);

try {
  const session = await ClassifierSession.open(cfg.dir, { device: cfg.device, threads: cfg.threads });
  let chain = Promise.resolve();
  port.on('message', (msg: ToClassifier) => {
    if (msg.type === 'close') {
      chain = chain.then(() => session.close()).then(() => port.close());
      return;
    }
    chain = chain.then(async () => {
      try {
        post({ type: 'result', id: msg.id, results: await session.classify(msg.texts) });
      } catch (e) {
        post({ type: 'error', id: msg.id, message: (e as Error).message });
      }
    });
  });
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'failed', message: (e as Error).message });
}
