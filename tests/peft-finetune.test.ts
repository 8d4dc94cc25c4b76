// LoRA finetuning writes a PEFT adapter folder: PEFT's file names, keys, shapes and config, the
// chat files, the base named relative to the adapter; loading it gives, bit for bit, the merged
// weights the run evaluated (its last checkpoint, a full model written from memory), so the same
// logits. From the command line: the default adapter output, --merge's full model with the same
// weights, and `generate --model BASE --lora ADAPTER` running what `generate --model ADAPTER` runs.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { loadChatTemplate } from '../src/model/chat-template.js';
import { ModelSession } from '../src/model/session.js';
import { openSafetensors } from '../src/model/safetensors.js';
import { runFinetune } from '../src/train/finetune.js';

const exec = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-finetune-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 32, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const baseDir = path.join(tmp, 'base');
saveCheckpoint(baseDir, cfg, randomInit(cfg, 5));
const records = Array.from({ length: 8 }, (_, i) => ({ instruction: `Add one to ${i}.`, input: '', output: `${i + 1}` }));

const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

async function logits(dir: string, tokens: number[]): Promise<Float32Array> {
  const model = await ModelSession.load(dir, { threads: 1 });
  try {
    return Float32Array.from((await model.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]))[0]!);
  } finally {
    await model.close();
  }
}

describe('finetune --method lora → a PEFT adapter folder', () => {
  it('holds PEFT’s layout and loads to exactly the merged model the run evaluated', async () => {
    const out = path.join(tmp, 'adapter');
    const checkpoints: string[] = [];
    await runFinetune(
      {
        baseModelDir: baseDir,
        outDir: out,
        workDir: path.join(tmp, 'adapter.work'),
        adapter: { base: '../base' },
        task: { type: 'instruction' },
        method: { type: 'lora', rank: 2, alpha: 4 },
        train: records,
        epochs: 2,
        batchSize: 4,
        lr: 1e-2,
        seed: 3,
        threads: 1,
      },
      { onCheckpoint: (c) => checkpoints.push(c.dir) },
    );
    expect(fs.readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'generation_config.json', 'tokenizer_config.json']);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: '../base', r: 2, lora_alpha: 4, fan_in_fan_out: true, bias: 'none', use_rslora: false, use_dora: false, modules_to_save: null });
    expect(config.target_modules).toEqual(['c_attn', 'c_fc', 'c_proj']);
    const file = openSafetensors(path.join(out, 'adapter_model.safetensors'));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.tensors.size).toBe(2 * 4 * 2);
    const C = cfg.nEmbd;
    expect(file.tensors.get('base_model.model.transformer.h.1.attn.c_attn.lora_A.weight')).toMatchObject({ dtype: 'F32', shape: [2, C] });
    expect(file.tensors.get('base_model.model.transformer.h.1.attn.c_attn.lora_B.weight')).toMatchObject({ dtype: 'F32', shape: [3 * C, 2] });
    expect(file.tensors.get('base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight')).toMatchObject({ shape: [2, 4 * C] });
    expect(loadChatTemplate(out)?.render([{ role: 'user', content: 'Hi.' }], { addGenerationPrompt: true })).toContain('### Instruction:\nHi.\n\n### Response:\n');

    // The last checkpoint is the run's merged model as it was in memory, saved in F32.
    const merged = materialize(loadCheckpoint(checkpoints.at(-1)!).weights);
    const loaded = loadCheckpoint(out);
    expect(loaded.config.chatTemplate).toBe('alpaca');
    const weights = materialize(loaded.weights);
    for (const [name, t] of merged) expect(sameBits(weights.get(name)!.data, t.data), name).toBe(true);
    const base = materialize(loadCheckpoint(baseDir).weights);
    expect(sameBits(weights.get('h.0.attn.c_attn.weight')!.data, base.get('h.0.attn.c_attn.weight')!.data)).toBe(false);
    const tokens = [464, 3290, 373, 13];
    expect(Array.from(await logits(out, tokens))).toEqual(Array.from(await logits(checkpoints.at(-1)!, tokens)));
  });

  it('from the command line: adapter by default, --merge the same weights as a full model, generate --lora', async () => {
    const data = path.join(tmp, 'train.json');
    fs.writeFileSync(data, JSON.stringify(records));
    const run = async (cmd: string, ...args: string[]) => (await exec('node', [BIN, cmd, '--threads', '1', ...args])).stdout;
    const common = ['--model', baseDir, '--data', data, '--method', 'lora', '--lora-rank', '2', '--epochs', '1', '--batch-size', '4', '--lr', '1e-2'];
    const adapter = path.join(tmp, 'cli', 'adapter');
    const full = path.join(tmp, 'cli', 'merged');
    await run('finetune', ...common, '--out', adapter);
    await run('finetune', ...common, '--out', full, '--merge');
    expect(JSON.parse(fs.readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('../../base');
    expect(fs.existsSync(path.join(adapter, 'metrics.jsonl'))).toBe(true);
    expect(fs.existsSync(path.join(full, 'model.safetensors')) && !fs.existsSync(path.join(full, 'adapter_config.json'))).toBe(true);
    const a = materialize(loadCheckpoint(adapter).weights);
    for (const [name, t] of materialize(loadCheckpoint(full).weights)) expect(sameBits(a.get(name)!.data, t.data), name).toBe(true);

    const gen = async (...args: string[]) => JSON.parse(await run('generate', ...args, '--prompt', 'Add one to 4.', '--max-tokens', '5', '--temperature', '0', '--logprobs', '1', '--json'));
    expect(await gen('--model', baseDir, '--lora', adapter)).toEqual(await gen('--model', adapter));
  }, 180_000);
});
