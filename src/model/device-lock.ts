// One WebGPU call at a time per process. ORT's WebGPU provider runs every session of a process on
// one shared device context (Node cannot ask for another: `deviceId` is refused), and that context
// is not thread-safe: two threads running WebGPU sessions at once (two served models, a model and a
// training job) crash the process or fail runs (tests/repro/webgpu-concurrent-sessions.mjs). So
// every WebGPU session's creation, runs and release, and the release of its GPU-buffer outputs,
// take one process-wide lock: a word in a SharedArrayBuffer that threads inherit through
// worker_threads' environment data. Within a thread the calls queue in order; waiting never blocks
// a thread's event loop.
import { getEnvironmentData, setEnvironmentData, threadId } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';

const KEY = 'scratchgpt:webgpu-lock';

/**
 * The process's lock word (0: free, else the holder's threadId + 1). Threads started after this
 * call share it (threads/start.ts calls it before starting any); a thread whose parent never called
 * it makes its own.
 */
export function shareWebGpuLock(): Int32Array {
  let buffer = getEnvironmentData(KEY) as SharedArrayBuffer | undefined;
  if (!buffer) {
    buffer = new SharedArrayBuffer(4);
    setEnvironmentData(KEY, buffer);
  }
  return new Int32Array(buffer);
}

// Atomics.waitAsync is in Node ≥ 16 but in TypeScript's ES2024 lib, not the ES2023 this project uses.
type WaitAsync = (a: Int32Array, i: number, v: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** This thread's calls, in order: the lock is taken by one of them at a time. */
let tail: Promise<unknown> = Promise.resolve();

/** Runs `fn` holding the lock, after this thread's earlier calls. */
export function withWebGpuLock<T>(fn: () => T | Promise<T>): Promise<T> {
  const result = tail.then(async () => {
    const lock = shareWebGpuLock();
    for (let held; (held = Atomics.compareExchange(lock, 0, 0, threadId + 1)) !== 0; ) {
      const w = waitAsync(lock, 0, held);
      if (!w.async) continue;
      const alive = setInterval(() => {}, 1 << 30); // a pending waitAsync alone does not keep a thread alive
      await w.value.finally(() => clearInterval(alive));
    }
    try {
      return await fn();
    } finally {
      Atomics.store(lock, 0, 0);
      Atomics.notify(lock, 0);
    }
  });
  tail = result.catch(() => {});
  return result;
}

/** A run's outputs left on the GPU are released under the lock (queued, so dispose() returns at once). */
function lockGpuOutputs<T>(outputs: T): T {
  for (const value of Object.values(outputs as Record<string, ort.Tensor>)) {
    if (value?.location !== 'gpu-buffer') continue;
    const dispose = value.dispose.bind(value);
    value.dispose = () => void withWebGpuLock(dispose);
  }
  return outputs;
}

/** Makes a WebGPU session's run and release take the lock. */
export function lockWebGpuSession(session: ort.InferenceSession): ort.InferenceSession {
  const run = session.run.bind(session) as (...args: unknown[]) => Promise<ort.InferenceSession.ReturnType>;
  const release = session.release.bind(session);
  session.run = ((...args: unknown[]) => withWebGpuLock(() => run(...args)).then(lockGpuOutputs)) as ort.InferenceSession['run'];
  session.release = () => withWebGpuLock(release);
  return session;
}
