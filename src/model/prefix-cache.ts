// Automatic prefix caching, vLLM's design: the K/V of prompts' full 16-token blocks, kept after
// their prefill and keyed by a hash chain (a block's key hashes its parent's key and its own
// tokens, so it names every token up to and including the block). A prompt that starts with cached
// blocks gets their rows copied into its KV slot and prefills only the rest.
//
// Blocks are copies, not pages shared with running sequences, so evicting one never touches a
// sequence in flight. Eviction is least-recently-used under a byte budget; a chain is touched leaf
// to root, so its deepest blocks go first and a root (which every longer match needs) goes last.
import { createHash } from 'node:crypto';
import type { KVCache } from './kv-cache.js';

export const BLOCK_TOKENS = 16;
/** serve's default budget per model (--prefix-cache-mb): 227 blocks (3,632 tokens) of GPT-2 124M. */
export const DEFAULT_PREFIX_CACHE_MB = 256;

/** Totals since the cache was made (blocks: now), posted with the scheduler's steps for /metrics. */
export interface PrefixCacheStats {
  /** Prompt tokens of the sequences that looked the cache up. */
  queriedTokens: number;
  /** Of those, tokens whose K/V came from the cache, or a running sequence's slot (not prefilled). */
  hitTokens: number;
  blocks: number;
  evictions: number;
}

export class PrefixCache {
  /** Key → the block's K/V ([layer, k|v, H, block, hd]); Map order is recency, least recent first. */
  private readonly blocks = new Map<string, Float32Array>();
  /** Blocks that fit the budget. */
  readonly capacity: number;
  private queriedTokens = 0;
  private hitTokens = 0;
  private evictions = 0;

  constructor(
    private readonly kv: KVCache,
    budgetBytes: number,
    readonly blockTokens = BLOCK_TOKENS,
  ) {
    this.capacity = Math.floor(budgetBytes / PrefixCache.blockBytes(kv, blockTokens));
  }

  /** Bytes one block of `kv`'s model takes: K and V of every layer for blockTokens positions. */
  static blockBytes(kv: KVCache, blockTokens = BLOCK_TOKENS): number {
    return 2 * kv.cfg.nLayer * blockTokens * kv.cfg.nEmbd * 4;
  }

  /** Keys of the prompt's first `count` blocks (default: every full one). */
  chain(prompt: readonly number[], count = Math.floor(prompt.length / this.blockTokens)): string[] {
    const keys: string[] = [];
    let parent = '';
    for (let b = 0; b < count; b++) {
      const h = createHash('sha256');
      h.update(parent);
      h.update(new Uint32Array(prompt.slice(b * this.blockTokens, (b + 1) * this.blockTokens)));
      keys.push((parent = h.digest('base64')));
    }
    return keys;
  }

  /** Blocks a prompt may take from the cache: its last token is always prefilled, as its logits pick the next. */
  reusable(prompt: readonly number[]): number {
    return Math.floor((prompt.length - 1) / this.blockTokens);
  }

  has(key: string): boolean {
    return this.blocks.has(key);
  }

  get size(): number {
    return this.blocks.size;
  }

  /** Leading blocks of `keys` that are cached. */
  matched(keys: readonly string[]): number {
    let n = 0;
    while (n < keys.length && this.blocks.has(keys[n]!)) n++;
    return n;
  }

  /**
   * Copies the longest cached prefix of `prompt` into positions 0.. of `slot` and returns its
   * length in tokens (whole blocks, always fewer than the prompt's).
   */
  load(prompt: readonly number[], slot: number): number {
    const keys = this.chain(prompt, this.reusable(prompt));
    const n = this.matched(keys);
    this.queriedTokens += prompt.length;
    this.hitTokens += n * this.blockTokens;
    if (n === 0) return 0;
    this.kv.reserve(n * this.blockTokens);
    for (let b = 0; b < n; b++) this.kv.writePositions(slot, b * this.blockTokens, this.blockTokens, this.blocks.get(keys[b]!)!);
    this.touch(keys.slice(0, n));
    return n * this.blockTokens;
  }

  /** Keeps the full blocks of a prompt just prefilled into `slot` (those not cached yet are copied out). */
  store(prompt: readonly number[], slot: number): void {
    // Blocks beyond the budget would be evicted at once: not copied.
    const keys = this.chain(prompt, Math.min(this.capacity, Math.floor(prompt.length / this.blockTokens)));
    keys.forEach((key, b) => {
      if (!this.blocks.has(key)) this.blocks.set(key, this.kv.readPositions(slot, b * this.blockTokens, this.blockTokens));
    });
    this.touch(keys);
    for (const key of this.blocks.keys()) {
      if (this.blocks.size <= this.capacity) break;
      this.blocks.delete(key);
      this.evictions++;
    }
  }

  /** Counts `tokens` a sequence took from another's slot instead (Scheduler: rows past the cached blocks), as hits. */
  countShared(tokens: number): void {
    this.hitTokens += tokens;
  }

  stats(): PrefixCacheStats {
    return { queriedTokens: this.queriedTokens, hitTokens: this.hitTokens, blocks: this.blocks.size, evictions: this.evictions };
  }

  /** Marks a chain most recently used, root last (so it is evicted after its descendants). */
  private touch(keys: readonly string[]): void {
    for (let b = keys.length - 1; b >= 0; b--) {
      const block = this.blocks.get(keys[b]!)!;
      this.blocks.delete(keys[b]!);
      this.blocks.set(keys[b]!, block);
    }
  }
}
