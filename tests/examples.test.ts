// examples/instructions.jsonl, the instruction dataset the README finetunes on: it parses as
// Alpaca records with the project's dataset parser, `finetune --data` trains on it (a tiny random
// model, one short epoch), and the result chats.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDataset } from '../src/datasets/index.js';
import type { AlpacaRecord } from '../src/datasets/records.js';
import { loadChatTemplate } from '../src/model/chat-template.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/scratchgpt.js');
const FILE = path.join(ROOT, 'examples/instructions.jsonl');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'examples-'));
const base = path.join(tmp, 'base');
beforeAll(() => {
  const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
  saveCheckpoint(base, cfg, randomInit(cfg, 3));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('examples/instructions.jsonl', () => {
  it('parses as 60 to 120 distinct Alpaca records, each with an instruction and an answer', () => {
    const ds = parseDataset(fs.readFileSync(FILE), 'instructions.jsonl');
    expect(ds.format).toBe('alpaca');
    expect(ds.container).toBe('jsonl');
    const records = ds.records as AlpacaRecord[];
    expect(records.length).toBeGreaterThanOrEqual(60);
    expect(records.length).toBeLessThanOrEqual(120);
    for (const r of records) {
      expect(r.instruction.trim(), JSON.stringify(r)).not.toBe('');
      expect(r.output.trim(), JSON.stringify(r)).not.toBe('');
    }
    expect(new Set(records.map((r) => `${r.instruction}\n${r.input ?? ''}`)).size).toBe(records.length);
  });

  it('finetune --data trains on it, and the finetuned model chats', async () => {
    const out = path.join(tmp, 'ft');
    const env = { ...process.env, SCRATCHGPT_MALLOC: 'default' };
    const r = await exec(process.execPath, [BIN, 'finetune', '--model', base, '--data', FILE, '--split', '90/10', '--out', out, '--epochs', '1', '--batch-size', '16', '--lr', '1e-3', '--threads', '1'], { env });
    const lines = fs.readFileSync(FILE, 'utf8').trim().split('\n').length;
    const train = Math.round(lines * 0.9);
    expect(r.stderr).toContain(`data: ${train} training, ${lines - train} validation, 0 test records; instruction, all parameters`);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(summary.steps).toBe(Math.floor(train / 16)); // whole batches, as the book's drop_last
    expect(Number.isFinite(summary.final_val_loss)).toBe(true);
    expect(loadChatTemplate(out)).toBeDefined(); // the Alpaca template travels with the model

    const chat = exec(process.execPath, [BIN, 'chat', '--model', out, '--max-tokens', '3', '--temperature', '0', '--threads', '1', '--verbose'], { env });
    chat.child.stdin!.end('Convert 3 weeks to days.\n');
    expect((await chat).stderr).toMatch(/^\[prompt \d+ tokens, answer [1-3] tokens \((stop|length)\)/m);
  });
});
