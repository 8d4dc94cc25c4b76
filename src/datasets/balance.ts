// Chapter 6's create_balanced_dataset, generalised to any number of classes: every class is
// undersampled (randomly, seeded) to the size of the smallest class, so a classifier cannot
// score well by always predicting the majority label.
import { Rng } from '../model/rng.js';

/**
 * Kept records stay in their original file order (the book concatenates "ham subset + spam"; a
 * later splitByRatio shuffles anyway, and file order is easier to inspect).
 */
export function balanceClasses<T extends { label: string | number }>(records: readonly T[], seed: number): T[] {
  // Key by type too, so the string "1" and the number 1 could never merge into one class.
  const byClass = new Map<string, number[]>();
  records.forEach((r, i) => {
    const key = `${typeof r.label}:${r.label}`;
    const list = byClass.get(key);
    if (list) list.push(i);
    else byClass.set(key, [i]);
  });
  if (byClass.size === 0) return [];
  const smallest = Math.min(...[...byClass.values()].map((l) => l.length));
  const rng = new Rng(seed);
  const keep = new Uint8Array(records.length);
  // Classes in order of first appearance, so the RNG stream (and result) depends only on the input.
  for (const indices of byClass.values()) {
    // Partial Fisher–Yates: the first `smallest` slots end up a uniform random subset.
    for (let i = 0; i < smallest; i++) {
      const j = i + rng.int(indices.length - i);
      [indices[i], indices[j]] = [indices[j]!, indices[i]!];
      keep[indices[i]!] = 1;
    }
  }
  return records.filter((_, i) => keep[i] === 1);
}
