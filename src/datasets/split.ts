// Train/test/validation splits. Both follow the book's arithmetic: each part but the last gets
// int(n · ratio) records (Python's int() truncates), the last part gets the rest.
import { Rng } from '../model/rng.js';

/**
 * Chapter 7: file order, no shuffle — first 85% train, next 10% test, the rest validation.
 * For instruction-data.json (1,100 records) that is 935 / 110 / 55.
 */
export function bookInstructionSplit<T>(records: readonly T[]): { train: T[]; test: T[]; validation: T[] } {
  const n = records.length;
  const trainEnd = Math.trunc(n * 0.85); // the same double product Python computes, then int()
  const testEnd = trainEnd + Math.trunc(n * 0.1);
  return { train: records.slice(0, trainEnd), test: records.slice(trainEnd, testEnd), validation: records.slice(testEnd) };
}

/**
 * Chapter 6's random_split generalised: shuffle with a seeded RNG, then cut by `ratios` (e.g.
 * [0.7, 0.1, 0.2] → train, validation, test as in the book). The same seed and input give the
 * same split on every run; it is not the same permutation as pandas' sample(random_state=123).
 */
export function splitByRatio<T>(records: readonly T[], ratios: readonly number[], seed: number): T[][] {
  if (ratios.length === 0) throw new RangeError('splitByRatio: ratios must not be empty');
  for (const r of ratios) if (!(Number.isFinite(r) && r >= 0)) throw new RangeError(`splitByRatio: ratios must be non-negative numbers, got ${r}`);
  const sum = ratios.reduce((a, b) => a + b, 0);
  // The last part silently absorbing a missing 10% would be a surprise, so demand a full partition.
  if (Math.abs(sum - 1) > 1e-9) throw new RangeError(`splitByRatio: ratios must sum to 1, got ${sum}`);
  const shuffled = shuffle(records, seed);
  const parts: T[][] = [];
  let at = 0;
  ratios.forEach((r, i) => {
    const end = i === ratios.length - 1 ? shuffled.length : at + Math.trunc(shuffled.length * r);
    parts.push(shuffled.slice(at, end));
    at = end;
  });
  return parts;
}

/** A seeded Fisher–Yates shuffle (a copy; the input is untouched). */
export function shuffle<T>(records: readonly T[], seed: number): T[] {
  const out = records.slice();
  const rng = new Rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
