// Serving PEFT adapters with the official `openai` client: `scratchgpt serve` with no --model
// serves both embedded models (the real weights/ folders) and chats on the instruction-tuned
// adapter; a served adapter (its own folder, or `--lora` on a given base) runs what its merged
// weights run and takes its chat template and generation defaults from the adapter folder.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAlpacaChatFiles } from '../src/model/chat-template.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { DEFAULT_CHAT_MODEL_DIR, DEFAULT_MODEL_DIR } from '../src/model/default-model.js';
import { writePeftAdapter } from '../src/model/peft-adapter.js';
import { Rng } from '../src/model/rng.js';
import { startServer } from '../src/server/server.js';
import { loraSpecs } from '../src/train/lora.js';
import { startChildServer } from './helpers/child-server.js';

const exec = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-serve-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('serving PEFT adapters', () => {
  it('serve with no --model lists both embedded models and chats on scratchgpt-brown-instruct', async () => {
    expect(fs.existsSync(path.join(DEFAULT_MODEL_DIR, 'model.safetensors')) && fs.existsSync(path.join(DEFAULT_CHAT_MODEL_DIR, 'adapter_model.safetensors'))).toBe(true);
    const server = await startChildServer(['--port', '0', '--threads', '1', '--slots', '2', '--data-dir', path.join(tmp, 'data')]);
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      expect((await client.models.list()).data.map((m) => m.id)).toEqual(['scratchgpt-brown', 'scratchgpt-brown-instruct']);
      const ask = () => client.chat.completions.create({ model: 'scratchgpt-brown-instruct', messages: [{ role: 'user', content: 'Name a primary color.' }], max_tokens: 12 });
      const first = await ask();
      expect(first.choices[0]!.message.role).toBe('assistant');
      expect(first.choices[0]!.message.content!.trim().length).toBeGreaterThan(0);
      expect(first.usage!.completion_tokens).toBeGreaterThan(0);
      expect(first.usage!.completion_tokens).toBeLessThanOrEqual(12);
      // generation_config.json in the adapter folder makes it greedy when the request does not say.
      expect((await ask()).choices[0]!.message.content).toBe(first.choices[0]!.message.content);
      await expect(client.chat.completions.create({ model: 'scratchgpt-brown', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 })).rejects.toMatchObject({ status: 400, code: 'model_not_chat' });
      // The README's client example, as written, against this server.
      const example = await exec(process.execPath, [path.resolve(import.meta.dirname, '../examples/openai-chat.mjs'), 'Name a primary color.'], {
        env: { ...process.env, OPENAI_BASE_URL: `${server.url}/v1` },
      });
      expect(example.stdout.trim().length).toBeGreaterThan(0);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  }, 120_000);

  it('an adapter folder and the same adapter applied with --lora serve the same model, with its chat template', async () => {
    const cfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
    const base = path.join(tmp, 'base');
    const params = randomInit(cfg, 3);
    for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 6)); // peaked distributions
    saveCheckpoint(base, cfg, params);
    const rng = new Rng(9);
    const adapters = new Map(loraSpecs(cfg, 2).map((s) => [s.name, { shape: s.shape, data: Float32Array.from({ length: s.shape[0]! * s.shape[1]! }, () => rng.normal()) }]));
    const adapter = path.join(tmp, 'adapter');
    writePeftAdapter(adapter, { base: '../base', rank: 2, alpha: 4, adapters });
    writeAlpacaChatFiles(adapter, cfg.contextLength);
    fs.cpSync(adapter, path.join(tmp, 'same-adapter'), { recursive: true });

    const server = await startServer({ modelDirs: [base, path.join(tmp, 'same-adapter'), { id: 'adapter', dir: base, lora: adapter }], port: 0, slots: 1, queue: 4, threads: 1 });
    try {
      await server.ready;
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      expect((await client.models.list()).data.map((m) => m.id)).toEqual(['base', 'same-adapter', 'adapter']);
      const complete = async (model: string) => (await client.completions.create({ model, prompt: 'The jury said', max_tokens: 6, temperature: 0, logprobs: 2 })).choices[0]!;
      const viaLora = await complete('adapter');
      expect(await complete('same-adapter')).toEqual(viaLora);
      expect((await complete('base')).logprobs).not.toEqual(viaLora.logprobs);
      const chat = await client.chat.completions.create({ model: 'adapter', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 });
      expect(chat.choices[0]!.message.role).toBe('assistant');
    } finally {
      await server.shutdown();
    }
  });
});
