// npm run bench:profile — where a batch-1 decode step of GPT-2 124M (random weights, host KV
// cache) spends its time, from ONNX Runtime's own profiler: per op type (time, nodes, µs per node),
// the weight GEMVs' effective bandwidth (weight bytes read / their kernel time), the small ops, and
// ORT's overhead around the kernels (model_run less the kernels); beside the step's wall time, timed
// on a second session without the profiler; and the machine's read bandwidth, for the GEMVs' share of it.
//
//   --config gpt2   --past 128 (cached positions)   --steps 64   --threads N   --quantize none|int8|int4
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import { presetConfig, type GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { createSession, SPIN_WITHIN_RUNS } from '../src/model/runtime.js';
import { buildInferenceGraph, QUANTIZE, type Quantize } from '../src/model/session.js';
import { blockFor, quantizeGraph } from '../src/onnx/rewrite.js';

const { values: args } = parseArgs({
  options: { config: { type: 'string', default: 'gpt2' }, past: { type: 'string', default: '128' }, steps: { type: 'string', default: '64' }, threads: { type: 'string' }, quantize: { type: 'string', default: 'none' } },
});
const P = Number(args.past);
const N = Number(args.steps);
const threads = args.threads ? Number(args.threads) : undefined;
const quantize = args.quantize as Quantize;
if (!QUANTIZE.includes(quantize)) throw new Error(`--quantize ${quantize}: expected one of ${QUANTIZE.join(', ')}`);
const dir = path.join(os.tmpdir(), `scratchgpt-bench-${args.config}`); // the checkpoint bench:generate writes
if (!fs.existsSync(path.join(dir, 'config.json'))) saveCheckpoint(dir, presetConfig(args.config!), randomInit(presetConfig(args.config!), 1));
const { config: cfg, weights } = loadCheckpoint(dir);

/** One decode step's inputs: one new token after P cached positions. */
function feeds(c: GPTConfig): Record<string, ort.Tensor> {
  const hd = c.nEmbd / c.nHead;
  const f: Record<string, ort.Tensor> = {
    tokens: new ort.Tensor('int64', BigInt64Array.from([464n]), [1, 1]),
    positions: new ort.Tensor('int64', BigInt64Array.from([BigInt(P)]), [1, 1]),
    mask: new ort.Tensor('float32', new Float32Array(P + 1), [1, 1, 1, P + 1]),
    logit_rows: new ort.Tensor('int64', BigInt64Array.from([0n]), [1]),
  };
  for (let l = 0; l < c.nLayer; l++) for (const k of ['k', 'v']) f[`past_${k}.${l}`] = new ort.Tensor('float32', new Float32Array(c.nHead * P * hd), [1, c.nHead, P, hd]);
  return f;
}

const read = (name: string) => materialize(new Map([[name, weights.get(name)!]])).get(name)!.data;
// The nodes that read a weight matrix, by the names serialize.ts gives them (op_index): the layers' and the head's.
const layerNodes = new Set<string>();
let headNode = '';
const build = (w: Parameters<Parameters<typeof createSession>[0]>[0]) => {
  const g = buildInferenceGraph(cfg, w, 'host', quantize !== 'none');
  if (quantize !== 'none') quantizeGraph(g, read, quantize === 'int4' ? 4 : 8); // as ModelSession's decode session
  g.nodes.forEach((n, k) => {
    const weight = g.initializers.get(n.inputs[1] ?? '');
    if (!weight || !['MatMul', 'Gemm', 'MatMulNBits'].includes(n.op)) return;
    if (weight.name.startsWith('wte.weight') || weight.name.startsWith('lm_head.weight')) headNode = `${n.op}_${k}`;
    else if (weight.dims.length >= 2) layerNodes.add(`${n.op}_${k}`);
  });
  return g;
};
const prefix = path.join(os.tmpdir(), `scratchgpt-profile-${process.pid}`);
const plain = await createSession(build, weights, { threads }, SPIN_WITHIN_RUNS); // the session options ModelSession uses
const profiled = await createSession(build, weights, { threads }, { ...SPIN_WITHIN_RUNS, enableProfiling: true, profileFilePrefix: prefix });
const f = feeds(cfg);
const WARM = 8;

for (let i = 0; i < WARM; i++) await plain.run(f);
const t0 = performance.now();
for (let i = 0; i < N; i++) await plain.run(f);
const wallMs = (performance.now() - t0) / N;

for (let i = 0; i < WARM + N; i++) await profiled.run(f);
profiled.endProfiling(); // onnxruntime-node returns no file name: it is the one file with this process's prefix
const file = fs.readdirSync(os.tmpdir()).map((n) => path.join(os.tmpdir(), n)).find((p) => p.startsWith(`${prefix}_`))!;
const events = JSON.parse(fs.readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
fs.rmSync(file);
await Promise.all([plain.release(), profiled.release()]);

// The last N runs: their model_run events, and the kernels of each (every run has the same nodes).
const runUs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-N).reduce((a, e) => a + e.dur, 0) / N;
const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
const perRun = kernels.length / (WARM + N);
const byOp = new Map<string, { us: number; nodes: number }>();
let [layerUs, headUs] = [0, 0];
for (const e of kernels.slice(-perRun * N)) {
  const node = e.name.slice(0, -'_kernel_time'.length);
  if (layerNodes.has(node)) layerUs += e.dur / N;
  if (node === headNode) headUs += e.dur / N;
  const op = e.args?.op_name ?? '?';
  const v = byOp.get(op) ?? { us: 0, nodes: 0 };
  v.us += e.dur / N;
  v.nodes += 1 / N;
  byOp.set(op, v);
}
const kernelUs = [...byOp.values()].reduce((a, v) => a + v.us, 0);
const { nEmbd: C, nLayer: L, vocabSize: V } = cfg;
const bytesPerWeight = quantize === 'none' ? 4 : (quantize === 'int4' ? 0.5 + 4 / blockFor(C, 4) : 1 + 4 / blockFor(C, 8)); // codes plus a float scale per block (4C's block is C's)
const layerWeights = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) * bytesPerWeight; // c_attn, c_proj, c_fc, mlp.c_proj
const headWeights = V * C * bytesPerWeight; // the lm head

const ms = (us: number) => (us / 1000).toFixed(2);
console.log(`${args.config}: ${L} layers, ${C} wide; decode batch 1 after ${P} positions, ${quantize === 'none' ? 'fp32' : quantize} weights; ${threads ?? 'all'} threads; ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()})`);
console.log(`step, wall (no profiler)      ${ms(wallMs * 1000).padStart(7)} ms   ${(1000 / wallMs).toFixed(1)} tok/s`);
console.log(`  model_run (profiled)        ${ms(runUs).padStart(7)} ms`);
console.log(`  kernels                     ${ms(kernelUs).padStart(7)} ms   ${Math.round(perRun)} nodes`);
console.log(`    layers' weight matmuls    ${ms(layerUs).padStart(7)} ms   ${layerNodes.size} nodes, ${(layerWeights / 1e6).toFixed(0)} MB of weights: ${(layerWeights / layerUs / 1e3).toFixed(1)} GB/s`);
console.log(`    lm head                   ${ms(headUs).padStart(7)} ms   ${(headWeights / 1e6).toFixed(0)} MB: ${(headWeights / headUs / 1e3).toFixed(1)} GB/s`);
console.log(`    everything else           ${ms(kernelUs - layerUs - headUs).padStart(7)} ms   ${Math.round(perRun) - layerNodes.size - 1} nodes`);
console.log(`  ORT around the kernels      ${ms(runUs - kernelUs).padStart(7)} ms`);
console.log(`  (the profiler's own cost: model_run − wall ≈ ${ms(runUs - wallMs * 1000)} ms)`);
console.log('\nop type                 ms/step  nodes  µs/node');
for (const [op, v] of [...byOp].sort((a, b) => b[1].us - a[1].us)) {
  console.log(`${op.padEnd(22)} ${ms(v.us).padStart(8)} ${v.nodes.toFixed(0).padStart(6)} ${(v.us / v.nodes).toFixed(1).padStart(8)}`);
}

// What the machine's memory gives, beside what the GEMVs get: the STREAM-like read-sum kernel of
// ../shared/bench/stream_triad.c (reads three 512 MiB arrays, so caches do not help), built here
// with gcc; the weights of a decode step are read once each, as that kernel reads its arrays.
const stream = readBandwidth(threads ?? os.availableParallelism());
if (typeof stream === 'string') console.log(`\nmachine read bandwidth: skipped (${stream})`);
else
  console.log(
    `\nmachine read bandwidth (stream_triad read-sum, median of 5): ${stream.toFixed(1)} GB/s; ` +
      `the layers' weight matmuls reach ${((layerWeights / layerUs / 1e3 / stream) * 100).toFixed(0)} % of it, the lm head ${((headWeights / headUs / 1e3 / stream) * 100).toFixed(0)} %`,
  );

function readBandwidth(threads: number): number | string {
  const source = path.resolve(import.meta.dirname, '../../shared/bench/stream_triad.c');
  if (!fs.existsSync(source)) return `${source} not found (../shared is not beside this checkout)`;
  const bin = path.join(os.tmpdir(), 'scratchgpt-stream-triad');
  if (!fs.existsSync(bin)) {
    const cc = spawnSync('gcc', ['-O3', '-march=native', '-fopenmp', source, '-o', bin], { encoding: 'utf8' });
    if (cc.status !== 0) return `gcc could not build it: ${cc.error?.message ?? cc.stderr.trim().split('\n')[0]}`;
  }
  const run = spawnSync(bin, ['512', '6'], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OMP_PROC_BIND: 'spread' } });
  const median = /read-sum\s+median\s+([\d.]+) GB\/s/.exec(run.stdout ?? '')?.[1];
  return median ? Number(median) : `stream_triad printed no read-sum line: ${run.error?.message ?? run.stderr}`;
}
