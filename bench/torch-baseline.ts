// Runs the PyTorch GPT-2 baseline (../shared/bench/torch_gpt2_bench.py) in the same run as our
// benchmarks, so figures are compared as ratios on the same (noisy, shared) machine.
// Needs Debian's python3-torch; torch is linked against OpenBLAS's OpenMP build with AVX-512
// kernels, as BASELINES.md prescribes (Debian's default reference BLAS is 30-70× slower).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SCRIPT = path.resolve(import.meta.dirname, '../../shared/bench/torch_gpt2_bench.py');
const OPENBLAS_DIR = path.join(os.tmpdir(), 'scratchgpt-openblas-omp');
const OPENBLAS_LIB = path.join(OPENBLAS_DIR, 'usr/lib/x86_64-linux-gnu/openblas-openmp');

export type TorchResults = Record<string, { median: number; unit: string }>;

/** Unpacks libopenblas0-openmp beside the system BLAS (never replacing it), once. */
function openblas(): string | undefined {
  if (fs.existsSync(path.join(OPENBLAS_LIB, 'libblas.so.3'))) return OPENBLAS_LIB;
  fs.mkdirSync(OPENBLAS_DIR, { recursive: true });
  const dl = spawnSync('sh', ['-c', `cd ${OPENBLAS_DIR} && apt-get download libopenblas0-openmp && dpkg-deb -x libopenblas0-openmp_*.deb .`], { stdio: 'ignore' });
  return dl.status === 0 && fs.existsSync(OPENBLAS_LIB) ? OPENBLAS_LIB : undefined;
}

/** Runs the given sections; returns the results, or a reason why the baseline could not run. */
export function runTorchBaseline(sections: string[], reps: number): TorchResults | string {
  if (!fs.existsSync(SCRIPT)) return `${SCRIPT} not found (../shared is not beside this checkout)`;
  if (spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) {
    return 'python3-torch is not installed (apt-get install python3-torch python3-numpy)';
  }
  const blas = openblas();
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'torch-bench-')), 'torch.json');
  const env = {
    ...process.env,
    OMP_NUM_THREADS: '2',
    OPENBLAS_CORETYPE: 'SkylakeX', // the strongest configuration in BASELINES.md
    MALLOC_MMAP_MAX_: '0',
    MALLOC_TRIM_THRESHOLD_: '68719476736',
    ...(blas ? { LD_LIBRARY_PATH: blas } : {}),
  };
  console.log(`running the PyTorch baseline (${sections.join(', ')}; BLAS: ${blas ? 'OpenBLAS OpenMP' : 'system default — slow, see BASELINES.md'}) …`);
  const args = [SCRIPT, '--sections', sections.join(','), '--reps', String(reps), '--json', out, '--quiet-threshold', '1', '--quiet-timeout', '1'];
  const r = spawnSync('/usr/bin/python3', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) return `torch_gpt2_bench.py exited with ${r.status}`;
  return (JSON.parse(fs.readFileSync(out, 'utf8')) as { results: TorchResults }).results;
}

/** Prints ours next to torch's with the ratio; `pairs` maps our key → torch's result name. */
export function printComparison(ours: Record<string, number>, torch: TorchResults, pairs: Record<string, string>): Record<string, number> {
  const ratios: Record<string, number> = {};
  console.log(`\n${'figure'.padEnd(28)} ${'ours'.padStart(9)} ${'torch'.padStart(9)}  ratio`);
  for (const [key, name] of Object.entries(pairs)) {
    const theirs = torch[name]?.median;
    if (ours[key] === undefined || theirs === undefined) continue;
    ratios[`${key}_vs_torch`] = Math.round((ours[key]! / theirs) * 100) / 100;
    console.log(`${key.padEnd(28)} ${ours[key]!.toFixed(1).padStart(9)} ${theirs.toFixed(1).padStart(9)}  ${(ours[key]! / theirs).toFixed(2)}×`);
  }
  return ratios;
}
