// WebGPU: ONNX Runtime's WebGPU provider gives what the CPU gives, through the public ways in
// (ModelSession + generate, the server, the CLI). Without a GPU it runs on Mesa's software Vulkan
// driver, lavapipe (~60× slower than the CPU provider: tiny models only). Skipped where WebGPU
// cannot start, except under CI (process.env.CI), where .ci/run installs lavapipe and a skip
// would hide a broken install: there it fails.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAlpacaChatFiles } from '../src/model/chat-template.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { generate, type StepResult } from '../src/model/generation.js';
import { writePeftAdapter } from '../src/model/peft-adapter.js';
import { Rng } from '../src/model/rng.js';
import type { Device } from '../src/model/runtime.js';
import { ModelSession } from '../src/model/session.js';
import { encode } from '../src/model/tokenizer.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { loraSpecs } from '../src/train/lora.js';
import { cli } from './helpers/cli.js';
import { skipWithoutWebgpu, webgpuRefusal } from './helpers/webgpu.js';

const TOLERANCE = 1e-4; // logprobs, WebGPU vs CPU (GPT-2 124M measured 5.5e-6)

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

/** A random GPT-2 with weights scaled up so its greedy choices are clear-cut (no near-ties to flip). */
function tinyModel(dir: string, seed: number, overrides: Partial<GPTConfig> = {}): string {
  const config = { ...cfg, ...overrides };
  const params = randomInit(config, seed);
  for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 6));
  saveCheckpoint(dir, config, params);
  return dir;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'webgpu-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const tiny = tinyModel(path.join(tmp, 'tiny'), 3);
const other = tinyModel(path.join(tmp, 'other'), 5, { nLayer: 1, nHead: 4, contextLength: 96 }); // a second model, shaped differently
// A finetuned model: a PEFT LoRA adapter on `tiny`, with the Alpaca chat template finetuning writes.
const tuned = path.join(tmp, 'tuned');
{
  const rng = new Rng(9);
  const adapters = new Map(loraSpecs(cfg, 2).map((s) => [s.name, { shape: s.shape, data: Float32Array.from({ length: s.shape[0]! * s.shape[1]! }, () => rng.normal()) }]));
  writePeftAdapter(tuned, { base: '../tiny', rank: 2, alpha: 4, adapters });
  writeAlpacaChatFiles(tuned, cfg.contextLength);
}


// The probe is the CLI run the last test checks: a child process, so that a provider that crashes
// instead of refusing cannot take the test runner down with it.
const CLI_ARGS = ['generate', '--model', tiny, '--prompt', 'The history of the', '--max-tokens', '8', '--temperature', '0', '--logprobs', '2', '--json'];
const gpuCli = await cli(...CLI_ARGS, '--device', 'webgpu');
const unavailable = webgpuRefusal(gpuCli);
const skip = skipWithoutWebgpu('tests/webgpu.test.ts', unavailable);

/** Same tokens; logprobs (and top alternatives) within TOLERANCE. */
function expectSameSteps(gpu: StepResult[], cpu: StepResult[]): void {
  expect(gpu.map((s) => s.token)).toEqual(cpu.map((s) => s.token));
  gpu.forEach((s, i) => {
    const c = cpu[i]!;
    expect(Math.abs(s.logprob! - c.logprob!), `step ${i}`).toBeLessThan(TOLERANCE);
    expect(s.topLogprobs!.map((t) => t.token)).toEqual(c.topLogprobs!.map((t) => t.token));
    s.topLogprobs!.forEach((t, k) => expect(Math.abs(t.logprob - c.topLogprobs![k]!.logprob), `step ${i} top ${k}`).toBeLessThan(TOLERANCE));
  });
}

describe.skipIf(skip)('WebGPU gives the CPU results', () => {
  it('the WebGPU provider starts (CI installs lavapipe: .ci/run)', () => {
    expect(unavailable, 'WebGPU could not start although CI should have installed lavapipe').toBeUndefined();
    expect(gpuCli.code, gpuCli.stderr).toBe(0);
  });

  it('ModelSession + generate: two sequences in two cache slots, stepped in turn, get the CPU tokens and logprobs', async () => {
    const prompts = [encode('Hello'), encode('Numbers: 1, 2, 3, and then the history of the')];
    const run = async (device: Device) => {
      const model = await ModelSession.load(tiny, { device, slots: 2, threads: 1 });
      try {
        const gens = prompts.map((p, slot) => generate(model, p, { maxTokens: 10 + 8 * slot, temperature: 0, logprobs: 2, ignoreEos: true }, slot));
        const out: StepResult[][] = prompts.map(() => []);
        for (let live = true; live; ) {
          live = false;
          for (const [i, g] of gens.entries()) {
            const r = await g.next();
            if (!r.done) (out[i]!.push(r.value), (live = true));
          }
        }
        return out;
      } finally {
        await model.close();
      }
    };
    const cpu = await run('cpu');
    const gpu = await run('webgpu');
    expect(cpu.map((s) => s.length)).toEqual([10, 18]);
    gpu.forEach((steps, i) => expectSameSteps(steps, cpu[i]!));
  });

  describe('the server', () => {
    let servers: Record<'cpu' | 'webgpu', RunningServer>;
    beforeAll(async () => {
      // Three models each: two base models and the finetuned adapter (each its own model thread).
      const start = (device: Device) => startServer({ modelDirs: [tiny, other, tuned], port: 0, slots: 4, queue: 8, threads: 1, device });
      const [cpu, webgpu] = await Promise.all([start('cpu'), start('webgpu')]);
      servers = { cpu, webgpu };
      await Promise.all([cpu.ready, webgpu.ready]);
    });
    afterAll(() => Promise.all(Object.values(servers ?? {}).map((s) => s.shutdown())));
    const client = (device: Device) => new OpenAI({ baseURL: `${servers[device as 'cpu']!.url}/v1`, apiKey: 'unused', maxRetries: 0 });

    type Choice = { text: string; logprobs: number[] };
    /** One streamed completion; its choices by index. `onFirst` runs at the first chunk. */
    async function streamed(c: OpenAI, req: { model: string; prompt: string; max_tokens: number; n: number }, onFirst?: () => void): Promise<Choice[]> {
      const stream = await c.completions.create({ ...req, temperature: 0, logprobs: 0, ignore_eos: true, stream: true } as OpenAI.CompletionCreateParamsStreaming);
      const choices: Choice[] = Array.from({ length: req.n }, () => ({ text: '', logprobs: [] }));
      for await (const chunk of stream) {
        onFirst?.();
        onFirst = undefined;
        for (const ch of chunk.choices) {
          choices[ch.index]!.text += ch.text;
          choices[ch.index]!.logprobs.push(...((ch.logprobs?.token_logprobs ?? []) as number[]));
        }
      }
      return choices;
    }

    const REQUESTS = [
      { model: 'tiny', prompt: 'The history of the', max_tokens: 24, n: 1 }, // long: the others join its running batch
      { model: 'tiny', prompt: 'Hello', max_tokens: 5, n: 2 },
      { model: 'tiny', prompt: 'Dear Sir or Madam, I write to', max_tokens: 11, n: 3 },
      { model: 'other', prompt: 'Once upon a time there was', max_tokens: 9, n: 2 },
      { model: 'tuned', prompt: 'In 1901, a man', max_tokens: 7, n: 2 },
    ];
    /** The first request starts; once it streams, the rest join it (several models at once). */
    async function concurrent(device: Device): Promise<Choice[][]> {
      const c = client(device);
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      const first = streamed(c, REQUESTS[0]!, started);
      await running;
      return Promise.all([first, ...REQUESTS.slice(1).map((r) => streamed(c, r))]);
    }

    it('concurrent streamed completions (different lengths, n > 1, three models, one a LoRA adapter) give the CPU server’s greedy text', async () => {
      const cpu = await concurrent('cpu');
      const gpu = await concurrent('webgpu');
      REQUESTS.forEach((r, i) => {
        expect(cpu[i]!.map((ch) => ch.logprobs.length)).toEqual(Array(r.n).fill(r.max_tokens));
        expect(gpu[i]!.map((ch) => ch.text), `request ${i} (${r.model})`).toEqual(cpu[i]!.map((ch) => ch.text));
        gpu[i]!.forEach((ch, k) => ch.logprobs.forEach((lp, t) => expect(Math.abs(lp - cpu[i]![k]!.logprobs[t]!), `request ${i} choice ${k} token ${t}`).toBeLessThan(TOLERANCE)));
      });
      // the adapter changes the model: the same prompt on its base gives other logprobs
      const [onBase] = await streamed(client('webgpu'), { ...REQUESTS[4]!, model: 'tiny', n: 1 });
      expect(onBase!.logprobs).not.toEqual(gpu[4]![0]!.logprobs);
      // and the WebGPU server did batch: n > 1 alone puts several sequences in one forward call
      const metrics = await (await fetch(`${servers.webgpu.url}/metrics`)).text();
      for (const model of ['tiny', 'other', 'tuned']) {
        const le1 = Number(new RegExp(`scratchgpt_step_batch_size_bucket\\{model="${model}",le="1"\\} (\\d+)`).exec(metrics)![1]);
        const all = Number(new RegExp(`scratchgpt_step_batch_size_count\\{model="${model}"\\} (\\d+)`).exec(metrics)![1]);
        expect(all - le1, model).toBeGreaterThan(0);
      }
    }, 180_000);

    it('chat on the finetuned adapter (its chat template) answers as on the CPU', async () => {
      const ask = (device: Device) =>
        client(device).chat.completions.create({ model: 'tuned', messages: [{ role: 'user', content: 'Name a primary color.' }], max_tokens: 6, temperature: 0, logprobs: true });
      const [cpu, gpu] = [await ask('cpu'), await ask('webgpu')];
      expect(gpu.choices[0]!.message.content).toBe(cpu.choices[0]!.message.content);
      expect(gpu.usage).toEqual(cpu.usage);
      const lp = (r: typeof cpu) => r.choices[0]!.logprobs!.content!.map((t) => t.logprob);
      lp(gpu).forEach((x, i) => expect(Math.abs(x - lp(cpu)[i]!)).toBeLessThan(TOLERANCE));
    }, 120_000);
  });

  it('`scratchgpt generate --device webgpu` prints the CPU tokens and logprobs', async () => {
    expect(gpuCli.code, gpuCli.stderr).toBe(0);
    const cpuCli = await cli(...CLI_ARGS);
    expect(cpuCli.code, cpuCli.stderr).toBe(0);
    const [a, b] = [JSON.parse(cpuCli.stdout), JSON.parse(gpuCli.stdout)];
    expect(a.tokens.length).toBeGreaterThan(0);
    expect(b.tokens).toEqual(a.tokens);
    expect(b.text).toBe(a.text);
    a.logprobs.forEach((lp: { logprob: number }, i: number) => expect(Math.abs(lp.logprob - b.logprobs[i].logprob)).toBeLessThan(TOLERANCE));
  });
});
