// npm run bench:generate — prefill and decode throughput of GPT-2 124M (random weights) on CPU.
// Prints each figure; the last line is one JSON object. --baseline runs other engines on the same
// weights in the same run and prints ratios: `torch` (PyTorch's reference bench from ../shared/bench,
// needs Debian's python3-torch), `llamacpp` (llama.cpp's llama-bench and llama-batched-bench, built
// as ../shared/bench/llamacpp/README.md says; the checkout is $LLAMA_CPP_DIR, /tmp/llama.cpp by
// default), or both: `--baseline torch,llamacpp`. With llamacpp, batch-1 decode is also run in
// pairs back to back with llama-bench's tg128 (`--pairs N`, 7 by default; 0 skips them).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { presetConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { generate } from '../src/model/generation.js';
import { DEFAULT_DRAFT_TOKENS, ModelSession, type SessionOptions } from '../src/model/session.js';
import { argmax } from '../src/model/sampling-kernels.js';
import { printComparison, runTorchBaseline } from './torch-baseline.js';
import { llamaBenchTg128, prepareLlamaCpp, printLlamaCppComparison, runLlamaCppBaseline, type GgufType, type LlamaCpp } from './llamacpp-baseline.js';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'gpt2' },
    threads: { type: 'string' },
    reps: { type: 'string', default: '3' },
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '128' },
    baseline: { type: 'string', default: '' }, // torch, llamacpp or torch,llamacpp
    int8: { type: 'boolean', default: true }, // also measure decode with int8 weights (--no-int8 to skip)
    int4: { type: 'boolean', default: true }, // and with int4 weights (--no-int4 to skip)
    draft: { type: 'boolean', default: true }, // and fp32 with an int8 draft (--no-draft to skip)
    pairs: { type: 'string', default: '7' }, // with --baseline llamacpp: batch-1 runs interleaved with llama-bench tg128 runs
  },
  allowNegative: true, // --no-int8, --no-int4, --no-draft
});
const reps = Number(args.reps);
const promptLen = Number(args.prompt);
const genLen = Number(args.gen);
const cfg = presetConfig(args.config!);
const baselines = new Set(args.baseline!.split(',').map((b) => b.trim()).filter(Boolean));
for (const b of baselines) if (b !== 'torch' && b !== 'llamacpp') throw new Error(`--baseline ${b}: expected torch, llamacpp or torch,llamacpp`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = () => performance.now();
const randomTokens = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % cfg.vocabSize);

console.log(`model ${args.config}: ${cfg.nLayer} layers, ${cfg.nEmbd} wide; threads ${args.threads ?? 'all cores'}`);
// A real checkpoint on disk (random weights, cached between runs), loaded the way users load one.
const dir = path.join(os.tmpdir(), `scratchgpt-bench-${args.config}`);
const written = !fs.existsSync(path.join(dir, 'config.json'));
if (written) {
  console.log(`writing a random ${args.config} checkpoint to ${dir} …`);
  saveCheckpoint(dir, cfg, randomInit(cfg, 1));
}
const threads = args.threads ? Number(args.threads) : undefined;
const t0 = now();
const fp32 = await ModelSession.load(dir, { slots: 16, threads });
const weightMB = (fs.statSync(path.join(dir, 'model.safetensors')).size / 1e6).toFixed(0);
console.log(`loaded in ${((now() - t0) / 1000).toFixed(2)} s; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB for ${weightMB} MB of weights${written ? ' (includes writing the checkpoint: rerun for the load-only peak)' : ''}`);

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

/**
 * Greedy decode of `genLen` tokens for a batch of B sequences after a prompt each; decode-only
 * tok/s, the median of `reps` runs after one untimed warm-up run (as llama-bench warms up): a
 * session's first runs set up its memory, which the first timed run would otherwise pay for.
 */
async function decode(B: number, model = fp32, prompt = promptLen): Promise<number> {
  const rates: number[] = [];
  for (let r = -1; r < reps; r++) {
    const rows = Array.from({ length: B }, (_, b) => ({ slot: b, tokens: randomTokens(prompt, b + 1), start: 0, logits: 'last' as const }));
    let logits = await model.forward(rows);
    let pos = prompt;
    const s = now();
    for (let step = 0; step < genLen; step++) {
      const next = logits.map((l) => argmax(l));
      logits = await model.forward(next.map((tok, b) => ({ slot: b, tokens: [tok], start: pos, logits: 'last' as const })));
      pos++;
    }
    if (r >= 0) rates.push(((B * genLen) / (now() - s)) * 1000);
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
// llama-bench's tg128 decodes from an empty cache: the same, after a one-token prompt (a shorter cache to read)
report('decode_tok_s_b1_empty', await decode(1, fp32, 1), 'decode batch 1, from an empty context');
report('decode_tok_s_b4', await decode(4), 'decode batch 4, aggregate');
report('decode_tok_s_b16', await decode(16), 'decode batch 16, aggregate');
report('decode_nocache_tok_s_b1', await decodeNoCache(), 'decode batch 1 without KV cache');
console.log(`KV-cache speed-up at batch 1: ${(result.decode_tok_s_b1! / result.decode_nocache_tok_s_b1!).toFixed(1)}×`);
// Opt-in int8 and int4 weights for decode steps (prefill stays fp32): not fp32-exact, so reported
// apart; one quantized model loaded at a time.
for (const bits of [8, 4] as const) {
  if (!(bits === 8 ? args.int8 : args.int4)) continue;
  const model = await ModelSession.load(dir, { slots: 16, threads, quantize: `int${bits}` });
  report(`decode_tok_s_b1_int${bits}`, await decode(1, model), `decode batch 1, int${bits} weights`);
  report(`decode_tok_s_b1_int${bits}_empty`, await decode(1, model, 1), `decode batch 1, int${bits}, from an empty context`);
  report(`decode_tok_s_b4_int${bits}`, await decode(4, model), `decode batch 4, int${bits} weights, aggregate`);
  report(`decode_tok_s_b16_int${bits}`, await decode(16, model), `decode batch 16, int${bits} weights, aggregate`);
  await model.close();
}

// Speculative decoding (src/model/speculative.ts): fp32's own tokens, drafted on int8 weights,
// through generate() as the CLI and a lone server request run it; decode-only tok/s, the median of
// --reps runs after a warm-up run, beside plain fp32 decoding through the same path. Greedy, and
// sampled at temperature 1 (seeded): random weights give flat distributions, the draft's worst case.
async function generated(model: ModelSession, prompt: number, temperature = 0): Promise<{ tokS: number; tokens: number[] }> {
  const tokens: number[] = [];
  let first = 0;
  for await (const s of generate(model, randomTokens(prompt, 1), { maxTokens: genLen + 1, temperature, seed: 1, ignoreEos: true })) {
    if (!tokens.length) first = now(); // the prefill's token: decoding starts here
    tokens.push(s.token);
  }
  return { tokS: (genLen / (now() - first)) * 1000, tokens };
}
if (args.draft) {
  const drafted = await ModelSession.load(dir, { slots: 1, threads, draft: 'int8' });
  let same = true;
  const runs = [[promptLen, 0, '', `prompt ${promptLen}`], [1, 0, '_empty', 'empty context'], [1, 1, '_empty_t1', 'empty context, T=1']] as const;
  for (const [prompt, temperature, suffix, what] of runs) {
    const [plainRates, draftRates] = [[] as number[], [] as number[]];
    for (let r = -1; r < reps; r++) {
      const [a, b] = [await generated(fp32, prompt, temperature), await generated(drafted, prompt, temperature)];
      same &&= a.tokens.join() === b.tokens.join();
      if (r >= 0) [plainRates.push(a.tokS), draftRates.push(b.tokS)];
    }
    report(`decode_tok_s_b1_generate${suffix}`, median(plainRates), `generate(), fp32, batch 1, ${what}`);
    report(`decode_tok_s_b1_draft_int8${suffix}`, median(draftRates), `  the same, int8 draft (≤ ${DEFAULT_DRAFT_TOKENS} a round)`);
    console.log(`  speculative speed-up ${(result[`decode_tok_s_b1_draft_int8${suffix}`]! / result[`decode_tok_s_b1_generate${suffix}`]!).toFixed(2)}×`);
  }
  await drafted.close();
  console.log(`the drafted runs gave the same ${genLen + 1} tokens as plain fp32 decoding, every one: ${same ? 'yes' : 'NO'}`);
  if (!same) process.exitCode = 1;
}

if (baselines.has('torch')) {
  const torch = runTorchBaseline(['prefill', 'decode'], reps);
  if (typeof torch === 'string') console.log(`baseline skipped: ${torch}`);
  else
    Object.assign(result, printComparison(result, torch, {
      prefill_tok_s_128: 'prefill T=128 B=1 (last-token logits) throughput',
      prefill_tok_s_512: 'prefill T=512 B=1 (last-token logits) throughput',
      decode_tok_s_b1: 'decode+cache B=1: decode-only aggregate',
      decode_tok_s_b4: 'decode+cache B=4: decode-only aggregate',
      decode_tok_s_b16: 'decode+cache B=16: decode-only aggregate',
      decode_tok_s_b1_int8: 'decode+cache B=1: decode-only aggregate',
      decode_tok_s_b16_int8: 'decode+cache B=16: decode-only aggregate',
    }));
}
if (baselines.has('llamacpp')) {
  // Same checkpoint, same thread count as ours (ORT's intra-op pool defaults to all cores).
  const prepared = prepareLlamaCpp({ checkpoint: dir, threads: threads ?? os.availableParallelism() });
  const llama = typeof prepared === 'string' ? prepared : runLlamaCppBaseline(reps, prepared);
  if (typeof llama === 'string') console.log(`llama.cpp baseline skipped: ${llama}`);
  else Object.assign(result, printLlamaCppComparison(result, llama));
  if (typeof prepared !== 'string' && Number(args.pairs) > 0) await interleaved(prepared, Number(args.pairs));
}

/**
 * Batch-1 decode from an empty context against llama-bench's tg128, in pairs run back to back: one
 * run of ours (128 tokens after a one-token prompt, greedy), then one llama-bench run. On a shared
 * machine whose speed drifts by a third over minutes, the ratio within a pair is steadier than
 * figures taken minutes apart; the median of the pairs' ratios, and their range, are reported.
 */
async function interleaved(l: LlamaCpp, pairs: number): Promise<void> {
  const once = async (model: ModelSession) => (await generated(model, 1)).tokS;
  const load = (opts: SessionOptions) => () => ModelSession.load(dir, { slots: 1, threads, ...opts });
  const rows = ([
    ['fp32', 'f32', async () => fp32, true],
    ['fp32, --draft int8', 'f32', load({ draft: 'int8' }), args.draft],
    ['int8', 'q8_0', load({ quantize: 'int8' }), args.int8],
    ['int4', 'q4_0', load({ quantize: 'int4' }), args.int4],
  ] as [string, GgufType, () => Promise<ModelSession>, boolean | undefined][]).filter(([, , , on]) => on);
  console.log(`\nbatch-1 decode from an empty context, ${pairs} pairs run back to back (ours once, then llama-bench tg128 -r 1): ratio`);
  console.log(`${'ours'.padEnd(20)} ${'theirs'.padEnd(6)} ${'median'.padStart(7)}  range         pairs (ours / theirs, tok/s)`);
  for (const [name, type, open] of rows) {
    const model = await open();
    await once(model); // warm-up, as llama-bench warms up
    const runs: [number, number][] = [];
    for (let p = 0; p < pairs; p++) {
      const ours = await once(model);
      const theirs = llamaBenchTg128(l, type);
      if (typeof theirs === 'string') {
        console.log(`${name}: ${theirs}`);
        break;
      }
      runs.push([ours, theirs]);
    }
    if (model !== fp32) await model.close();
    if (!runs.length) continue;
    const ratios = runs.map(([a, b]) => a / b).sort((a, b) => a - b);
    const mid = (ratios[(ratios.length - 1) >> 1]! + ratios[ratios.length >> 1]!) / 2; // the median, also of an even count
    const key = `paired_b1_empty_${name.replace(/[^a-z0-9]+/g, '_')}_vs_llamacpp_${type}_tg128`;
    result[key] = Math.round(mid * 100) / 100;
    const range = `${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)}×`;
    console.log(`${name.padEnd(20)} ${type.toUpperCase().padEnd(6)} ${`${mid.toFixed(2)}×`.padStart(7)}  ${range.padEnd(12)}  ${runs.map(([a, b]) => `${a.toFixed(0)}/${b.toFixed(0)}`).join(' ')}`);
  }
}
console.log(JSON.stringify(result));
await fp32.close();
