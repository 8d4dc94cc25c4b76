// The KV cache, owned by JS: per layer one K and one V buffer laid out [position, slot, C].
// ORT reads the first P positions of all slots as one contiguous prefix (inputs are zero-copy),
// and the graph returns only new rows, which we write in place here.
import type { GPTConfig } from './config.js';

export class KVCache {
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  /** Positions allocated per slot; grows by doubling up to the context length. */
  capacity: number;

  constructor(
    readonly cfg: GPTConfig,
    readonly slots: number,
    initialCapacity = 64,
  ) {
    this.capacity = Math.min(cfg.contextLength, initialCapacity);
    for (let l = 0; l < cfg.nLayer; l++) {
      this.k.push(new Float32Array(this.capacity * slots * cfg.nEmbd));
      this.v.push(new Float32Array(this.capacity * slots * cfg.nEmbd));
    }
  }

  get bytes(): number {
    return 2 * this.cfg.nLayer * this.capacity * this.slots * this.cfg.nEmbd * 4;
  }

  /** Makes room for `positions` positions in every slot (keeps contents). */
  reserve(positions: number): void {
    if (positions <= this.capacity) return;
    if (positions > this.cfg.contextLength) throw new Error(`KV cache: ${positions} positions exceed the context length ${this.cfg.contextLength}`);
    const capacity = Math.min(this.cfg.contextLength, Math.max(positions, 2 * this.capacity));
    const grow = (a: Float32Array) => {
      const b = new Float32Array(capacity * this.slots * this.cfg.nEmbd);
      b.set(a);
      return b;
    };
    for (let l = 0; l < this.cfg.nLayer; l++) {
      this.k[l] = grow(this.k[l]!);
      this.v[l] = grow(this.v[l]!);
    }
    this.capacity = capacity;
  }

  /** The first `positions` positions of every slot of layer l: [positions, slots, C], no copy. */
  prefix(kind: 'k' | 'v', layer: number, positions: number): Float32Array {
    return this[kind][layer]!.subarray(0, positions * this.slots * this.cfg.nEmbd);
  }

  /** Writes rows [count, C] (starting at row `from` of `src`) at positions start.. of `slot`. */
  write(kind: 'k' | 'v', layer: number, slot: number, start: number, src: Float32Array, from: number, count: number): void {
    const C = this.cfg.nEmbd;
    const dst = this[kind][layer]!;
    for (let t = 0; t < count; t++) {
      const at = ((start + t) * this.slots + slot) * C;
      dst.set(src.subarray((from + t) * C, (from + t + 1) * C), at);
    }
  }
}
