// npm run bench:gpu-check — for each device (cpu, webgpu, cuda), agreement with the CPU and
// throughput (decode at batch 1/16/64, prefill of 512 tokens, a training step) on random GPT-2
// 124M and 355M checkpoints written here, so no weights need to travel to a lent GPU machine.
// A device that cannot start, or cannot train, is reported as {"error": …} and the check goes on.
// Progress goes to stderr; stdout gets exactly one JSON line, at the end (fields: docs/gpu.md).
//
//   --devices cpu,webgpu,cuda   devices to try (default all three)
//   --models 124m,355m          model sizes (default both)
//   --quick                     a tiny config and few steps: a dry run of the check itself
//   --steps N                   timed decode steps per batch (after warm-up)
//   --train-steps N             timed training steps (after one warm-up step)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import { parameterCount, presetConfig, type GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { DEVICES, type Device } from '../src/model/runtime.js';
import { argmax, logSumExp } from '../src/model/sampling-kernels.js';
import { ModelSession } from '../src/model/session.js';
import { mallocTuned, rerunWithMallocTuning } from '../src/train/malloc.js';
import { Pretrainer, TRAIN_DEFAULTS } from '../src/train/pretrain.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: 'cpu,webgpu,cuda' },
    models: { type: 'string', default: '124m,355m' },
    quick: { type: 'boolean', default: false },
    steps: { type: 'string' },
    'train-steps': { type: 'string' },
  },
});
if (!mallocTuned()) process.exit(await rerunWithMallocTuning()); // training figures as `pretrain` runs

const quick = args.quick;
const devices = args.devices!.split(',').map((d) => d.trim()) as Device[];
for (const d of devices) if (!DEVICES.includes(d)) throw new Error(`--devices: unknown device '${d}' (known: ${DEVICES.join(', ')})`);
const MODELS: Record<string, string> = { '124m': 'gpt2', '355m': 'gpt2-medium' };
const modelNames = quick ? ['tiny'] : args.models!.split(',').map((m) => m.trim());
for (const m of modelNames) if (m !== 'tiny' && !MODELS[m]) throw new Error(`--models: unknown model '${m}' (known: ${Object.keys(MODELS).join(', ')})`);
// A tiny GPT-2 keeps the dry run short on CPUs and on a software Vulkan driver.
const configOf = (m: string): GPTConfig => (m === 'tiny' ? presetConfig('gpt2', { nLayer: 2, nHead: 2, nEmbd: 64, contextLength: 128 }) : presetConfig(MODELS[m]!));

const P = {
  batches: quick ? [1, 4] : [1, 16, 64],
  prompt: 16, // tokens each decode row starts from
  steps: Number(args.steps ?? (quick ? 4 : 32)),
  warmup: quick ? 1 : 4,
  prefill: quick ? 64 : 512,
  prefillReps: quick ? 2 : 5,
  greedy: 16,
  train: { batch: quick ? 2 : 4, seq: quick ? 32 : 256, steps: Number(args['train-steps'] ?? (quick ? 1 : 3)) },
};

const log = (line: string) => process.stderr.write(`gpu-check: ${line}\n`);
const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const tokensOf = (n: number, seed: number, V: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % V);
const errorOf = (e: unknown) => ({ error: ((e as Error).message ?? String(e)).split('\n')[0]! });

/** Last-position log-probabilities of a fixed prompt, and 16 greedy tokens after it. */
interface Reference {
  logprobs: Float64Array;
  greedy: number[];
  /** Smallest top-1 minus top-2 logit margin along the greedy path: near 0, a flip is rounding, not a bug. */
  minMargin: number;
}

async function reference(model: ModelSession): Promise<Reference> {
  const prompt = tokensOf(32, 3, model.config.vocabSize);
  let [logits] = await model.forward([{ slot: 0, tokens: prompt, start: 0, logits: 'last' }]);
  const lse = logSumExp(logits!);
  const logprobs = Float64Array.from(logits!, (x) => x - lse);
  const greedy: number[] = [];
  let minMargin = Infinity;
  for (let i = 0; i < P.greedy; i++) {
    const top = argmax(logits!);
    let second = -Infinity;
    for (let v = 0; v < logits!.length; v++) if (v !== top && logits![v]! > second) second = logits![v]!;
    minMargin = Math.min(minMargin, logits![top]! - second);
    greedy.push(top);
    [logits] = await model.forward([{ slot: 0, tokens: [top], start: prompt.length + i, logits: 'last' }]);
  }
  return { logprobs, greedy, minMargin };
}

function agreement(cpu: Reference, dev: Reference) {
  let maxAbs = 0;
  for (let v = 0; v < cpu.logprobs.length; v++) maxAbs = Math.max(maxAbs, Math.abs(cpu.logprobs[v]! - dev.logprobs[v]!));
  const same = cpu.greedy.findIndex((t, i) => t !== dev.greedy[i]);
  return { max_abs_logprob_diff: maxAbs, greedy_agree: same < 0, greedy_same_prefix: same < 0 ? P.greedy : same, cpu_min_margin: round(cpu.minMargin, 6) };
}

/** Aggregate decode tok/s at batch B: one token per row per forward(), after a prompt and warm-up. */
async function decode(dir: string, device: Device, B: number): Promise<number> {
  const model = await ModelSession.load(dir, { device, slots: B });
  try {
    const V = model.config.vocabSize;
    let logits = await model.forward(Array.from({ length: B }, (_, b) => ({ slot: b, tokens: tokensOf(P.prompt, b + 1, V), start: 0, logits: 'last' as const })));
    let pos = P.prompt;
    let start = 0;
    for (let step = 0; step < P.warmup + P.steps; step++) {
      if (step === P.warmup) start = now();
      const next = logits.map((l) => argmax(l));
      logits = await model.forward(next.map((t, b) => ({ slot: b, tokens: [t], start: pos, logits: 'last' as const })));
      pos++;
    }
    return (B * P.steps * 1000) / (now() - start);
  } finally {
    await model.close();
  }
}

/** Prefill tok/s of one row of P.prefill tokens (median of a few, after one warm-up). */
async function prefill(model: ModelSession): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r <= P.prefillReps; r++) {
    const s = now();
    await model.forward([{ slot: 0, tokens: tokensOf(P.prefill, r + 1, model.config.vocabSize), start: 0, logits: 'last' }]);
    if (r > 0) times.push(now() - s);
  }
  return (P.prefill * 1000) / median(times);
}

/** Training tok/s: forward, loss, backward and AdamW, median of the timed steps after one warm-up. */
async function train(dir: string, device: Device): Promise<number> {
  const { config, weights } = loadCheckpoint(dir);
  const { batch: B, seq: T, steps } = P.train;
  const tokens = Int32Array.from({ length: B * T * (steps + 2) + 1 }, (_, i) => (i * 7919 + ((i * i) % 104729)) % config.vocabSize);
  const trainer = await Pretrainer.create(config, materialize(weights), { train: tokens, val: new Int32Array(0) },
    { ...TRAIN_DEFAULTS, batchSize: B, seqLen: T, stride: T, maxSteps: 1000 }, { device });
  try {
    const times: number[] = [];
    for (let s = 0; s <= steps; s++) {
      const t = now();
      await trainer.step();
      if (s > 0) times.push(now() - t);
    }
    return (B * T * 1000) / median(times);
  } finally {
    await trainer.close();
  }
}

/** One device on one model: every figure, or the error that stopped it. */
async function checkDevice(dir: string, device: Device, cpuRef: Reference | undefined): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const t0 = now();
  let model: ModelSession;
  try {
    model = await ModelSession.load(dir, { device, slots: 1 });
  } catch (e) {
    return errorOf(e);
  }
  try {
    out.load_s = round((now() - t0) / 1000, 2);
    const ref = await reference(model);
    if (cpuRef) out.agreement = agreement(cpuRef, ref);
    out.prefill_tok_s = round(await prefill(model));
  } catch (e) {
    return { ...out, ...errorOf(e) };
  } finally {
    await model.close();
  }
  const dec: Record<string, number | { error: string }> = {};
  for (const B of P.batches) {
    try {
      dec[`b${B}`] = round(await decode(dir, device, B));
    } catch (e) {
      dec[`b${B}`] = errorOf(e);
    }
    log(`  ${device} decode batch ${B}: ${JSON.stringify(dec[`b${B}`])}`);
  }
  out.decode_tok_s = dec;
  try {
    out.train_tok_s = round(await train(dir, device));
  } catch (e) {
    out.train = errorOf(e); // training graphs may use ops a provider lacks: a finding, not a crash
  }
  return out;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scratchgpt-gpu-check-'));
const result: Record<string, unknown> = {
  node: process.version,
  onnxruntime: ort.env.versions.common,
  backends: ort.listSupportedBackends().map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`),
  host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, tf32_override: process.env.NVIDIA_TF32_OVERRIDE ?? null },
  quick,
  settings: P,
  models: {} as Record<string, unknown>,
};
try {
  for (const name of modelNames) {
    const config = configOf(name);
    const dir = path.join(tmp, name);
    let t = now();
    saveCheckpoint(dir, config, randomInit(config, 1));
    log(`${name}: random checkpoint (${(parameterCount(config) / 1e6).toFixed(1)}M parameters) written in ${((now() - t) / 1000).toFixed(1)} s`);
    // The reference always runs on the CPU, whether or not 'cpu' is among the devices timed.
    const cpu = await ModelSession.load(dir, { device: 'cpu', slots: 1 });
    const cpuRef = await reference(cpu);
    await cpu.close();
    const perDevice: Record<string, unknown> = {};
    for (const device of devices) {
      t = now();
      log(`${name} on ${device} …`);
      perDevice[device] = await checkDevice(dir, device, device === 'cpu' ? undefined : cpuRef);
      log(`${name} on ${device}: ${JSON.stringify(perDevice[device])} (${((now() - t) / 1000).toFixed(0)} s)`);
    }
    (result.models as Record<string, unknown>)[name] = { parameters: parameterCount(config), devices: perDevice };
    fs.rmSync(dir, { recursive: true, force: true });
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
