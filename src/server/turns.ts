// Turns on one model thread's ONNX Runtime: calls run one at a time, first come first served. The
// scheduler's forward calls and the embedding queue's runs both take turns, so while both have
// work they alternate (one embedding run between two generation forwards, never a whole backlog).
export class Turns {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after every call taken before it has settled; its result or error is the caller's. */
  take<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => {}); // a failed turn still hands on to the next
    return result;
  }
}
