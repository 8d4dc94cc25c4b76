// ORT sessions by row length, for batches padded to bucketed lengths (finetune-data.ts). Each
// session holds its own arena for activations, so only the most recently used few stay open;
// with shuffled batches a run keeps returning to the same few buckets, so a session is rarely
// built twice.
import type { TrainSession } from './session.js';

export class SessionPool {
  private readonly open = new Map<string, Promise<TrainSession>>(); // insertion order = least recently used first
  /** Sessions built so far (for logs and tests). */
  created = 0;

  constructor(
    private readonly make: (seqLen: number, train: boolean) => Promise<TrainSession>,
    /** Open sessions kept per kind (training, evaluation). */
    private readonly limit = 4,
  ) {}

  async get(seqLen: number, train: boolean): Promise<TrainSession> {
    const key = `${train ? 'train' : 'eval'}:${seqLen}`;
    let s = this.open.get(key);
    if (s) {
      this.open.delete(key); // re-insert: most recently used
    } else {
      const same = [...this.open.keys()].filter((k) => k.startsWith(train ? 'train:' : 'eval:'));
      if (same.length >= this.limit) {
        const oldest = same[0]!;
        const evicted = this.open.get(oldest)!;
        this.open.delete(oldest);
        await (await evicted).close();
      }
      s = this.make(seqLen, train);
      this.created++;
      s.catch(() => this.open.delete(key)); // a failed build is not cached
    }
    this.open.set(key, s);
    return s;
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const s of await Promise.allSettled(all)) if (s.status === 'fulfilled') await s.value.close();
  }
}
