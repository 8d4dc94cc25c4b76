// The model thread's side of /v1/embeddings: requests wait here; the inputs of every waiting
// request then run together, longest first, padded into runs of at most `maxTokens` rows × length
// (planRuns), each run taking its turn on the model (turns.ts) between the scheduler's forward
// calls. A request is answered as soon as its last row is done. The embedding graph (Embedder) is
// opened at the first request: a server that never embeds pays none of its memory.
import type { Embedder } from '../model/embedding.js';
import { planRuns } from '../model/embedding.js';
import type { EmbedRequest, EmbedResult } from './protocol.js';
import type { Turns } from './turns.js';

export class EmbeddingQueue {
  private waiting: EmbedRequest[] = [];
  private embedder: Promise<Embedder> | undefined;
  private draining: Promise<void> | undefined;

  constructor(
    private readonly open: () => Promise<Embedder>,
    private readonly turns: Turns,
    private readonly post: (msg: EmbedResult) => void,
    /** Padded tokens per run: the scheduler's prefill budget, so a run stalls decoding no longer than a prefill does. */
    private readonly maxTokens: number,
  ) {}

  submit(req: EmbedRequest): void {
    this.waiting.push(req);
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
  }

  /** Answers what was asked, then releases the embedding graph. */
  async close(): Promise<void> {
    await this.draining;
    const embedder = this.embedder;
    this.embedder = undefined;
    await embedder?.then((e) => e.close(), () => {});
  }

  private async drain(): Promise<void> {
    while (this.waiting.length) {
      const requests = this.waiting.splice(0);
      let embedder: Embedder;
      try {
        embedder = await (this.embedder ??= this.open());
      } catch (e) {
        this.embedder = undefined; // the next request tries again
        for (const r of requests) this.post({ type: 'embed-error', id: r.id, message: `could not open the embedding graph: ${(e as Error).message}` });
        continue;
      }
      await this.runAll(embedder, requests);
    }
  }

  /** Every row of `requests` in shared runs; each request answered when its last run ends. */
  private async runAll(embedder: Embedder, requests: EmbedRequest[]): Promise<void> {
    const C = embedder.config.nEmbd;
    const rows = requests.flatMap((r, k) => r.rows.map((row, i) => ({ row, request: k, index: i })));
    const state = requests.map((r) => ({ data: new Float32Array(r.rows.length * C), left: r.rows.length, error: undefined as string | undefined }));
    for (const run of planRuns(rows.map((x) => x.row.tokens.length), this.maxTokens)) {
      const batch = run.map((i) => rows[i]!);
      // Let messages and the scheduler in first: ORT's run blocks this thread for the whole call.
      await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        const out = await this.turns.take(() => embedder.run(batch.map((x) => x.row)));
        batch.forEach((x, b) => state[x.request]!.data.set(out.subarray(b * C, (b + 1) * C), x.index * C));
      } catch (e) {
        for (const x of batch) state[x.request]!.error ??= (e as Error).message;
      }
      for (const k of new Set(batch.map((x) => x.request))) {
        const s = state[k]!;
        s.left -= batch.filter((x) => x.request === k).length;
        if (s.left > 0) continue;
        const id = requests[k]!.id;
        this.post(s.error === undefined ? { type: 'embeddings', id, data: s.data } : { type: 'embed-error', id, message: s.error });
      }
    }
  }
}
