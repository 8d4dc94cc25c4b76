// Every random draw of a run comes from a stream derived from (seed, what, position): the epoch
// shuffle from the epoch, dropout masks from the micro-batch index, a new head or adapter from
// nothing more. A checkpoint therefore stores positions, not generator states, and a resumed
// run draws exactly what an uninterrupted one would have.
import { Rng } from '../model/rng.js';

export const SHUFFLE_STREAM = 1;
export const DROPOUT_STREAM = 2;
export const HEAD_STREAM = 11;
export const LORA_STREAM = 12;

/**
 * A seed for an independent random stream, derived from the run's seed and a position (e.g.
 * epoch, or step and micro-batch).
 */
export function streamSeed(seed: number, ...parts: number[]): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.floor(seed / 2 ** 32);
  let l = 0x27d4eb2f;
  for (const p of [seed, ...parts]) {
    l = Math.imul(l ^ (p >>> 0) ^ Math.floor(p / 2 ** 32), 0xc2b2ae35);
    l ^= l >>> 15;
    h = Math.imul(h ^ l, 0x165667b1);
    h ^= h >>> 13;
  }
  return (h >>> 11) * 2 ** 32 + (l >>> 0); // < 2^53: every bit reaches Rng
}

/** The epoch shuffle (PyTorch's DataLoader shuffle=True): a Fisher-Yates permutation of 0…size-1 seeded by (seed, epoch). */
export function epochOrder(size: number, seed: number, epoch: number): Uint32Array {
  const rng = new Rng(streamSeed(seed, SHUFFLE_STREAM, epoch));
  const order = Uint32Array.from({ length: size }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
