/**
 * Runs async sections one at a time, in the order they were asked for: what a synchronous store
 * gave for free (nothing ran between a read and the write that depends on it), kept now that
 * every store call awaits. Not reentrant: a section must never wait for another section.
 */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}
