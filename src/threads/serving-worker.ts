// The host side of a thread that loads something, says 'ready' or 'failed', then answers messages
// until it is asked to close (ModelWorker and ClassifierWorker hold one each). The thread fails
// when it says so, throws, or exits unasked; it is stopped with a message, never terminated (stop.ts).
import type { Worker } from 'node:worker_threads';
import { startThread } from './start.js';
import { stopWorker } from './stop.js';

/** How long a serving thread may take to finish its current load or run before it is reported as slow. */
const CLOSE_GRACE_MS = 10_000;

/** The messages every serving thread posts about its loading, besides its own. */
export type LoadReport = { type: 'ready' } | { type: 'failed'; message: string };

export interface ServingWorkerOptions<From> {
  /** The thread's name (debuggers, traces). */
  name: string;
  /** What failed, at the start of the error `ready` rejects with. */
  describe: string;
  /** The thread's own messages (every one but its LoadReport). */
  onMessage: (msg: Exclude<From, LoadReport>) => void;
  /** After a failure, before `ready` rejects: whatever waits on the thread must end now. */
  onFail: (message: string) => void;
}

export class ServingWorker<To, From extends { type: string }> {
  state: 'loading' | 'ready' | 'failed' = 'loading';
  failure: string | undefined;
  /** Resolves when the thread has loaded; rejects when loading failed. */
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private closing = false;

  constructor(workerData: { entry: string }, o: ServingWorkerOptions<From>) {
    this.worker = startThread(workerData, o.name);
    this.ready = new Promise((resolve, reject) => {
      const fail = (message: string) => {
        this.state = 'failed';
        this.failure = message;
        o.onFail(message);
        reject(new Error(`${o.describe}: ${message}`));
      };
      this.worker.on('message', (msg: From) => {
        const report = msg as LoadReport;
        if (report.type === 'ready') {
          this.state = 'ready';
          resolve();
        } else if (report.type === 'failed') fail(report.message);
        else o.onMessage(msg as Exclude<From, LoadReport>);
      });
      this.worker.on('error', (e) => fail(e.message));
      this.worker.on('exit', (code) => {
        if (!this.closing && this.state !== 'failed') fail(`worker exited with code ${code}`);
      });
    });
    this.ready.catch(() => {}); // observed by whoever awaits it; a failed thread must not crash the process
  }

  post(msg: To): void {
    this.worker.postMessage(msg);
  }

  /** Asks the thread to close and waits for it to exit; `onLate` when that takes over CLOSE_GRACE_MS. */
  async close(closeMessage: To, onLate: () => void): Promise<void> {
    this.closing = true;
    await stopWorker(this.worker, closeMessage, CLOSE_GRACE_MS, onLate);
  }
}
