// npm run bench:soak — the server under hours-long mixed traffic, watched for leaks and stalls.
// It runs `scratchgpt serve` in a child process (as users run it) on a small random GPT-2-shaped
// model, and for --minutes sends, from --concurrency clients on 127.0.0.1: completion and chat
// streams (chat only when the model has a chat template), streams the client abandons midway
// (AbortController), non-streamed completions, /tokenize, bad requests (400/404 expected), and
// model and file listings. Every --sample-seconds it records the server's RSS (VmRSS of the child,
// /proc) and, from its /metrics, heap use and event-loop lag since the previous sample (shown
// beyond the gauge's 10 ms timer period, so an idle loop reads 0). It prints one row per sample
// and a final JSON line; it exits 1 if any request got a 5xx or a broken stream.
//
//   --minutes M          how long to send traffic (default 30)
//   --sample-seconds S   sampling period (default 30)
//   --concurrency N      clients sending at once (default 8)
//   --n-embd E, --n-layer L, --n-head H, --context C   the model's shape (default 64, 2, 2, 256)
//   --model DIR          serve this folder instead of a random model
//   --max-tokens T       the longest generation asked for (default 48)
//   --threads T          the server's ORT threads (default 1)
//   --seed S             the traffic's random choices (default 1)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { LOOP_LAG_RESOLUTION_MS } from '../src/server/metrics.js';
import { sseData } from './sse-data.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    'sample-seconds': { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '8' },
    'n-embd': { type: 'string', default: '64' },
    'n-layer': { type: 'string', default: '2' },
    'n-head': { type: 'string', default: '2' },
    context: { type: 'string', default: '256' },
    model: { type: 'string' },
    'max-tokens': { type: 'string', default: '48' },
    threads: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
  },
});
const minutes = Number(args.minutes);
const sampleMs = Number(args['sample-seconds']) * 1000;
const concurrency = Number(args.concurrency);
const maxTokens = Number(args['max-tokens']);

// ── the model: a random GPT-2-shaped checkpoint with the alpaca chat template, written once ──
let dir: string;
if (args.model) dir = path.resolve(args.model);
else {
  const cfg: GPTConfig = {
    vocabSize: 50257,
    contextLength: Number(args.context),
    nEmbd: Number(args['n-embd']),
    nLayer: Number(args['n-layer']),
    nHead: Number(args['n-head']),
    dropout: 0,
    qkvBias: true,
    layerNormEpsilon: 1e-5,
    chatTemplate: 'alpaca',
  };
  dir = path.join(os.tmpdir(), `scratchgpt-soak-e${cfg.nEmbd}-l${cfg.nLayer}-h${cfg.nHead}-c${cfg.contextLength}`);
  if (!fs.existsSync(path.join(dir, 'config.json'))) saveCheckpoint(dir, cfg, randomInit(cfg, 1));
}
const modelId = path.basename(dir);
const hfConfig = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { chat_template?: string; n_ctx?: number; n_positions?: number };
const hasChat = typeof hfConfig.chat_template === 'string';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'scratchgpt-soak-data-'));

// ── the server ──
const bin = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
const server = spawn(process.execPath, [bin, 'serve', '--model', dir, '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--threads', args.threads!, '--slots', String(concurrency)], {
  stdio: ['ignore', 'inherit', 'pipe'],
});
let log = '';
server.stderr.on('data', (d) => (log += d));
process.on('exit', () => {
  server.kill('SIGKILL'); // never leave the server running (errors, Ctrl-C)
  fs.rmSync(dataDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
const base = await new Promise<string>((resolve, reject) => {
  server.stderr.on('data', () => {
    const m = /listening on (http:\/\/\S+?) /.exec(log);
    if (m && /ready/.test(log)) resolve(m[1]!);
  });
  server.once('exit', (code) => reject(new Error(`the server exited (${code}) before it was ready:\n${log}`)));
});
let died: number | null | undefined; // the server's exit code, had it exited during the run
server.once('exit', (code) => (died = code));
console.log(
  `model ${modelId} (${args.model ? 'given' : `random, n_embd ${args['n-embd']}, ${args['n-layer']} layers`}${hasChat ? ', alpaca chat template' : ', no chat template: completions only'}); ` +
    `${concurrency} clients for ${minutes} min, a sample every ${sampleMs / 1000} s; server pid ${server.pid}, ${os.availableParallelism()} cores`,
);

// ── traffic ──
let rngState = Number(args.seed) >>> 0 || 1;
const random = () => {
  // xorshift32: reproducible choices for a given --seed
  rngState ^= rngState << 13;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  return (rngState >>> 0) / 2 ** 32;
};
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const WORDS = ['the', 'model', 'server', 'stream', 'token', 'river', 'green', 'seven', 'quickly', 'under', 'light', 'paper', 'window', 'music', 'stone'];
const text = (n: number) => Array.from({ length: n }, () => pick(WORDS)).join(' ');

interface Counts {
  ok: number;
  c4xx: number;
  c5xx: number;
  aborted: number;
  broken: number; // network errors, streams without [DONE], unexpected statuses
  tokens: number;
}
const zero = (): Counts => ({ ok: 0, c4xx: 0, c5xx: 0, aborted: 0, broken: 0, tokens: 0 });
const total = zero();
let interval = zero();
const count = (k: keyof Counts, n = 1) => {
  total[k] += n;
  interval[k] += n;
};
const problems: string[] = [];
const problem = (what: string) => {
  count('broken');
  if (problems.length < 20) problems.push(what);
};

function tally(status: number, expected: 'ok' | '4xx', what: string): void {
  if (status >= 500) {
    count('c5xx');
    if (problems.length < 20) problems.push(`${what}: HTTP ${status}`);
  } else if (status >= 400) {
    count('c4xx');
    if (expected === 'ok') problem(`${what}: HTTP ${status}`);
  } else if (expected === '4xx') problem(`${what}: HTTP ${status}, expected a 4xx`);
  else count('ok');
}

const post = (p: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

const sampling = () =>
  pick([{ temperature: 0 }, { temperature: 1, seed: Math.floor(random() * 1e6) }, { temperature: 0.8, top_p: 0.9, seed: Math.floor(random() * 1e6) }, { temperature: 0, stop: ['.', '\n'] }]);

/** A streamed request read to its end ([DONE]), or abandoned after `abortAfter` chunks. */
async function stream(p: string, body: Record<string, unknown>, abortAfter?: number): Promise<void> {
  const ac = new AbortController();
  const res = await post(p, { ...body, stream: true }, ac.signal);
  if (res.status !== 200) {
    await res.arrayBuffer();
    return tally(res.status, 'ok', `${p} stream`);
  }
  let chunks = 0;
  let done = false;
  try {
    for await (const data of sseData(res.body! as AsyncIterable<Uint8Array>)) {
      if (data === '[DONE]') done = true;
      else if (data.startsWith('{')) {
        if ('error' in (JSON.parse(data) as object)) return problem(`${p} stream: ${data.slice(0, 300)}`);
        chunks++;
      }
      if (abortAfter !== undefined && chunks >= abortAfter) {
        ac.abort();
        count('aborted');
        return;
      }
    }
  } catch (e) {
    if (ac.signal.aborted) return;
    return problem(`${p} stream: ${(e as Error).message}`);
  }
  if (!done) return problem(`${p} stream ended without [DONE] after ${chunks} chunks`);
  count('tokens', chunks);
  count('ok');
}

const requests: [number, () => Promise<void>][] = [
  [25, () => stream('/v1/completions', { model: modelId, prompt: text(4 + Math.floor(random() * 40)), max_tokens: 1 + Math.floor(random() * maxTokens), ...sampling() })],
  [hasChat ? 20 : 0, () => stream('/v1/chat/completions', { model: modelId, messages: [{ role: 'user', content: text(3 + Math.floor(random() * 30)) }], max_tokens: 1 + Math.floor(random() * maxTokens), ...sampling() })],
  [10, () => stream('/v1/completions', { model: modelId, prompt: text(8), max_tokens: maxTokens, ignore_eos: true, ...sampling() }, 1 + Math.floor(random() * 4))],
  [15, async () => {
    const r = await post('/v1/completions', { model: modelId, prompt: text(4 + Math.floor(random() * 20)), max_tokens: 1 + Math.floor(random() * 16), ...sampling() });
    const b = (await r.json()) as { usage?: { completion_tokens: number } };
    if (r.status === 200) count('tokens', b.usage?.completion_tokens ?? 0);
    tally(r.status, 'ok', 'completion');
  }],
  [10, async () => {
    const r = await post('/tokenize', random() < 0.5 || !hasChat ? { model: modelId, prompt: text(20) } : { model: modelId, messages: [{ role: 'user', content: text(10) }] });
    await r.arrayBuffer();
    tally(r.status, 'ok', 'tokenize');
  }],
  [8, async () => {
    const bad = pick([
      { model: modelId, prompt: 'x', max_tokens: -1 },
      { model: modelId, prompt: 'x', temperature: 'hot' },
      { model: modelId },
      { model: 'no-such-model', prompt: 'x' },
      { model: modelId, prompt: 'x', unknown_field: 1 },
    ]);
    const r = await post('/v1/completions', bad);
    await r.arrayBuffer();
    tally(r.status, '4xx', `bad request ${JSON.stringify(bad)}`);
  }],
  [12, async () => {
    const p = pick(['/v1/models', `/v1/models/${modelId}`, '/v1/files', '/health']);
    const r = await fetch(`${base}${p}`);
    await r.arrayBuffer();
    tally(r.status, 'ok', `GET ${p}`);
  }],
];
const weightSum = requests.reduce((s, [w]) => s + w, 0);
function nextRequest(): () => Promise<void> {
  let x = random() * weightSum;
  for (const [w, f] of requests) if ((x -= w) < 0) return f;
  return requests[0]![1];
}

// one file in the data folder, so the file listing has something to list
{
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', new Blob([Array.from({ length: 8 }, (_, i) => JSON.stringify({ instruction: `Say ${i}`, input: '', output: `${i}` })).join('\n') + '\n']), 'soak.jsonl');
  const r = await fetch(`${base}/v1/files`, { method: 'POST', body: form });
  if (r.status !== 200) throw new Error(`upload: HTTP ${r.status} ${await r.text()}`);
}

// ── samples ──
interface Sample {
  minute: number;
  /** How long its window (since the previous sample) was. */
  seconds: number;
  rssMb: number;
  heapMb: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
  counts: Counts;
}
const samples: Sample[] = [];
const t0 = Date.now();

function rssMb(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${server.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function sample(): Promise<void> {
  if (died !== undefined) return;
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  // the lag gauges are timer periods: what a blocked loop adds is what exceeds the period
  const lag = (name: string) => Math.max(0, gauge(name) * 1000 - LOOP_LAG_RESOLUTION_MS);
  const s: Sample = {
    minute: (Date.now() - t0) / 60_000,
    seconds: (Date.now() - (samples.at(-1) ? t0 + samples.at(-1)!.minute * 60_000 : t0)) / 1000,
    rssMb: rssMb(),
    heapMb: gauge('nodejs_heap_size_used_bytes') / 2 ** 20,
    lagP50: lag('nodejs_eventloop_lag_p50_seconds'),
    lagP99: lag('nodejs_eventloop_lag_p99_seconds'),
    lagMax: lag('nodejs_eventloop_lag_max_seconds'),
    counts: interval,
  };
  interval = zero();
  samples.push(s);
  const c = s.counts;
  console.log(
    [s.minute.toFixed(1).padStart(6), s.rssMb.toFixed(1).padStart(7), s.heapMb.toFixed(1).padStart(7), s.lagP50.toFixed(1).padStart(6), s.lagP99.toFixed(1).padStart(6), s.lagMax.toFixed(1).padStart(7), String(c.ok).padStart(6), String(c.c4xx).padStart(5), String(c.c5xx).padStart(5), String(c.aborted).padStart(7), String(c.broken).padStart(6), String(c.tokens).padStart(7)].join(' '),
  );
}

console.log('minute  RSS MB heap MB lag p50  p99 ms  max ms     ok   4xx   5xx aborted broken  tokens');
await sample(); // the baseline, before any traffic
const deadline = t0 + minutes * 60_000;
const sampler = setInterval(() => void sample().catch((e) => problems.push(`sample: ${(e as Error).message}`)), sampleMs);
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline && died === undefined) {
      try {
        await nextRequest()();
      } catch (e) {
        problem(`request: ${(e as Error).message}`);
      }
    }
  }),
);
clearInterval(sampler);
await sample();
if (died !== undefined) problems.push(`the server exited (${died}) during the run:\n${log.slice(-2000)}`);
else server.kill('SIGTERM');
const exit = died !== undefined ? died : await new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));

const round = (x: number) => Number(x.toFixed(1));
const warm = samples.find((s) => s.minute >= minutes * 0.2) ?? samples.at(-1)!;
const last = samples.at(-1)!;
// under load: not the baseline (no traffic yet), nor a last window cut short by the deadline
const loaded = samples.slice(1).filter((s) => s.seconds >= sampleMs / 2000);
if (problems.length) console.log(`problems (first ${problems.length}):\n  ${problems.join('\n  ')}`);
console.log(
  JSON.stringify({
    minutes: round((Date.now() - t0) / 60_000),
    samples: samples.length,
    rss_mb_start: round(samples[0]!.rssMb),
    rss_mb_warm: round(warm.rssMb),
    rss_mb_end: round(last.rssMb),
    rss_mb_max: round(Math.max(...samples.map((s) => s.rssMb))),
    rss_growth_after_warmup_mb: round(last.rssMb - warm.rssMb),
    heap_mb_warm: round(warm.heapMb),
    heap_mb_end: round(last.heapMb),
    lag_p99_ms_start: round(loaded[0]?.lagP99 ?? NaN),
    lag_p99_ms_end: round(loaded.at(-1)?.lagP99 ?? NaN),
    lag_max_ms: round(Math.max(...loaded.map((s) => s.lagMax))),
    requests_ok: total.ok,
    requests_4xx: total.c4xx,
    requests_5xx: total.c5xx,
    requests_aborted: total.aborted,
    broken: total.broken,
    tokens: total.tokens,
    server_exit: exit,
  }),
);
process.exitCode = total.c5xx > 0 || total.broken > 0 || exit !== 0 ? 1 : 0;
