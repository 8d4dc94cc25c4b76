// Stopping a thread that runs ONNX Runtime. worker.terminate() while a session loads or runs
// aborts the whole process (onnxruntime-node throws a Napi::Error from the dying thread:
// "terminate called after throwing an instance of 'Napi::Error'"), so a worker is never
// terminated: it is asked to stop, finishes its current load or run, closes its sessions and exits
// on its own. A thread slower than `graceMs` is reported through `onLate` and still waited for.
import type { Worker } from 'node:worker_threads';

/** Resolves when the worker has exited; true when it took longer than `graceMs`. */
export async function stopWorker(worker: Worker, stopMessage: unknown, graceMs: number, onLate?: () => void): Promise<boolean> {
  if (worker.threadId === -1) return false; // already exited
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage(stopMessage);
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    onLate?.();
  }, graceMs);
  await exited;
  clearTimeout(timer);
  return late;
}
