// Training on a device: the forward and backward graphs on WebGPU give the CPU's loss and
// gradients, and `pretrain --device webgpu`, finetuning (runFinetune) and the server's fine-tuning
// jobs (--finetune-device) train, save and load there; AdamW runs on the host either way. Without a GPU, WebGPU
// runs on Mesa's software Vulkan driver, lavapipe (far slower than the CPU provider: tiny
// models only). Skipped where WebGPU cannot start, except under CI (process.env.CI), where .ci/run
// installs lavapipe and a skip would hide a broken install: there it fails.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI, { toFile } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint, type WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { parameterSpecs, randomInit } from '../src/model/gpt.js';
import { Rng } from '../src/model/rng.js';
import type { Device } from '../src/model/runtime.js';
import { ModelSession } from '../src/model/session.js';
import { startServer } from '../src/server/server.js';
import type { AlpacaRecord } from '../src/datasets/index.js';
import type { Batch } from '../src/train/data.js';
import { runFinetune, type FinetuneResult } from '../src/train/finetune.js';
import { FlatLayout } from '../src/train/flat.js';
import { loraSpecs } from '../src/train/lora.js';
import { TrainSession, type TrainSessionOptions } from '../src/train/session.js';
import { cli } from './helpers/cli.js';
import { skipWithoutWebgpu, webgpuRefusal } from './helpers/webgpu.js';

const exec = promisify(execFile);
const TOLERANCE = 1e-4; // relative: loss, and each gradient tensor against its largest CPU element

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-device-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));


// The probe is the pretraining run the first test checks: a child process, so that a provider
// that crashes instead of refusing cannot take the test runner down with it.
const text = path.join(tmp, 'text.txt');
fs.writeFileSync(text, Array.from({ length: 40 }, (_, i) => `Line ${i}: every effort moves you a little further along the road.`).join('\n'));
const pretrainOut = path.join(tmp, 'pretrain');
const TINY = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--context-length', '16', '--batch-size', '2', '--threads', '1'];
const pretrain = await cli('pretrain', '--data', text, '--out', pretrainOut, ...TINY, '--max-steps', '3', '--eval-every', '3', '--eval-batches', '2', '--sample-tokens', '2', '--dropout', '0.1', '--lr', '1e-2', '--device', 'webgpu');
const unavailable = webgpuRefusal(pretrain);
const skip = skipWithoutWebgpu('tests/train-device.test.ts', unavailable);

/** Runs one micro-batch on `device` and returns its loss and gradients (dropout masks from a fixed seed). */
async function lossAndGrads(config: GPTConfig, layout: FlatLayout, params: Float32Array, batch: Batch, device: Device, opts: Partial<TrainSessionOptions> = {}, frozen = new Map<string, WeightSource>()) {
  const session = await TrainSession.create(config, layout, frozen, { device, threads: 1, batchSize: 2, seqLen: 16, train: true, ...opts });
  try {
    const grads = layout.alloc();
    const loss = await session.run(params, batch, { grads, rng: new Rng(11) });
    return { loss, grads };
  } finally {
    await session.close();
  }
}

function expectClose(layout: FlatLayout, cpu: { loss: number; grads: Float32Array }, gpu: { loss: number; grads: Float32Array }): void {
  expect(Math.abs(gpu.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(TOLERANCE);
  for (const seg of layout.segments) {
    const c = layout.view(cpu.grads, seg.name);
    const g = layout.view(gpu.grads, seg.name);
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < c.length; i++) {
      scale = Math.max(scale, Math.abs(c[i]!));
      diff = Math.max(diff, Math.abs(g[i]! - c[i]!));
    }
    expect(scale, `${seg.name}: a zero gradient checks nothing`).toBeGreaterThan(0);
    expect(diff / scale, seg.name).toBeLessThan(TOLERANCE);
  }
}

function randomBatch(seed: number, vocab: number, ignoreEvery: number): Batch {
  const rng = new Rng(seed);
  const tokens = BigInt64Array.from({ length: 32 }, () => BigInt(rng.nextU32() % vocab));
  const targets = BigInt64Array.from({ length: 32 }, (_, i) => (i % ignoreEvery === 3 ? -100n : BigInt(rng.nextU32() % vocab)));
  return { tokens, targets, count: targets.filter((t) => t !== -100n).length };
}

describe.skipIf(skip)('training on WebGPU', () => {
  it('pretrain --device webgpu finishes and its checkpoint loads (CI installs lavapipe: .ci/run)', async () => {
    expect(unavailable, 'WebGPU could not start although CI should have installed lavapipe').toBeUndefined();
    expect(pretrain.code, pretrain.stderr).toBe(0);
    expect(JSON.parse(pretrain.stdout.trim().split('\n').at(-1)!)).toMatchObject({ step: 3, finished: true });
    const metrics = fs.readFileSync(path.join(pretrainOut, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([3]);
    expect(Number.isFinite(metrics[0].val_loss)).toBe(true);
    const ckpt = loadCheckpoint(pretrainOut);
    expect(ckpt.config).toMatchObject({ nLayer: 1, nHead: 2, nEmbd: 16, contextLength: 16 });
    const model = await ModelSession.load(pretrainOut, { threads: 1 });
    await model.close();
    // --device may change on --resume: where the run computes is not part of it
    const resumed = await cli('pretrain', '--out', pretrainOut, '--resume', '--max-steps', '4', '--threads', '1', '--device', 'cpu');
    expect(resumed.code, resumed.stderr).toBe(0);
  });

  const cfg: GPTConfig = { vocabSize: 64, contextLength: 16, nLayer: 1, nHead: 2, nEmbd: 16, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

  it('the loss and every gradient match the CPU: language-model head, with dropout masks', async () => {
    const config = { ...cfg, dropout: 0.1 };
    const layout = new FlatLayout(parameterSpecs(config));
    const params = layout.pack(randomInit(config, 1));
    const batch = randomBatch(5, config.vocabSize, 7);
    expectClose(layout, await lossAndGrads(config, layout, params, batch, 'cpu'), await lossAndGrads(config, layout, params, batch, 'webgpu'));
  });

  it('the loss and every gradient match the CPU: classification head with LoRA adapters', async () => {
    const config = { ...cfg, labels: ['a', 'b', 'c'] };
    const all = randomInit(config, 2);
    const lora = { rank: 2, alpha: 4 };
    const rng = new Rng(3);
    // LoRA factors and the head train; the rest is frozen (initializers), as finetuning's lora method
    const specs = [...loraSpecs(config, lora.rank), ...parameterSpecs(config).filter((s) => s.name === 'score.weight')];
    const layout = new FlatLayout(specs);
    const params = layout.alloc();
    for (let i = 0; i < params.length; i++) params[i] = 0.2 * rng.normal();
    const frozen = new Map<string, WeightSource>([...all].filter(([name]) => name !== 'score.weight').map(([name, t]) => [name, { kind: 'memory', data: t.data, shape: t.shape }]));
    const batch: Batch = { tokens: randomBatch(6, config.vocabSize, 99).tokens, targets: BigInt64Array.from([2n, 0n]), count: 2, lastRows: BigInt64Array.from([9n, 16n + 15n]) };
    const opts = { head: 'classify' as const, lora };
    expectClose(layout, await lossAndGrads(config, layout, params, batch, 'cpu', opts, frozen), await lossAndGrads(config, layout, params, batch, 'webgpu', opts, frozen));
  });

  it('only the targets\' and tokens\' int64 index ops run on the CPU (ORT places nodes without WebGPU kernels there)', async () => {
    // ORT lists its node placements only in verbose logs, which go to the process's stderr: a child process.
    const script = path.join(tmp, 'placements.mts');
    const src = (f: string) => JSON.stringify(path.resolve(import.meta.dirname, '../src', f));
    fs.writeFileSync(
      script,
      `import { createSession } from ${src('model/runtime.ts')};
import { buildTrainGraph } from ${src('train/training-graph.ts')};
import { parameterSpecs } from ${src('model/gpt.ts')};
const config = ${JSON.stringify({ ...cfg, dropout: 0.1 })};
const trainable = new Set(parameterSpecs(config).map((s) => s.name));
const build = () => buildTrainGraph(config, { batchSize: 2, seqLen: 16, trainable, weight: () => { throw new Error('all trainable'); }, train: true, device: 'webgpu' }).graph;
await (await createSession(build, new Map(), { device: 'webgpu', threads: 1 }, { logSeverityLevel: 0, logVerbosityLevel: 0 })).release();
`,
    );
    const { stderr } = await exec(process.execPath, ['--import', 'tsx/esm', script], { cwd: path.resolve(import.meta.dirname, '..'), maxBuffer: 64 << 20 });
    const placements = stderr.split('\n').map((l) => l.replace(/^.*VerifyEachNodeIsAssignedToAnEp\]\s*/, ''));
    const start = placements.findIndex((l) => /^Node\(s\) placed on \[CPUExecutionProvider\]/.test(l));
    const onCpu: string[] = [];
    for (let i = start + 1; start >= 0 && i < placements.length && !placements[i]!.startsWith('Node(s) placed on'); i++) onCpu.push(placements[i]!.split(' ')[0]!);
    expect(onCpu.length, 'the verbose log lists no CPU nodes: did ORT change its log?').toBeGreaterThan(0);
    expect(new Set(onCpu)).toEqual(new Set(['Equal', 'Where', 'Reshape', 'Unsqueeze']));
  });

  it('finetuning (runFinetune, the fine-tuning jobs engine) on WebGPU follows the CPU run and its model loads', async () => {
    const base = path.join(tmp, 'base');
    const config: GPTConfig = { ...cfg, vocabSize: 50257, contextLength: 48 };
    saveCheckpoint(base, config, randomInit(config, 4));
    const words = ['apple', 'river', 'stone', 'cloud', 'tiger', 'maple'];
    const records: AlpacaRecord[] = words.map((w) => ({ instruction: `Repeat ${w}.`, input: '', output: `${w} ${w}` }));
    const run = (device: Device): Promise<FinetuneResult> =>
      runFinetune({
        baseModelDir: base,
        outDir: path.join(tmp, `tuned-${device}`),
        workDir: path.join(tmp, `tuned-${device}.work`),
        task: { type: 'instruction' },
        method: { type: 'lora', rank: 2, alpha: 4 },
        train: records.slice(0, 4),
        validation: records.slice(4),
        epochs: 2,
        batchSize: 2,
        lr: 1e-2,
        seed: 7,
        threads: 1,
        device,
      });
    const [cpu, gpu] = [await run('cpu'), await run('webgpu')];
    expect(gpu.steps).toBe(4);
    expect(Math.abs(gpu.finalTrainLoss - cpu.finalTrainLoss) / cpu.finalTrainLoss).toBeLessThan(1e-3);
    expect(Math.abs(gpu.finalValLoss! - cpu.finalValLoss!) / cpu.finalValLoss!).toBeLessThan(1e-3);
    const model = await ModelSession.load(gpu.outDir, { threads: 1 });
    await model.close();
  });

  it('a fine-tuning job of the server trains on --finetune-device webgpu and its model answers', async () => {
    const dir = path.join(tmp, 'served');
    saveCheckpoint(dir, { ...cfg, vocabSize: 50257, contextLength: 48 }, randomInit({ ...cfg, vocabSize: 50257, contextLength: 48 }, 5));
    const server = await startServer({ modelDirs: [dir], port: 0, slots: 1, queue: 4, threads: 1, finetuneThreads: 1, finetuneDevice: 'webgpu', dataDir: path.join(tmp, 'data') });
    try {
      await server.ready;
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const lines = Array.from({ length: 4 }, (_, i) => JSON.stringify({ instruction: `Name ${i}.`, input: '', output: `It is ${i}.` })).join('\n');
      const file = await client.files.create({ file: await toFile(Buffer.from(lines), 'train.jsonl'), purpose: 'fine-tune' });
      let job = await client.fineTuning.jobs.create({ model: 'served', training_file: file.id, hyperparameters: { n_epochs: 1, batch_size: 2 } });
      for (const deadline = Date.now() + 120_000; !['succeeded', 'failed', 'cancelled'].includes(job.status); ) {
        if (Date.now() > deadline) throw new Error(`the job is still ${job.status}`);
        await new Promise((r) => setTimeout(r, 100));
        job = await client.fineTuning.jobs.retrieve(job.id);
      }
      expect([job.status, job.error]).toEqual(['succeeded', null]);
      const answer = await client.completions.create({ model: job.fine_tuned_model!, prompt: 'It is', max_tokens: 2, temperature: 0 });
      expect(answer.choices[0]!.text.length).toBeGreaterThan(0);
    } finally {
      await server.shutdown();
    }
  });
});
