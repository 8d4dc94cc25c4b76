// The KV cache kept on the device (WebGPU): per layer one K and one V tensor [S, H, P, hd] for all
// S slots that the inference graph reads and returns updated (gpt.ts, DeviceCache), fed back each
// run without a trip to the host. P is the context length plus one scratch position, where padding
// rows write so that no real position is touched twice in a run.
//
// Slots are indirect: the scheduler's slot numbers map to physical slots, so moving a sequence to
// another slot (to keep the running ones together, which the host cache needs for zero-copy views)
// only swaps two map entries here.
import * as ort from 'onnxruntime-node';
import type { GPTConfig } from './config.js';

export class DeviceKVCache {
  /** Positions per slot, the scratch one included. */
  readonly positions: number;
  private readonly physical: Int32Array;
  private tensors: Record<string, ort.Tensor> = {};

  constructor(
    readonly cfg: GPTConfig,
    readonly slots: number,
  ) {
    this.positions = cfg.contextLength + 1;
    this.physical = Int32Array.from({ length: slots }, (_, i) => i);
    // The first run reads zeros from the host (one upload); after it the cache lives on the device.
    const { nLayer, nHead: H, nEmbd: C } = cfg;
    const zeros = new Float32Array(slots * C * this.positions);
    for (let l = 0; l < nLayer; l++) {
      for (const kind of ['k', 'v']) this.tensors[`cache_${kind}.${l}`] = new ort.Tensor('float32', zeros, [slots, H, this.positions, C / H]);
    }
  }

  get scratch(): number {
    return this.positions - 1;
  }

  /** Device memory the cache holds (both K and V, every layer). */
  get bytes(): number {
    return 2 * this.cfg.nLayer * this.slots * this.cfg.nEmbd * this.positions * 4;
  }

  /** The physical slot behind scheduler slot `slot`. */
  slot(slot: number): number {
    return this.physical[slot]!;
  }

  /** Sequence in slot `from` now answers to `to` (whose sequence has ended): a swap of map entries, no data moves. */
  moveSlot(from: number, to: number): void {
    if (from === to) return;
    const p = this.physical;
    [p[from], p[to]] = [p[to]!, p[from]!];
  }

  /** The cache tensors to feed this run. */
  feeds(): Record<string, ort.Tensor> {
    return this.tensors;
  }

  /** Takes the run's outputs next_k.l, next_v.l as the cache; the previous device buffers are released. */
  update(out: ort.InferenceSession.OnnxValueMapType): void {
    for (const name of Object.keys(this.tensors)) {
      const next = out[name.replace('cache_', 'next_')] as ort.Tensor;
      const old = this.tensors[name]!;
      this.tensors[name] = next;
      if (old.location === 'gpu-buffer') old.dispose();
    }
  }

  /** Releases the device buffers. */
  dispose(): void {
    for (const t of Object.values(this.tensors)) if (t.location === 'gpu-buffer') t.dispose();
    this.tensors = {};
  }
}
