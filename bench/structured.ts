// npm run bench:structured — what structured output costs: time per generated token with a JSON
// schema vs unconstrained, at batch 1 and 16, on GPT-2 124M (random weights) on CPU, side by side
// with the ratio; and the one-time costs (the token trie, once per thread; compiling a
// 10-property schema; its first mask). The last line is one JSON object.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { presetConfig } from '../src/model/config.js';
import { applyMask, compileConstraint, ConstraintState, type ConstraintSpec } from '../src/model/constraint.js';
import { Generation } from '../src/model/generation.js';
import { randomInit } from '../src/model/gpt.js';
import { ModelSession } from '../src/model/session.js';
import { tokenTrie } from '../src/model/token-trie.js';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'gpt2' },
    threads: { type: 'string' },
    gen: { type: 'string', default: '24' }, // tokens per sequence and run
    prompt: { type: 'string', default: '16' },
  },
});
const genLen = Number(args.gen);
const promptLen = Number(args.prompt);
const cfg = presetConfig(args.config!);
const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A 10-property object schema in OpenAI strict form; `tag` makes each one new to the cache. */
function schema(tag: string): object {
  const types = [{ type: 'string' }, { type: 'integer' }, { type: 'boolean' }, { type: 'number' }, { type: 'array', items: { type: 'string' } }, { type: ['string', 'null'] }, { enum: ['red', 'green', 'blue'] }, { type: 'object', properties: { x: { type: 'integer' }, y: { type: 'integer' } }, required: ['x', 'y'], additionalProperties: false }, { type: 'string' }, { type: 'integer' }];
  const properties = Object.fromEntries(types.map((t, i) => [`${tag}_field_${i}`, t]));
  return { type: 'object', properties, required: Object.keys(properties), additionalProperties: false };
}

// One-time costs first, before the model touches the cache.
let t = now();
tokenTrie();
const trieMs = now() - t;
const compileMs: number[] = [];
const firstMaskMs: number[] = [];
for (let i = 0; i < 5; i++) {
  t = now();
  const c = compileConstraint({ type: 'json_schema', schema: schema(`c${i}`) });
  compileMs.push(now() - t);
  t = now();
  new ConstraintState(c).allowed();
  firstMaskMs.push(now() - t);
}
// Applying a cached mask, what every constrained token pays once its state has been seen: a string's inside, most tokens allowed.
const inString = new ConstraintState(compileConstraint({ type: 'json_schema', schema: { type: 'string' } }));
inString.advance(1); // '"'
t = now();
inString.allowed(); // the widest walk there is: nearly every token can continue a string
const stringMaskMs = now() - t;
const logits = Float32Array.from({ length: cfg.vocabSize }, (_, i) => Math.sin(i));
const out = new Float32Array(cfg.vocabSize);
t = now();
for (let i = 0; i < 1000; i++) applyMask(logits, inString.allowed(), out);
const applyMs = (now() - t) / 1000;

const dir = path.join(os.tmpdir(), `scratchgpt-bench-${args.config}`);
if (!fs.existsSync(path.join(dir, 'config.json'))) {
  console.log(`writing a random ${args.config} checkpoint to ${dir} …`);
  saveCheckpoint(dir, cfg, randomInit(cfg, 1));
}
const model = await ModelSession.load(dir, { slots: 16, threads: args.threads ? Number(args.threads) : undefined });
const prompt = (b: number) => Array.from({ length: promptLen }, (_, i) => (b * 7919 + i * 104729) % cfg.vocabSize);

/**
 * B sequences sampled at temperature 1 through Generation (masking included), decode steps only:
 * ms per generated token over the batch. A sequence that finishes early leaves the batch.
 */
async function run(B: number, constraint: ConstraintSpec | undefined, seed: number): Promise<number> {
  const gens = Array.from({ length: B }, (_, b) => new Generation(prompt(b), { maxTokens: genLen, temperature: 1, seed: seed + b, ignoreEos: !constraint, constraint }, model.config));
  let logits = await model.forward(gens.map((g, b) => ({ slot: b, tokens: g.promptTokens, start: 0, logits: 'last' as const })));
  gens.forEach((g, b) => g.step(logits[b]!));
  let tokens = 0;
  const s = now();
  for (let step = 1; step < genLen; step++) {
    const live = gens.map((g, b) => ({ g, b })).filter(({ g }) => !g.done);
    if (!live.length) break;
    logits = await model.forward(live.map(({ g, b }) => ({ slot: b, tokens: [g.tokens.at(-1)!], start: promptLen + g.tokens.length - 1, logits: 'last' as const })));
    live.forEach(({ g }, i) => g.step(logits[i]!));
    tokens += live.length;
  }
  return (now() - s) / tokens;
}

const spec: ConstraintSpec = { type: 'json_schema', schema: schema('bench') };
const result: Record<string, number> = { trie_ms: trieMs, compile_ms: median(compileMs), first_mask_ms: median(firstMaskMs), apply_mask_ms: applyMs, string_mask_ms: stringMaskMs };
console.log(`model ${args.config}: ${cfg.nLayer} layers, ${cfg.nEmbd} wide; ${genLen} tokens per sequence; temperature 1`);
console.log(`token trie (once per thread)             ${trieMs.toFixed(1).padStart(8)} ms`);
console.log(`compile a 10-property schema (median)    ${median(compileMs).toFixed(2).padStart(8)} ms`);
console.log(`its first token mask (median)            ${median(firstMaskMs).toFixed(2).padStart(8)} ms`);
console.log(`first mask inside a string (a full walk)  ${stringMaskMs.toFixed(2).padStart(8)} ms`);
console.log(`applying a cached mask, per token        ${applyMs.toFixed(3).padStart(8)} ms`);
console.log(`${'batch'.padEnd(8)}${'free ms/tok'.padStart(14)}${'cold schema'.padStart(14)}${'warm schema'.padStart(14)}${'warm/free'.padStart(12)}`);
for (const B of [1, 16]) {
  await run(B, undefined, 1); // warm-up: ORT's first calls at this batch size are slow
  const free = await run(B, undefined, 100);
  const cold = await run(B, { type: 'json_schema', schema: schema(`cold${B}`) }, 200); // fresh compile, masks built as visited
  await run(B, spec, 300); // fills this spec's mask cache
  const warm = await run(B, spec, 400);
  Object.assign(result, { [`free_ms_per_tok_b${B}`]: free, [`cold_ms_per_tok_b${B}`]: cold, [`warm_ms_per_tok_b${B}`]: warm, [`ratio_b${B}`]: warm / free });
  console.log(`${String(B).padEnd(8)}${free.toFixed(2).padStart(14)}${cold.toFixed(2).padStart(14)}${warm.toFixed(2).padStart(14)}${(warm / free).toFixed(3).padStart(11)}×`);
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(result).map(([k, v]) => [k, Math.round(v * 1000) / 1000]))));
await model.close();
