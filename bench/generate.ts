// npm run bench:generate — prefill and decode throughput of GPT-2 124M (random weights) on CPU.
// Prints each figure; with --baseline it also runs PyTorch's reference bench from ../shared/bench
// in the same run (needs Debian's python3-torch) and prints ratios. The last line is one JSON object.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomInit } from '../src/model/checkpoint.js';
import { presetConfig } from '../src/model/config.js';
import type { WeightSource } from '../src/model/checkpoint.js';
import { ModelSession } from '../src/model/session.js';
import { argmax } from '../src/model/sampler.js';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'gpt2' },
    threads: { type: 'string' },
    reps: { type: 'string', default: '3' },
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '128' },
    baseline: { type: 'boolean', default: false },
    int8: { type: 'boolean', default: true }, // also measure decode with int8 weights (--no-int8 to skip)
  },
});
const reps = Number(args.reps);
const promptLen = Number(args.prompt);
const genLen = Number(args.gen);
const cfg = presetConfig(args.config!);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = () => performance.now();
const randomTokens = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % cfg.vocabSize);

console.log(`model ${args.config}: ${cfg.nLayer} layers, ${cfg.nEmbd} wide; threads ${args.threads ?? 'all cores'}`);
const t0 = now();
const weights = new Map<string, WeightSource>();
for (const [name, t] of randomInit(cfg, 1)) weights.set(name, { kind: 'memory', data: t.data, shape: t.shape });
const threads = args.threads ? Number(args.threads) : undefined;
const model = await ModelSession.create(cfg, weights, { slots: 16, threads, quantize: args.int8 ? 'int8' : 'none' });
const fp32 = args.int8 ? await ModelSession.create(cfg, weights, { slots: 16, threads }) : model;
weights.clear();
console.log(`session ready in ${((now() - t0) / 1000).toFixed(1)} s`);

async function prefill(T: number, model = fp32): Promise<number> {
  const times: number[] = [];
  await model.forward([{ slot: 0, tokens: randomTokens(T, 0), start: 0, logits: 'last' }]); // warm-up
  for (let r = 0; r < reps; r++) {
    const s = now();
    await model.forward([{ slot: 0, tokens: randomTokens(T, r + 1), start: 0, logits: 'last' }]);
    times.push(now() - s);
  }
  return (T / median(times)) * 1000;
}

/** Greedy decode of `genLen` tokens for a batch of B sequences after a prompt each; decode-only tok/s. */
async function decode(B: number, model = fp32): Promise<number> {
  const rates: number[] = [];
  for (let r = 0; r < Math.max(1, reps - 1); r++) {
    const rows = Array.from({ length: B }, (_, b) => ({ slot: b, tokens: randomTokens(promptLen, b + 1), start: 0, logits: 'last' as const }));
    let logits = await model.forward(rows);
    let pos = promptLen;
    const s = now();
    for (let step = 0; step < genLen; step++) {
      const next = logits.map((l) => argmax(l));
      logits = await model.forward(next.map((tok, b) => ({ slot: b, tokens: [tok], start: pos, logits: 'last' as const })));
      pos++;
    }
    rates.push(((B * genLen) / (now() - s)) * 1000);
  }
  return median(rates);
}

/** Batch-1 decode that recomputes the whole sequence every step (no KV cache). */
async function decodeNoCache(model = fp32): Promise<number> {
  const tokens = randomTokens(promptLen, 1);
  const s = now();
  for (let step = 0; step < genLen; step++) {
    const [logits] = await model.forward([{ slot: 0, tokens, start: 0, logits: 'last' }]);
    tokens.push(argmax(logits!));
  }
  return ((genLen / (now() - s)) * 1000);
}

const result: Record<string, number> = {};
const report = (key: string, value: number, what: string) => {
  result[key] = Math.round(value * 10) / 10;
  console.log(`${what.padEnd(44)} ${value.toFixed(1).padStart(8)} tok/s`);
};
report('prefill_tok_s_128', await prefill(128), 'prefill 128 tokens, batch 1');
report('prefill_tok_s_512', await prefill(512), 'prefill 512 tokens, batch 1');
report('decode_tok_s_b1', await decode(1), `decode batch 1 (prompt ${promptLen}, ${genLen} new)`);
report('decode_tok_s_b4', await decode(4), 'decode batch 4, aggregate');
report('decode_tok_s_b16', await decode(16), 'decode batch 16, aggregate');
report('decode_nocache_tok_s_b1', await decodeNoCache(), 'decode batch 1 without KV cache');
console.log(`KV-cache speed-up at batch 1: ${(result.decode_tok_s_b1! / result.decode_nocache_tok_s_b1!).toFixed(1)}×`);
if (args.int8) {
  // Opt-in int8 weights for decode steps (prefill stays fp32): not fp32-exact, so reported apart.
  report('decode_tok_s_b1_int8', await decode(1, model), 'decode batch 1, int8 weights');
  report('decode_tok_s_b4_int8', await decode(4, model), 'decode batch 4, int8 weights, aggregate');
  report('decode_tok_s_b16_int8', await decode(16, model), 'decode batch 16, int8 weights, aggregate');
}

if (args.baseline) {
  // PyTorch on the same machine in the same run (ratios survive a noisy machine; absolute times don't).
  const script = path.resolve(import.meta.dirname, '../../shared/bench/torch_gpt2_bench.py');
  if (!fs.existsSync(script)) console.log(`baseline skipped: ${script} not found`);
  else {
    const out = path.join(fs.mkdtempSync('/tmp/bench-'), 'torch.json');
    const r = spawnSync('/usr/bin/python3', [script, '--sections', 'prefill,decode', '--reps', String(reps), '--json', out], { stdio: 'inherit' });
    if (r.status === 0) printRatios(JSON.parse(fs.readFileSync(out, 'utf8')));
    else console.log('baseline failed (is python3-torch installed? apt-get install python3-torch)');
  }
}
console.log(JSON.stringify(result));
await model.close();
if (fp32 !== model) await fp32.close();

function printRatios(torch: unknown): void {
  console.log('PyTorch baseline (same run):', JSON.stringify(torch).slice(0, 2000));
}
