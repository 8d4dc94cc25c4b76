// `node bin/scratchgpt.js serve …` as a child process, for tests that kill or signal the server:
// resolves once it listens and its models are ready, with its URL and its exit.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export interface ChildServer {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `serve` with `args` (add '--port', '0'); every line it writes to stderr goes to `onLog`. */
export async function startChildServer(args: string[], o: { env?: NodeJS.ProcessEnv; onLog?: (text: string) => void } = {}): Promise<ChildServer> {
  const child = spawn(process.execPath, ['bin/scratchgpt.js', 'serve', ...args], { cwd: root, env: o.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      o.onLog?.(d.toString());
      const m = /listening on (http:\/\/\S+?) /.exec(log);
      if (m && /ready/.test(log)) resolve(m[1]!);
    });
    void exited.then((e) => reject(new Error(`server exited (${e.code ?? e.signal}) before it was ready:\n${log}`)));
  });
  return { child, url, exited };
}
