// The `scratchgpt generate` command, run as users run it (a child process), on a tiny checkpoint.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { generate } from '../src/model/generation.js';
import { ModelSession } from '../src/model/session.js';
import { decode } from '../src/model/tokenizer.js';
import { cli } from './helpers/cli.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 48, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-test-'));
  const params = randomInit(cfg, 11);
  for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 40)); // peaked distributions
  saveCheckpoint(dir, cfg, params);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));


describe('scratchgpt generate', () => {
  it('prints one JSON object with tokens, text, finish_reason and sorted top logprobs', async () => {
    const r = await cli('generate', '--model', dir, '--prompt-tokens', '15496,11,995', '--max-tokens', '6', '--temperature', '0', '--logprobs', '3', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out).sort()).toEqual(['finish_reason', 'logprobs', 'prompt_tokens', 'text', 'tokens']);
    expect(out.prompt_tokens).toEqual([15496, 11, 995]);
    expect(out.tokens.length).toBeLessThanOrEqual(6);
    expect(out.logprobs).toHaveLength(out.tokens.length);
    for (const [i, lp] of out.logprobs.entries()) {
      expect(lp.token).toBe(out.tokens[i]);
      expect(lp.top_logprobs).toHaveLength(3);
      const values = lp.top_logprobs.map((t: { logprob: number }) => t.logprob);
      expect(values).toEqual([...values].sort((a, b) => b - a));
      expect(lp.top_logprobs[0].token).toBe(lp.token); // greedy picks the most likely token
      expect(lp.logprob).toBeCloseTo(values[0], 6);
    }

    // the same greedy run in-process gives the same tokens
    const model = await ModelSession.load(dir);
    const tokens: number[] = [];
    for await (const s of generate(model, [15496, 11, 995], { maxTokens: 6, temperature: 0 })) tokens.push(s.token);
    await model.close();
    expect(out.tokens).toEqual(tokens);
    if (out.finish_reason === 'length') expect(out.text).toBe(decode(tokens));
  });

  it('streams the same text as --json, and a seed reproduces a sampled run', async () => {
    const args = ['generate', '--model', dir, '--prompt', 'The meaning of life is', '--max-tokens', '8', '--seed', '42', '--top-k', '20', '--top-p', '0.9'];
    const [streamed, json, again] = await Promise.all([cli(...args), cli(...args, '--json'), cli(...args, '--json')]);
    expect(streamed.code).toBe(0);
    expect(JSON.parse(json.stdout).tokens).toEqual(JSON.parse(again.stdout).tokens);
    expect(streamed.stdout).toBe(JSON.parse(json.stdout).text + '\n');
    expect(JSON.parse(json.stdout).prompt_tokens).toEqual([464, 3616, 286, 1204, 318]);
  });

  it('stops at a stop string without printing it', async () => {
    const base = JSON.parse((await cli('generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '12', '--temperature', '0', '--json')).stdout);
    const text: string = base.text;
    if (text.length < 4) return; // the model ended at once: nothing to cut
    const stop = text.slice(2, 4);
    const cut = JSON.parse((await cli('generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '12', '--temperature', '0', '--stop', stop, '--json')).stdout);
    expect(cut.finish_reason).toBe('stop');
    expect(cut.text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it('refuses prompt + max_tokens beyond the context window before generating', async () => {
    const r = await cli('generate', '--model', dir, '--prompt-tokens', '1,2,3', '--max-tokens', '46');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/maximum context length is 48 tokens. However, you requested 49 tokens \(3 in the prompt, 46 for the completion\)/);
    expect(r.stdout).toBe('');
  });

  it('gives clear errors for bad options and a missing execution provider', async () => {
    expect((await cli('generate', '--model', dir)).stderr).toMatch(/exactly one of --prompt and --prompt-tokens/);
    expect((await cli('generate', '--model', dir, '--prompt', 'x', '--max-tokens', 'many')).stderr).toMatch(/--max-tokens expects a number/);
    expect((await cli('generate', '--model', path.join(dir, 'nope'), '--prompt', 'x')).stderr).toMatch(/config\.json/);
    const cuda = await cli('generate', '--model', dir, '--prompt', 'x', '--device', 'cuda');
    expect(cuda.code).toBe(1);
    expect(cuda.stderr).toMatch(/could not start the cuda execution provider[\s\S]*npm run install:cuda/);
  });

  it('--device webgpu gives the CPU tokens and logprobs (skipped where no WebGPU adapter exists)', async () => {
    const args = ['generate', '--model', dir, '--prompt-tokens', '15496,11,995', '--max-tokens', '5', '--temperature', '0', '--logprobs', '2', '--json'];
    const gpu = await cli(...args, '--device', 'webgpu');
    if (gpu.code === 1 && /could not start the webgpu execution provider/.test(gpu.stderr)) {
      console.log('webgpu test skipped: no WebGPU adapter here (Debian: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1)');
      return;
    }
    expect(gpu.code).toBe(0);
    const [a, b] = [JSON.parse((await cli(...args)).stdout), JSON.parse(gpu.stdout)];
    expect(b.tokens).toEqual(a.tokens);
    a.logprobs.forEach((lp: { logprob: number }, i: number) => expect(Math.abs(lp.logprob - b.logprobs[i].logprob)).toBeLessThan(1e-4));
  });
});

describe('scratchgpt convert', () => {
  it('writes an F16 folder half the size whose weights round-trip to the F32 values at half precision', async () => {
    const out = path.join(dir, '..', path.basename(dir) + '-f16');
    try {
      const r = await cli('convert', '--model', dir, '--out', out, '--dtype', 'f16');
      expect(r.code).toBe(0);
      const [f32, f16] = [dir, out].map((d) => fs.statSync(path.join(d, 'model.safetensors')).size);
      expect(f16! / f32!).toBeGreaterThan(0.49);
      expect(f16! / f32!).toBeLessThan(0.51);
      expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe('float16');
      const [a, b] = [dir, out].map((d) => materialize(loadCheckpoint(d).weights));
      for (const [name, t] of a!) {
        const h = b!.get(name)!.data;
        // float16 keeps 11 significant bits: relative error ≤ 2^-11 (plus subnormals near 0)
        const worst = t.data.reduce((w, x, i) => Math.max(w, Math.abs(h[i]! - x) - (Math.abs(x) * 2 ** -11 + 6e-8)), -Infinity);
        expect(worst, name).toBeLessThanOrEqual(0);
      }
      expect((await cli('convert', '--model', dir, '--out', dir)).stderr).toMatch(/--out must differ from --model/);
      expect((await cli('convert', '--model', dir, '--out', out, '--dtype', 'F8')).stderr).toMatch(/--dtype must be one of F32, F16, BF16/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
  it('turns an adapter folder into a full model that keeps its chat template and its base’s generation defaults', async () => {
    const adapter = path.resolve(import.meta.dirname, '../weights/scratchgpt-brown-instruct');
    const base = path.join(dir, '..', `${path.basename(dir)}-base`);
    const out = path.join(dir, '..', `${path.basename(dir)}-merged`);
    const copy = path.join(dir, '..', `${path.basename(dir)}-adapter`);
    try {
      // The adapter on a copy of its base that has a generation_config.json of its own.
      fs.cpSync(path.resolve(adapter, '../scratchgpt-brown'), base, { recursive: true });
      fs.cpSync(adapter, copy, { recursive: true });
      fs.rmSync(path.join(copy, 'generation_config.json'));
      const adapterConfig = JSON.parse(fs.readFileSync(path.join(copy, 'adapter_config.json'), 'utf8'));
      fs.writeFileSync(path.join(copy, 'adapter_config.json'), JSON.stringify({ ...adapterConfig, base_model_name_or_path: base }));
      fs.writeFileSync(path.join(base, 'generation_config.json'), JSON.stringify({ max_new_tokens: 7 }));
      const r = await cli('convert', '--model', copy, '--out', out, '--dtype', 'F32');
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')).toBe(fs.readFileSync(path.join(adapter, 'tokenizer_config.json'), 'utf8'));
      expect(JSON.parse(fs.readFileSync(path.join(out, 'generation_config.json'), 'utf8'))).toMatchObject({ max_new_tokens: 7, stop_strings: ['\n\n### '] });
      const [merged, converted] = [copy, out].map((d) => materialize(loadCheckpoint(d).weights));
      for (const [name, t] of merged!) expect(Buffer.from(converted!.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    } finally {
      for (const d of [base, out, copy]) fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
