// Thompson's construction: a byte-level Lang (byte-lang.ts) → an NFA with ε-edges. Every construct
// gets fresh inner states, so paths of different constructs only meet at their shared ends.
import type { Lang } from './byte-lang.js';

export interface Nfa {
  /** Per state: ε-successors. */
  eps: number[][];
  /** Per state: byte edges (set[b] = 1 → `to`). */
  edges: { set: Uint8Array; to: number }[][];
  start: number;
  accept: number;
}

/** Above this many states a constraint is refused: it would cost too much memory to determinise. */
export const MAX_NFA_STATES = 200_000;

export class NfaTooLargeError extends Error {}

export function buildNfa(lang: Lang): Nfa {
  const eps: number[][] = [];
  const edges: { set: Uint8Array; to: number }[][] = [];
  const fresh = (): number => {
    if (eps.length >= MAX_NFA_STATES) throw new NfaTooLargeError(`the constraint needs more than ${MAX_NFA_STATES} automaton states`);
    eps.push([]);
    edges.push([]);
    return eps.length - 1;
  };
  const link = (from: number, to: number): void => void eps[from]!.push(to);
  const build = (x: Lang, from: number, to: number): void => {
    switch (x.k) {
      case 'empty':
        return; // no path
      case 'eps':
        return link(from, to);
      case 'bytes':
        edges[from]!.push({ set: x.set, to });
        return;
      case 'seq': {
        let at = from;
        x.parts.forEach((p, i) => {
          const next = i === x.parts.length - 1 ? to : fresh();
          build(p, at, next);
          at = next;
        });
        return;
      }
      case 'alt':
        for (const p of x.parts) {
          const a = fresh(); // fresh ends per branch: a branch's loop must not reach another branch
          const b = fresh();
          link(from, a);
          build(p, a, b);
          link(b, to);
        }
        return;
      case 'star': {
        const s = fresh();
        const e = fresh();
        link(from, s);
        build(x.x, s, e);
        link(e, s);
        link(s, to);
        return;
      }
      case 'list': {
        const a = fresh();
        const b = fresh();
        link(from, a);
        if (x.optional) link(from, to);
        build(x.item, a, b);
        build(x.sep, b, a);
        link(b, to);
        return;
      }
    }
  };
  const start = fresh();
  const accept = fresh();
  build(lang, start, accept);
  return { eps, edges, start, accept };
}
