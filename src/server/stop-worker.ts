// Stopping a thread that runs ONNX Runtime. worker.terminate() while a session runs aborts the
// whole process (onnxruntime-node throws a Napi::Error from the dying thread: "terminate called
// after throwing an instance of 'Napi::Error'"), so a worker is asked to stop, finishes its
// current run, closes its sessions and exits on its own; terminate() is the last resort after
// `graceMs`, for a thread that is stuck.
import type { Worker } from 'node:worker_threads';

/** Resolves when the worker has exited; true when it had to be terminated. */
export async function stopWorker(worker: Worker, stopMessage: unknown, graceMs: number): Promise<boolean> {
  if (worker.threadId === -1) return false; // already exited
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage(stopMessage);
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
  clearTimeout(timer);
  if (late) await worker.terminate();
  return late;
}

/** How long a model thread may take to finish its current forward call on shutdown or removal. */
export const CLOSE_GRACE_MS = 10_000;
