// Summary of an ORT profile (enableProfiling's JSON trace): kernel time per op type and the
// slowest nodes, per run. Used by bench/train.ts --profile to see where a training step goes.
import fs from 'node:fs';

interface TraceEvent {
  cat?: string;
  name: string;
  ts: number; // µs
  dur: number; // µs
  args?: { op_name?: string; output_type_shape?: unknown };
}

/**
 * Per-run averages over the runs that took at most 1.15× the median run, the first excluded
 * (warm-up: first-touch memory, allocator growth; slow runs: other processes on a shared machine).
 */
export function summarizeProfile(file: string, topNodes = 15): string {
  const all = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceEvent[];
  const allRuns = all.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(1);
  const median = [...allRuns].sort((a, b) => a.dur - b.dur)[Math.floor(allRuns.length / 2)]?.dur ?? Infinity;
  const runs = allRuns.filter((r) => r.dur <= 1.15 * median);
  const events = all.filter((e) => runs.some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur));
  const n = Math.max(1, runs.length);
  const byOp = new Map<string, { us: number; count: number }>();
  const byNode = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const o = byOp.get(op) ?? { us: 0, count: 0 };
    o.us += e.dur;
    o.count++;
    byOp.set(op, o);
    const key = `${e.name.replace(/_kernel_time$/, '')} ${JSON.stringify(e.args?.output_type_shape ?? '')}`;
    byNode.set(key, (byNode.get(key) ?? 0) + e.dur);
  }
  const total = [...byOp.values()].reduce((s, o) => s + o.us, 0);
  const ms = (us: number) => (us / 1000 / n).toFixed(1).padStart(8);
  const lines = [`ORT profile ${file}: ${runs.length} of ${allRuns.length + 1} runs, ${ms(runs.reduce((s, r) => s + r.dur, 0))} ms/run wall, ${ms(total)} ms/run in kernels`];
  for (const [op, o] of [...byOp].sort((a, b) => b[1].us - a[1].us)) {
    if (o.us / total < 0.002) continue;
    lines.push(`  ${op.padEnd(28)} ${ms(o.us)} ms/run ${((100 * o.us) / total).toFixed(1).padStart(5)}%  ${Math.round(o.count / n)} nodes`);
  }
  lines.push('  slowest nodes:');
  for (const [node, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, topNodes)) lines.push(`  ${ms(us)} ms  ${node.slice(0, 140)}`);
  return lines.join('\n');
}
