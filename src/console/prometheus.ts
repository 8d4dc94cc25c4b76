// Reading /metrics (Prometheus text format 0.0.4, as src/server/metrics.ts writes it) into sums per
// series name, which is all the server page needs: it adds a metric's values over their labels.

/** Metric name (with _sum/_count/_bucket suffixes as written) → the sum of its samples' values. */
export type Samples = Map<string, number>;

export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    // name{labels} value: label values may hold spaces, so the value is what follows the last space
    const at = line.lastIndexOf(' ');
    const value = Number(line.slice(at + 1));
    const name = line.slice(0, at).replace(/\{.*\}$/, '');
    if (name.endsWith('_bucket') || !Number.isFinite(value)) continue;
    out.set(name, (out.get(name) ?? 0) + value);
  }
  return out;
}

/** The change of a counter between two scrapes, per second (0 before there are two). */
export function rate(prev: Samples | undefined, next: Samples, name: string, seconds: number): number {
  if (!prev || seconds <= 0) return 0;
  return Math.max(0, (next.get(name) ?? 0) - (prev.get(name) ?? 0)) / seconds;
}

/** A histogram's mean over the interval between two scrapes, or over all time when nothing was observed in it. */
export function intervalMean(prev: Samples | undefined, next: Samples, name: string): number | undefined {
  const sum = next.get(`${name}_sum`) ?? 0;
  const count = next.get(`${name}_count`) ?? 0;
  const dCount = count - (prev?.get(`${name}_count`) ?? 0);
  if (prev && dCount > 0) return (sum - (prev.get(`${name}_sum`) ?? 0)) / dCount;
  return count > 0 ? sum / count : undefined;
}
