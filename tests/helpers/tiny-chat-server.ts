// A server on a tiny random GPT-2 with the real 50,257-token vocabulary and the Alpaca chat
// template, named 'tiny', and an `openai` client for it: what the structured-output and tool tests talk to.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import type { GPTConfig } from '../../src/model/config.js';
import { randomInit } from '../../src/model/gpt.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js';

export interface TinyChatServer {
  server: RunningServer;
  client: OpenAI;
  config: GPTConfig;
  close(): Promise<void>;
}

export async function tinyChatServer(name: string, contextLength: number, options: Partial<ServerOptions> = {}): Promise<TinyChatServer> {
  const cfg: GPTConfig = { vocabSize: 50257, contextLength, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, chatTemplate: 'alpaca' };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const dir = path.join(tmp, 'tiny');
  saveCheckpoint(dir, cfg, randomInit(cfg, 3));
  const server = await startServer({ modelDirs: [dir], port: 0, slots: 4, queue: 8, threads: 1, ...options });
  await server.ready;
  return {
    server,
    client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }),
    config: cfg,
    async close() {
      await server.shutdown();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}
