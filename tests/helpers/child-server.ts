// `node bin/scratchgpt.js serve …` (or `worker …`) as a child process, for tests that kill or
// signal it: resolves once it listens and its models are ready (a worker: once its health
// endpoint listens), with its URL and its exit.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import type { GPTConfig } from '../../src/model/config.js';
import { randomInit } from '../../src/model/gpt.js';

const root = path.resolve(import.meta.dirname, '../..');

export interface ChildServer {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `serve` (or `worker`) with `args` (add '--port', '0'); every line it writes to stderr goes to `onLog`. */
export async function startChildServer(
  args: string[],
  o: { env?: NodeJS.ProcessEnv; onLog?: (text: string) => void; command?: 'serve' | 'worker' } = {},
): Promise<ChildServer> {
  const command = o.command ?? 'serve';
  const child = spawn(process.execPath, ['bin/scratchgpt.js', command, ...args], { cwd: root, env: o.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      o.onLog?.(d.toString());
      const m = command === 'serve' ? /listening on (http:\/\/\S+?) /.exec(log) : /health on (http:\/\/\S+?)\/health/.exec(log);
      if (m && (command === 'worker' || /ready/.test(log))) resolve(m[1]!);
    });
    void exited.then((e) => reject(new Error(`server exited (${e.code ?? e.signal}) before it was ready:\n${log}`)));
  });
  return { child, url, exited };
}

export interface DataServer {
  child: ChildProcess;
  client: OpenAI;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * A tiny model and a data folder in a temp dir, and `serve` to start (and start again) a child
 * server on them, for tests that kill it; `close` kills the last one and removes the folder.
 */
export function childServersOnData(name: string, cfg: GPTConfig, seed: number, extraArgs: string[] = []) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const dataDir = path.join(tmp, 'data');
  const modelDir = path.join(tmp, 'tiny');
  saveCheckpoint(modelDir, cfg, randomInit(cfg, seed));
  let child: ChildProcess | undefined;
  let log = '';
  return {
    dataDir,
    /** Everything the servers wrote to stderr so far. */
    log: () => log,
    async serve(env: NodeJS.ProcessEnv = {}): Promise<DataServer> {
      const args = ['--model', modelDir, '--data-dir', dataDir, '--port', '0', '--threads', '1', '--slots', '2', ...extraArgs];
      const s = await startChildServer(args, { env: { ...process.env, ...env }, onLog: (text) => (log += text) });
      child = s.child;
      return { child: s.child, client: new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 }), exited: s.exited };
    },
    close(): void {
      child?.kill('SIGKILL');
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}
