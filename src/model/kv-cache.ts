// The KV cache, owned by JS: per layer one K and one V buffer laid out [slot, head, position, hd],
// which is the layout attention reads. A forward call over a contiguous range of slots hands ORT
// one subarray per layer with no copy (inputs are zero-copy); the graph returns only the new
// tokens' K/V rows, which are written in place here. Schedulers keep running sequences in
// neighbouring slots (moveSlot) so that the common case never copies.
import type { GPTConfig } from './config.js';

export class KVCache {
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  /** Positions allocated per slot; grows by doubling up to the context length. */
  capacity: number;
  private readonly heads: number;
  private readonly headDim: number;

  constructor(
    readonly cfg: GPTConfig,
    readonly slots: number,
    initialCapacity = 64,
  ) {
    this.heads = cfg.nHead;
    this.headDim = cfg.nEmbd / cfg.nHead;
    this.capacity = Math.min(cfg.contextLength, initialCapacity);
    for (let l = 0; l < cfg.nLayer; l++) {
      this.k.push(new Float32Array(this.slotSize()));
      this.v.push(new Float32Array(this.slotSize()));
    }
  }

  private slotSize(capacity = this.capacity): number {
    return this.slots * this.cfg.nEmbd * capacity;
  }

  get bytes(): number {
    return 2 * this.cfg.nLayer * this.slotSize() * 4;
  }

  /** Makes room for `positions` positions in every slot (keeps contents). */
  reserve(positions: number): void {
    if (positions <= this.capacity) return;
    if (positions > this.cfg.contextLength) throw new Error(`KV cache: ${positions} positions exceed the context length ${this.cfg.contextLength}`);
    const capacity = Math.min(this.cfg.contextLength, Math.max(positions, 2 * this.capacity));
    const rows = this.slots * this.heads; // each (slot, head) owns `capacity` rows of hd values
    const [oldStride, newStride] = [this.capacity * this.headDim, capacity * this.headDim];
    const grow = (a: Float32Array) => {
      const b = new Float32Array(this.slotSize(capacity));
      for (let r = 0; r < rows; r++) b.set(a.subarray(r * oldStride, (r + 1) * oldStride), r * newStride);
      return b;
    };
    for (let l = 0; l < this.cfg.nLayer; l++) {
      this.k[l] = grow(this.k[l]!);
      this.v[l] = grow(this.v[l]!);
    }
    this.capacity = capacity;
  }

  /** Slots [first, first+count) of layer l as [count, H, capacity, hd], without a copy. */
  view(kind: 'k' | 'v', layer: number, first: number, count: number): Float32Array {
    const per = this.heads * this.capacity * this.headDim;
    return this[kind][layer]!.subarray(first * per, (first + count) * per);
  }

  /**
   * The given slots of layer l copied side by side as [slots, H, positions, hd]: for batches whose
   * slots are not neighbours, or to send only the first `positions` of each across a bus.
   */
  gather(kind: 'k' | 'v', layer: number, slots: number[], positions = this.capacity): Float32Array {
    const [H, hd, cap] = [this.heads, this.headDim, this.capacity];
    const src = this[kind][layer]!;
    const out = new Float32Array(slots.length * H * positions * hd);
    slots.forEach((s, i) => {
      for (let h = 0; h < H; h++) out.set(src.subarray((s * H + h) * cap * hd, ((s * H + h) * cap + positions) * hd), (i * H + h) * positions * hd);
    });
    return out;
  }

  /** Moves a sequence's cache from one slot to another (e.g. to close a gap left by a finished one). */
  moveSlot(from: number, to: number): void {
    if (from === to) return;
    const per = this.heads * this.capacity * this.headDim;
    for (const buf of [...this.k, ...this.v]) buf.copyWithin(to * per, from * per, (from + 1) * per);
  }

  /**
   * Positions [start, start+count) of a slot in every layer, as [layer, k|v, H, count, hd]: a copy
   * that outlives the slot (the prefix cache's blocks).
   */
  readPositions(slot: number, start: number, count: number): Float32Array {
    const [H, hd, cap] = [this.heads, this.headDim, this.capacity];
    const out = new Float32Array(2 * this.cfg.nLayer * H * count * hd);
    let at = 0;
    for (let l = 0; l < this.cfg.nLayer; l++) {
      for (const buf of [this.k[l]!, this.v[l]!]) {
        for (let h = 0; h < H; h++, at += count * hd) out.set(buf.subarray(((slot * H + h) * cap + start) * hd, ((slot * H + h) * cap + start + count) * hd), at);
      }
    }
    return out;
  }

  /** readPositions' inverse: `src` ([layer, k|v, H, count, hd]) at positions start.. of a slot (reserve them first). */
  writePositions(slot: number, start: number, count: number, src: Float32Array): void {
    const [H, hd, cap] = [this.heads, this.headDim, this.capacity];
    let at = 0;
    for (let l = 0; l < this.cfg.nLayer; l++) {
      for (const buf of [this.k[l]!, this.v[l]!]) {
        for (let h = 0; h < H; h++, at += count * hd) buf.set(src.subarray(at, at + count * hd), ((slot * H + h) * cap + start) * hd);
      }
    }
  }

  /**
   * Writes the first `count` positions of batch row `b` of `src` ([B, H, T, hd], the layout the
   * graph returns new K/V in) at positions start.. of `slot`: one copy per head.
   */
  write(kind: 'k' | 'v', layer: number, slot: number, start: number, src: Float32Array, b: number, T: number, count: number): void {
    const [H, hd, cap] = [this.heads, this.headDim, this.capacity];
    const dst = this[kind][layer]!;
    for (let h = 0; h < H; h++) {
      const from = (b * H + h) * T * hd;
      dst.set(src.subarray(from, from + count * hd), ((slot * H + h) * cap + start) * hd);
    }
  }
}
