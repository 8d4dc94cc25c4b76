// The HTTP thread's embeddings waiting on one model thread: each request's promise until the thread
// answers it (EmbedResult), bounded like a classifier's queue, and all failed at once when the
// thread stops or the server shuts down.
import type { EmbedResult } from './protocol.js';

/** A request ended by the server (shutdown) or by its model thread stopping: the client's 503, not a failure of the request. */
export class EmbedUnavailable extends Error {
  constructor(
    message: string,
    readonly code: 'server_shutting_down' | 'model_unavailable',
  ) {
    super(message);
  }
}

export class EmbedRequests {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (data: Float32Array) => void; reject: (e: Error) => void }>();

  /** Requests sent and not yet answered. */
  get size(): number {
    return this.pending.size;
  }

  /** A promise for request `id`'s vectors; `send` posts it to the thread. */
  add(send: (id: number) => void): Promise<Float32Array> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      send(id);
    });
  }

  settle(msg: EmbedResult): void {
    const p = this.pending.get(msg.id);
    if (!p) return; // failed here already (shutdown)
    this.pending.delete(msg.id);
    if (msg.type === 'embeddings') p.resolve(msg.data);
    else p.reject(new Error(msg.message));
  }

  failAll(message: string, code: EmbedUnavailable['code']): void {
    for (const p of this.pending.values()) p.reject(new EmbedUnavailable(message, code));
    this.pending.clear();
  }
}
