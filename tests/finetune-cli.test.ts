// `scratchgpt finetune` as users run it (child processes) on a tiny random model: a
// classification run with a seeded split, balancing and LoRA that reports test accuracy, and an
// instruction run that prints held-out responses; both write metrics.jsonl and loss.svg.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';

const exec = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-cli-'));
const base = path.join(tmp, 'base');
const cfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
beforeAll(() => saveCheckpoint(base, cfg, randomInit(cfg, 4)));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await exec('node', [BIN, 'finetune', '--model', base, '--threads', '1', ...args]);
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

const jsonl = (file: string, records: object[]) => fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const readMetrics = (dir: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('scratchgpt finetune', () => {
  it('classification: --split 60/20/20 --balance --method lora, test accuracy, a classifier folder', async () => {
    const data = path.join(tmp, 'labels.jsonl');
    // 30 "spam", 20 "ham": --balance keeps 20 of each.
    jsonl(data, [
      ...Array.from({ length: 30 }, (_, i) => ({ text: `win money now ${i}`, label: 'spam' })),
      ...Array.from({ length: 20 }, (_, i) => ({ text: `see you at ${i}`, label: 'ham' })),
    ]);
    const out = path.join(tmp, 'clf');
    const r = await cli('--data', data, '--out', out, '--split', '60/20/20', '--balance', '--method', 'lora', '--lora-rank', '2', '--epochs', '2', '--lr', '1e-2', '--batch-size', '4');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('data: 24 training, 8 validation, 8 test records; classification, LoRA rank 2, alpha 16');
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(summary.steps).toBe(12);
    expect(summary.test_accuracy).toBeGreaterThanOrEqual(0);
    expect(r.stderr).toMatch(/test accuracy \d+\.\d\d% \(8 records\)/);
    expect(loadCheckpoint(out).config.labels).toEqual(['ham', 'spam']);
    const metrics = readMetrics(out);
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    expect(metrics.filter((m) => m.val_accuracy !== undefined).map((m) => m.step)).toEqual([0, 6, 12]);
    expect(fs.readFileSync(path.join(out, 'loss.svg'), 'utf8')).toContain('validation loss');
    expect(fs.existsSync(path.join(`${out}.work`, 'adapter.safetensors'))).toBe(true);
  });

  it('instruction: --validation, --mask-prompt, --show prints held-out responses', async () => {
    const train = path.join(tmp, 'train.json');
    const val = path.join(tmp, 'val.jsonl');
    fs.writeFileSync(train, JSON.stringify(Array.from({ length: 8 }, (_, i) => ({ instruction: `Count to ${i}.`, input: '', output: `${i}` }))));
    jsonl(val, [{ prompt: 'Say hi.', completion: 'hi' }]);
    const out = path.join(tmp, 'inst');
    const r = await cli('--data', train, '--validation', val, '--out', out, '--mask-prompt', '--epochs', '1', '--batch-size', '4', '--lr', '1e-3', '--show', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('### Instruction:\nSay hi.\n\nCorrect response:\n>> hi\n\nModel response:\n>> ');
    expect(loadCheckpoint(out).config.chatTemplate).toBe('alpaca');
    expect(readMetrics(out).filter((m) => m.val_loss !== null).map((m) => m.step)).toEqual([0, 2]);
  });

  it('kill -9 mid-run, then the same command: the model of an uninterrupted run', async () => {
    const data = path.join(tmp, 'kill.jsonl');
    jsonl(data, Array.from({ length: 16 }, (_, i) => ({ text: `item ${i} is ${i % 2 ? 'odd' : 'even'}`, label: i % 2 ? 'odd' : 'even' })));
    const args = (out: string) => ['--data', data, '--out', out, '--epochs', '6', '--batch-size', '4', '--lr', '1e-2', '--checkpoint-every', '1'];
    const whole = path.join(tmp, 'kill-whole');
    expect((await cli(...args(whole))).code).toBe(0);

    const out = path.join(tmp, 'kill-resumed');
    const ckpts = path.join(`${out}.work`, 'checkpoints');
    // In this process (no malloc re-run), so the kill reaches the process that trains.
    const child = spawn('node', [BIN, 'finetune', '--model', base, '--threads', '1', ...args(out)], { env: { ...process.env, SCRATCHGPT_MALLOC: 'default' }, stdio: 'ignore' });
    let ended = false;
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve((ended = true, code))));
    const checkpoints = () => (fs.existsSync(ckpts) ? fs.readdirSync(ckpts).filter((f) => f.startsWith('step-')).length : 0);
    while (!ended && checkpoints() < 3) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    expect(await exited, 'the run ended before it could be killed').toBe(null);
    expect(fs.existsSync(out)).toBe(false); // it was interrupted
    const r = await cli(...args(out));
    expect(r.code, r.stderr).toBe(0);
    const [a, b] = [materialize(loadCheckpoint(whole).weights), materialize(loadCheckpoint(out).weights)];
    for (const [name, t] of a) expect(Buffer.from(b.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
  });

  it('explains data that does not fit the task', async () => {
    const data = path.join(tmp, 'labels2.jsonl');
    jsonl(data, [{ text: 'a', label: 'x' }, { text: 'b', label: 'y' }]);
    const r = await cli('--data', data, '--out', path.join(tmp, 'bad'), '--task', 'instruction');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--task instruction does not fit the data');
  });
});
