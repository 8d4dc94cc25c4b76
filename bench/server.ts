// npm run bench:server — the HTTP server under load: GPT-2 124M (random weights) on CPU, 1, 4 and 16
// concurrent streaming clients, each sending a 128-token prompt and reading 128 generated tokens
// (ignore_eos; greedy unless --temperature). The server runs as `scratchgpt serve` in a child process, as users
// run it; the clients run here. The same generation in-process (ModelSession + argmax, batch 1, no
// HTTP, no sampler) gives the raw rate that c1 is compared to: their ratio is the cost of the worker
// thread, the per-token sampler, HTTP, JSON and SSE. Raw and c1 runs
// alternate three times and the medians are compared, since the load on a shared machine drifts.
// The last line is one JSON object.
//
// Prefix caching: 16 clients at once, each sending one 200-token system prompt followed by its
// own 20-token question (32 tokens generated), against this server (prefix cache on, the default)
// and a second one with --prefix-cache-mb 0; TTFT and total throughput side by side. One request
// with the system prompt goes first to each (as earlier traffic would have), so the cache holds it.
//
//   --mixed-prefill     serve with prefill rows in the decode call (compare TTFT and throughput)
//   --prefill-tokens N  the scheduler's prefill budget per step (default: the server's)
//   --quantize int8     serve (and run raw) with int8 decode weights
//   --draft int8        serve (and run raw, through generate()) with speculative decoding on an int8 draft
//   --temperature T, --top-p P   sample instead of greedy decoding (the clients' requests; raw stays argmax)
//   --prefix-clients N  clients of the prefix-caching section (default 16; 0: skip it)
//   --only-prefix       run the prefix-caching section only
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { presetConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { argmax } from '../src/model/sampling-kernels.js';
import { generate } from '../src/model/generation.js';
import { ModelSession, type Quantize } from '../src/model/session.js';
import { sseData } from './sse-data.js';

const { values: args } = parseArgs({
  options: {
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '128' },
    clients: { type: 'string', default: '1,4,16' },
    'mixed-prefill': { type: 'boolean', default: false },
    'prefill-tokens': { type: 'string' },
    threads: { type: 'string' },
    quantize: { type: 'string', default: 'none' },
    draft: { type: 'string', default: 'none' },
    temperature: { type: 'string', default: '0' },
    'top-p': { type: 'string', default: '1' },
    'prefix-clients': { type: 'string', default: '16' },
    'only-prefix': { type: 'boolean', default: false },
  },
});
const promptLen = Number(args.prompt);
const genLen = Number(args.gen);
const cfg = presetConfig('gpt2');
const now = () => performance.now();
const prompt = (seed: number) => Array.from({ length: promptLen }, (_, i) => (seed * 7919 + i * 104729) % cfg.vocabSize);
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

// The same random checkpoint as bench/generate.ts (same path, config and seed), written once.
const dir = path.join(os.tmpdir(), 'scratchgpt-bench-gpt2');
if (!fs.existsSync(path.join(dir, 'config.json'))) {
  console.log(`writing a random gpt2 checkpoint to ${dir} …`);
  saveCheckpoint(dir, cfg, randomInit(cfg, 1));
}
console.log(`GPT-2 124M (random weights), prompt ${promptLen} tokens, ${genLen} generated (${Number(args.temperature) ? `temperature ${args.temperature}, top_p ${args['top-p']}` : 'greedy'}), weights ${args.quantize !== 'none' ? `${args.quantize} for decode` : args.draft !== 'none' ? `fp32 with an ${args.draft} draft` : 'fp32'}, ${os.availableParallelism()} cores; the machine is shared: figures are noisy`);

// ── the server ──
const bin = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
const servers: ChildProcess[] = [];
process.on('exit', () => servers.forEach((s) => s.kill())); // never leave a server running (errors, Ctrl-C)
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

/** `scratchgpt serve` with the bench's options and `extra`, once it is ready: its base URL. */
async function serve(extra: string[] = []): Promise<{ base: string; server: ChildProcess }> {
  const port = 30000 + Math.floor(Math.random() * 20000);
  const serveArgs = ['serve', '--model', dir, '--port', String(port), '--slots', '16', '--queue', '64', '--data-dir', path.join(os.tmpdir(), `scratchgpt-bench-data${servers.length ? `-${servers.length}` : ''}`)]; // one per server: a server locks its folder
  if (args['mixed-prefill']) serveArgs.push('--mixed-prefill');
  if (args['prefill-tokens']) serveArgs.push('--prefill-tokens', args['prefill-tokens']);
  if (args.threads) serveArgs.push('--threads', args.threads);
  serveArgs.push('--quantize', args.quantize!, '--draft', args.draft!, ...extra);
  const server = spawn('node', [bin, ...serveArgs], { stdio: ['ignore', 'inherit', 'pipe'] });
  servers.push(server);
  let log = '';
  server.stderr.on('data', (d) => (log += d));
  for (let t0 = Date.now(); !log.includes('ready'); await new Promise((r) => setTimeout(r, 100))) {
    if (server.exitCode !== null || Date.now() - t0 > 120_000) throw new Error(`server did not start:\n${log}`);
  }
  return { base: `http://127.0.0.1:${port}`, server };
}
const { base, server } = await serve();

interface Run {
  tokens: number;
  ttft: number;
  ms: number;
}

/** One streaming client: TTFT = until the first token's chunk; counts token chunks. */
async function client(seed: number, at = base, tokens = prompt(seed), maxTokens = genLen): Promise<Run> {
  const t0 = now();
  const res = await fetch(`${at}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: path.basename(dir), prompt: tokens, max_tokens: maxTokens, temperature: Number(args.temperature), top_p: Number(args['top-p']), seed, ignore_eos: true, stream: true }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let got = 0;
  let ttft = 0;
  for await (const data of sseData(res.body! as AsyncIterable<Uint8Array>)) {
    if (!data.startsWith('{')) continue;
    if (got++ === 0) ttft = now() - t0;
  }
  return { tokens: got, ttft, ms: now() - t0 };
}

// ── raw: in-process, batch 1, the same prompts; alternated with c1 runs, as the load on a shared
// machine drifts (the server's worker sits idle meanwhile) ──
const threads = args.threads ? Number(args.threads) : undefined;
async function raw(model: ModelSession, seed: number): Promise<{ total: number; decode: number }> {
  const t0 = now();
  const p = prompt(seed);
  let t1 = 0;
  if (model.draftTokens) {
    // speculative rounds as the server runs them (generate() and the scheduler share speculative.ts)
    const steps = generate(model, p, { maxTokens: genLen, temperature: 0, ignoreEos: true });
    await steps.next(); // the prefill's token
    t1 = now();
    while (!(await steps.next()).done);
  } else {
    let [logits] = await model.forward([{ slot: 0, tokens: p, start: 0, logits: 'last' }]);
    t1 = now();
    for (let i = 0; i < genLen; i++) {
      const token = argmax(logits!);
      if (i === genLen - 1) break;
      [logits] = await model.forward([{ slot: 0, tokens: [token], start: promptLen + i, logits: 'last' }]);
    }
  }
  const t2 = now();
  return { total: (genLen / (t2 - t0)) * 1000, decode: ((genLen - 1) / (t2 - t1)) * 1000 };
}
const REPS = 3;
let rawRun: { total: number; decode: number } | undefined;
const results: Record<number, { agg: number; ttft: number[]; runs: Run[] }> = {};
if (!args['only-prefix']) {
  const model = await ModelSession.load(dir, { slots: 1, threads, quantize: args.quantize as Quantize, draft: args.draft as Quantize });
  await raw(model, 0); // warm-ups
  await client(999);
  const raws: { total: number; decode: number }[] = [];
  const c1s: Run[] = [];
  for (let r = 0; r < REPS; r++) {
    raws.push(await raw(model, 100 + r)); // the c1 run below uses the same prompt
    const t0 = now();
    const run = await client(100 + r);
    c1s.push({ ...run, ms: now() - t0 });
  }
  await model.close();
  rawRun = { total: percentile(raws.map((r) => r.total), 50), decode: percentile(raws.map((r) => r.decode), 50) };
  console.log(
    `raw in-process, batch 1: ${rawRun.total.toFixed(1)} tok/s including prefill (${rawRun.decode.toFixed(1)} tok/s decode only); ` +
      `median of ${REPS}: ${raws.map((r) => r.total.toFixed(1)).join(', ')}`,
  );

  for (const c of args.clients!.split(',').map(Number)) {
    const t0 = now();
    // c1: the median of the runs alternated with the raw ones
    const runs = c === 1 ? [[...c1s].sort((a, b) => a.ms - b.ms)[Math.floor(REPS / 2)]!] : await Promise.all(Array.from({ length: c }, (_, i) => client(c * 100 + i)));
    const wall = c === 1 ? runs[0]!.ms : now() - t0;
    const tokens = runs.reduce((s, r) => s + r.tokens, 0);
    if (runs.some((r) => r.tokens !== genLen)) throw new Error(`a client got ${runs.map((r) => r.tokens)} tokens, expected ${genLen} each`);
    results[c] = { agg: (tokens / wall) * 1000, ttft: runs.map((r) => r.ttft), runs };
    const ttft = results[c]!.ttft;
    console.log(
      `c${c}: ${results[c]!.agg.toFixed(1)} tok/s aggregate, ${((genLen / percentile(runs.map((r) => r.ms), 50)) * 1000).toFixed(1)} tok/s per client (median); ` +
        `TTFT p50 ${percentile(ttft, 50).toFixed(0)} ms, p99 ${percentile(ttft, 99).toFixed(0)} ms; wall ${(wall / 1000).toFixed(2)} s`,
    );
  }
}

// ── prefix caching: one system prompt, different questions, with the cache and without ──
const SYSTEM_LEN = 200;
const QUESTION_LEN = 20;
const PREFIX_GEN = 32;
const prefixClients = Number(args['prefix-clients']);
const question = (i: number) => Array.from({ length: QUESTION_LEN }, (_, j) => (i * 15485863 + j * 32452843 + 11) % cfg.vocabSize);
/** Per setting, the median over the alternated rounds of p50 TTFT and of total throughput. */
const prefix: Record<'on' | 'off', { agg: number; ttft: number }> = { on: { agg: 0, ttft: 0 }, off: { agg: 0, ttft: 0 } };
if (prefixClients > 0) {
  const systemPrompt = Array.from({ length: SYSTEM_LEN }, (_, i) => (7 * 7919 + i * 104729) % cfg.vocabSize); // as prompt(7), 200 tokens whatever --prompt is
  const noCache = await serve(['--prefix-cache-mb', '0']);
  const settings = [['off', noCache.base], ['on', base]] as const;
  // earlier traffic: the system prompt is cached (and both servers are warm)
  for (const [, at] of settings) await client(1, at, [...systemPrompt, ...question(10_000)], PREFIX_GEN);
  const rounds: Record<'on' | 'off', { agg: number; ttft: number }[]> = { on: [], off: [] };
  for (let r = 0; r < REPS; r++) {
    for (const [name, at] of settings) {
      const t0 = now();
      // new questions each round: only the system prompt's blocks are cached beforehand
      const runs = await Promise.all(Array.from({ length: prefixClients }, (_, i) => client(i, at, [...systemPrompt, ...question(r * 1000 + i)], PREFIX_GEN)));
      const wall = now() - t0;
      if (runs.some((x) => x.tokens !== PREFIX_GEN)) throw new Error(`a client got ${runs.map((x) => x.tokens)} tokens, expected ${PREFIX_GEN} each`);
      const ttft = runs.map((x) => x.ttft);
      rounds[name].push({ agg: (runs.reduce((s, x) => s + x.tokens, 0) / wall) * 1000, ttft: percentile(ttft, 50) });
      console.log(
        `prefix cache ${name.padEnd(3)} (${prefixClients} clients, ${SYSTEM_LEN}-token system prompt + ${QUESTION_LEN}-token questions, ${PREFIX_GEN} generated): ` +
          `TTFT p50 ${percentile(ttft, 50).toFixed(0)} ms, p99 ${percentile(ttft, 99).toFixed(0)} ms; ${rounds[name].at(-1)!.agg.toFixed(1)} tok/s total; wall ${(wall / 1000).toFixed(2)} s`,
      );
    }
  }
  noCache.server.kill('SIGTERM');
  await new Promise((r) => noCache.server.once('exit', r));
  for (const name of ['on', 'off'] as const) prefix[name] = { agg: percentile(rounds[name].map((x) => x.agg), 50), ttft: percentile(rounds[name].map((x) => x.ttft), 50) };
  console.log(
    `prefix cache, medians of ${REPS} rounds: TTFT p50 ${prefix.off.ttft.toFixed(0)} → ${prefix.on.ttft.toFixed(0)} ms (${(prefix.off.ttft / prefix.on.ttft).toFixed(2)}× lower), ` +
      `throughput ${prefix.off.agg.toFixed(1)} → ${prefix.on.agg.toFixed(1)} tok/s (${(prefix.on.agg / prefix.off.agg).toFixed(2)}×)`,
  );
}
server.kill('SIGTERM');
await new Promise((r) => server.once('exit', r));

const c1 = results[1];
if (c1 && rawRun) console.log(`c1 / raw = ${(c1.agg / rawRun.total).toFixed(3)} (${rawRun.total.toFixed(1)} tok/s raw: the HTTP + worker + SSE overhead at batch 1)`);
const c16 = results[16];
const withPrefix = prefixClients > 0;
console.log(
  JSON.stringify({
    agg_tok_s_c1: round(results[1]?.agg),
    agg_tok_s_c4: round(results[4]?.agg),
    agg_tok_s_c16: round(results[16]?.agg),
    ttft_ms_p50_c16: round(c16 && percentile(c16.ttft, 50)),
    ttft_ms_p99_c16: round(c16 && percentile(c16.ttft, 99)),
    prefix_ttft_ms_p50_off: round(withPrefix ? prefix.off.ttft : undefined),
    prefix_ttft_ms_p50_on: round(withPrefix ? prefix.on.ttft : undefined),
    prefix_agg_tok_s_off: round(withPrefix ? prefix.off.agg : undefined),
    prefix_agg_tok_s_on: round(withPrefix ? prefix.on.agg : undefined),
  }),
);

function round(x: number | undefined): number | null {
  return x === undefined ? null : Number(x.toFixed(1));
}
