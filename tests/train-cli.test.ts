// `scratchgpt pretrain` and `scratchgpt prepare-brown` as users run them (child processes), on a
// tiny model: metrics.jsonl, loss.svg, a loadable checkpoint, and --resume.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { BROWN_DIR } from '../src/datasets/brown.js';

const exec = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pretrain-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await exec('node', [BIN, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

const text = Array.from({ length: 60 }, (_, i) => `Line ${i}: every effort moves you a little further along the road.`).join('\n');

describe('scratchgpt pretrain', () => {
  const data = path.join(tmp, 'text.txt');
  const out = path.join(tmp, 'run');
  const tiny = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--context-length', '16', '--batch-size', '2', '--threads', '1'];

  it('writes metrics.jsonl, loss.svg and a loadable checkpoint', async () => {
    fs.writeFileSync(data, text);
    const r = await cli('pretrain', '--data', data, '--out', out, ...tiny, '--max-steps', '4', '--eval-every', '2', '--lr', '1e-2', '--sample-tokens', '3', '--dropout', '0.1');
    expect(r.code, r.stderr).toBe(0);
    const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([2, 4]);
    for (const m of metrics) {
      for (const k of ['step', 'epoch', 'tokens_seen', 'train_loss', 'val_loss', 'lr']) expect(m, k).toHaveProperty(k);
      expect(m.tokens_seen).toBe(m.step * 2 * 16);
      expect(Math.abs(m.val_perplexity / Math.exp(m.val_loss) - 1)).toBeLessThan(1e-4);
      expect(m.sample.startsWith('Every effort moves you')).toBe(true);
    }
    expect(metrics[1].train_loss).toBeLessThan(metrics[0].train_loss);
    const svg = fs.readFileSync(path.join(out, 'loss.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('validation loss');
    expect((svg.match(/<polyline/g) ?? []).length).toBe(2);
    expect(loadCheckpoint(out).config).toMatchObject({ nLayer: 1, nHead: 2, nEmbd: 16, contextLength: 16, qkvBias: false });
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({ step: 4, finished: true });
  });

  it('--resume continues the saved run and appends to the metrics', async () => {
    const r = await cli('pretrain', '--out', out, '--resume', '--max-steps', '6', '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    const steps = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([2, 4, 6]);
    expect(r.stderr).toContain('resumed');
  });

  it('refuses a second run into the same folder, and changing the model on resume', async () => {
    expect((await cli('pretrain', '--data', data, '--out', out, ...tiny, '--max-steps', '1')).stderr).toMatch(/--resume/);
    expect((await cli('pretrain', '--out', out, '--resume', '--n-layer', '2')).stderr).toMatch(/cannot change/);
  });

  it('--untied-head --init-scheme pytorch: a new model with its own lm_head, loadable and resumable; refused elsewhere', async () => {
    const book = path.join(tmp, 'book');
    const r = await cli('pretrain', '--data', data, '--out', book, ...tiny, '--untied-head', '--init-scheme', 'pytorch', '--max-steps', '2', '--eval-every', '1', '--lr', '4e-4', '--sample-tokens', '2');
    expect(r.code, r.stderr).toBe(0);
    const ck = loadCheckpoint(book);
    expect(ck.config.tieWordEmbeddings).toBe(false);
    expect(ck.weights.has('lm_head.weight')).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(book, 'config.json'), 'utf8')).tie_word_embeddings).toBe(false);
    const resumed = await cli('pretrain', '--out', book, '--resume', '--max-steps', '3', '--threads', '1');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((await cli('pretrain', '--out', book, '--resume', '--untied-head')).stderr).toMatch(/--untied-head cannot change on --resume/);
    expect((await cli('pretrain', '--out', book, '--resume', '--init-scheme', 'gpt2')).stderr).toMatch(/--init-scheme cannot change on --resume/);
    const fresh = path.join(tmp, 'fresh');
    expect((await cli('pretrain', '--data', data, '--out', fresh, '--init', out, '--untied-head')).stderr).toMatch(/--untied-head contradicts the loaded model/);
    expect((await cli('pretrain', '--data', data, '--out', fresh, '--init', book, '--init-scheme', 'pytorch')).stderr).toMatch(/--init-scheme applies to a new model only/);
    expect((await cli('pretrain', '--data', data, '--out', fresh, ...tiny, '--init-scheme', 'xavier')).stderr).toMatch(/--init-scheme must be one of gpt2, pytorch/);
    expect((await cli('pretrain', '--help')).stdout).toMatch(/--untied-head[\s\S]*--init-scheme S/);
  });
});

describe.skipIf(!fs.existsSync(BROWN_DIR))('scratchgpt prepare-brown', () => {
  it('writes the corpus as plain text', async () => {
    const file = path.join(tmp, 'brown.txt');
    const r = await cli('prepare-brown', '--out', file);
    expect(r.code, r.stderr).toBe(0);
    const brown = fs.readFileSync(file, 'utf8');
    expect(brown.startsWith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.')).toBe(true);
    expect(brown.split('<|endoftext|>')).toHaveLength(500);
    expect(brown).not.toMatch(/\/(nn|at|vbd)\b/);
  });
});
