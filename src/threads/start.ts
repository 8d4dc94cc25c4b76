// Starting a thread whose body is a TypeScript module: every thread starts from boot.js, which
// registers tsx and imports `workerData.entry` (see boot.js for why a .ts entry cannot be given directly).
import { Worker } from 'node:worker_threads';
import { shareWebGpuLock } from '../model/device-lock.js';

/** Starts the thread body `workerData.entry` (a file URL) with `workerData`; `name` shows in debuggers and traces. */
export function startThread(workerData: { entry: string }, name: string): Worker {
  shareWebGpuLock(); // before the thread starts, so that it inherits this process's lock
  return new Worker(new URL('./boot.js', import.meta.url), { workerData, name });
}
