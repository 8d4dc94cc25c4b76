// glibc malloc settings for training, applied by re-running the command in a child process
// (malloc reads them once, at process start).
//
// ORT copies every output into a fresh JS buffer. glibc serves big allocations with mmap, so
// each step's gradients land in new pages and pay a page fault per 4 KiB, where reusing freed
// buffers from the heap would not (figures in src/train/README.md). These are the settings the PyTorch baseline in ../shared/bench ran with for the same
// reason. The cost: memory freed during training is kept by the process, not returned.
import { spawn } from 'node:child_process';

export const MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };

/** True where nothing needs doing: not glibc/Linux, already set, or SCRATCHGPT_MALLOC=default. */
export function mallocTuned(): boolean {
  if (process.platform !== 'linux' || process.env.SCRATCHGPT_MALLOC === 'default') return true;
  return Object.entries(MALLOC_ENV).every(([k, v]) => process.env[k] === v);
}

/** Runs this process's command line again with MALLOC_ENV set, forwarding stdio; resolves to its exit code. */
export function rerunWithMallocTuning(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, ...MALLOC_ENV },
  });
  // Ctrl-C reaches the child too (same process group): it saves and exits; wait for it.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? (signal ? 128 + 2 : 1));
    });
  });
}
