// npm run bench:train — tokens/s of a full training step (forward, loss, backward, AdamW) on CPU:
// GPT-2 124M at batch 4 × 256 and a small config (4 layers, 4 heads, 256 wide, context 256) at
// batch 8 × 128, the shapes of ../shared/bench's PyTorch baseline (309 and 2,048 tok/s there).
// Random weights and tokens, no dropout, AdamW lr 4e-4 wd 0.1 as the baseline. The machine is
// shared: each step waits for other processes to go quiet, a step during which they used > 5% of
// the CPUs is run again, and the median step counts. The last line is one JSON object.
//
//   --only 124m|small|custom   one case (custom: --n-layer --n-head --n-embd --context --batch --seq)
//   --baseline                 also run the PyTorch train section of ../shared/bench in this run; ratios
//   --candidates               throughput of candidate default models (context 256, batch 8 × 256),
//                              two rounds, with the tokens and Brown epochs 90 minutes would give
//   --steps N                  timed steps per case (default 3 for 124M, 8 otherwise)
//   --profile                  ORT profiling: time per op type, forward+backward run
//   --threads N                intra-op threads (default: all cores)
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { parameterCount, presetConfig, type GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { mallocTuned, rerunWithMallocTuning } from '../src/train/malloc.js';
import { summarizeProfile } from '../src/train/profile.js';
import { Pretrainer, TRAIN_DEFAULTS } from '../src/train/pretrain.js';
import { printComparison, runTorchBaseline } from './torch-baseline.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    candidates: { type: 'boolean', default: false },
    baseline: { type: 'boolean', default: false }, // also run ../shared/bench's PyTorch train section now
    steps: { type: 'string' },
    profile: { type: 'boolean', default: false },
    threads: { type: 'string' },
    'n-layer': { type: 'string', default: '4' },
    'n-head': { type: 'string', default: '4' },
    'n-embd': { type: 'string', default: '256' },
    context: { type: 'string', default: '256' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '128' },
  },
});
if (!mallocTuned()) process.exit(await rerunWithMallocTuning()); // as `pretrain` runs (see src/train/malloc.ts)
const threads = args.threads ? Number(args.threads) : undefined;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// The machine is shared: like ../shared/bench/quiet.py, wait for other processes to go quiet
// before timing, and report the largest share of the CPUs they used during a timed step.
function cpuSeconds(): { busy: number; own: number; at: number } {
  const [, ...f] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const idle = f[3]! + f[4]!; // idle + iowait
  const { user, system } = process.cpuUsage();
  return { busy: (f.reduce((a, b) => a + b, 0) - idle) / 100, own: (user + system) / 1e6, at: performance.now() / 1000 };
}
function foreign(from: ReturnType<typeof cpuSeconds>): number {
  const to = cpuSeconds();
  return Math.max(0, (to.busy - from.busy - (to.own - from.own)) / ((to.at - from.at) * os.cpus().length));
}
async function waitQuiet(threshold = 0.05, timeoutS = 180): Promise<void> {
  const start = performance.now();
  for (;;) {
    const s = cpuSeconds();
    await new Promise((r) => setTimeout(r, 500));
    if (foreign(s) < threshold || performance.now() - start > timeoutS * 1000) return;
  }
}

interface Case {
  key: string;
  what: string;
  config: GPTConfig;
  B: number;
  T: number;
  steps: number;
}

const small = (L: number, H: number, C: number, ctx: number): GPTConfig => ({ ...presetConfig('gpt2'), nLayer: L, nHead: H, nEmbd: C, contextLength: ctx });
const cases: Case[] = [
  { key: 'train_tok_s_124m', what: 'GPT-2 124M, batch 4 × 256', config: presetConfig('gpt2'), B: 4, T: 256, steps: 3 },
  { key: 'train_tok_s_small', what: 'L4 H4 C256 ctx256, batch 8 × 128', config: small(4, 4, 256, 256), B: 8, T: 128, steps: 8 },
  {
    key: 'train_tok_s_custom',
    what: `L${args['n-layer']} H${args['n-head']} C${args['n-embd']} ctx${args.context}, batch ${args.batch} × ${args.seq}`,
    config: small(Number(args['n-layer']), Number(args['n-head']), Number(args['n-embd']), Number(args.context)),
    B: Number(args.batch),
    T: Number(args.seq),
    steps: 8,
  },
];
const selected = args.only ? cases.filter((c) => c.key === `train_tok_s_${args.only}`) : cases.slice(0, 2);
if (!selected.length) throw new Error(`--only must be 124m, small or custom`);

/** Times `steps` clean steps of a fresh trainer; returns the median tok/s. */
async function measure(c: Case, steps: number, quietLog = false): Promise<number> {
  // Random tokens: enough windows for warm-up + timed (and retried) steps in one epoch.
  const n = c.B * c.T * (3 * steps + 2) + 1;
  const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7919 + ((i * i) % 104729)) % c.config.vocabSize);
  const t0 = performance.now();
  const trainer = await Pretrainer.create(
    c.config,
    randomInit(c.config, 1),
    { train: tokens, val: new Int32Array(0) },
    { ...TRAIN_DEFAULTS, batchSize: c.B, seqLen: c.T, stride: c.T, maxSteps: 1000, lr: 4e-4, minLr: 4e-4 },
    { threads },
    args.profile ? { profile: '/tmp/scratchgpt-train-profile' } : {},
  );
  const params = trainer.layout.segments.reduce((s, x) => s + x.size, 0);
  const log = (line: string) => quietLog || console.log(line);
  log(`${c.what}: ${(params / 1e6).toFixed(1)}M parameters, session ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const rates: number[] = [];
  const phases: Record<string, number[]> = {};
  let disturbed = 0;
  for (let s = 0; rates.length < steps; s++) {
    await waitQuiet();
    const load = cpuSeconds();
    const t = performance.now();
    const r = await trainer.step();
    const ms = performance.now() - t;
    const other = foreign(load);
    const line = `${ms.toFixed(0)} ms, ${((c.B * c.T * 1000) / ms).toFixed(0)} tok/s, loss ${r.loss.toFixed(3)}, foreign CPU ${other.toFixed(2)}`;
    if (s === 0) {
      log(`  warm-up step: ${line}`);
      continue;
    }
    if (other > 0.05 && disturbed < 2 * steps) {
      disturbed++; // another process took CPU time during the step: not counted, run another
      log(`  step ${s}: ${line} (disturbed, not counted)`);
      continue;
    }
    rates.push((c.B * c.T * 1000) / ms);
    for (const [k, v] of Object.entries(r.timings)) (phases[k] ??= []).push(v);
    log(`  step ${s}: ${line}`);
  }
  log(`  median phases: ${Object.entries(phases).map(([k, v]) => `${k} ${median(v).toFixed(0)} ms`).join(', ')}`);
  if (args.profile) console.log(summarizeProfile(await trainer.endProfiling()));
  await trainer.close();
  return median(rates);
}

if (args.candidates) {
  // Default-model candidates: GPT-2 vocabulary, context 256, trained at batch 8 × 256.
  const BROWN_TRAIN_TOKENS = 1_160_269; // prepare-brown's text, the first 90% of the characters
  const shapes: [number, number, number][] = [[4, 4, 256], [6, 4, 256], [4, 6, 384], [6, 6, 384], [8, 6, 384], [4, 8, 512], [6, 8, 512]];
  const rows = shapes.map(([L, H, C]) => ({ L, H, C, config: small(L, H, C, 256), rates: [] as number[] }));
  for (let round = 0; round < 2; round++) {
    for (const r of rows) {
      const rate = await measure({ key: '', what: `L${r.L} H${r.H} C${r.C}`, config: r.config, B: 8, T: 256, steps: 4 }, args.steps ? Number(args.steps) : 4, true);
      r.rates.push(rate);
      console.log(`round ${round + 1}: L${r.L} H${r.H} C${r.C} ${rate.toFixed(0)} tok/s`);
    }
  }
  console.log('\n| layers | heads | width | parameters | tok/s (two rounds) | tokens in 90 min | Brown epochs |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const rate = r.rates.reduce((a, b) => a + b, 0) / r.rates.length; // mean of the rounds
    const params = parameterCount(r.config);
    const tokens = rate * 90 * 60;
    console.log(`| ${r.L} | ${r.H} | ${r.C} | ${(params / 1e6).toFixed(1)}M | ${r.rates.map((x) => x.toFixed(0)).join(' / ')} | ${(tokens / 1e6).toFixed(1)}M | ${(tokens / BROWN_TRAIN_TOKENS).toFixed(1)} |`);
  }
  process.exit(0);
}

const result: Record<string, number> = {};
for (const c of selected) {
  result[c.key] = Math.round((await measure(c, args.steps ? Number(args.steps) : c.steps)) * 10) / 10;
  console.log(`${c.what.padEnd(40)} ${result[c.key]!.toFixed(1).padStart(8)} tok/s`);
}
if (args.baseline && !args.only) {
  const torch = runTorchBaseline(['train'], 5);
  if (typeof torch === 'string') console.log(`baseline skipped: ${torch}`);
  else
    Object.assign(result, printComparison(result, torch, {
      train_tok_s_124m: 'train 124M B=4 T=256: throughput',
      train_tok_s_small: 'train small(L4,H4,C256) B=8 T=128: throughput',
    }));
}
console.log(JSON.stringify(result));
