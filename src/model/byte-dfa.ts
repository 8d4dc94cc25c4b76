// A DFA over bytes built lazily from an NFA (subset construction on demand): a state's 256
// transitions are computed the first time any of them is asked for, so only the states that
// generation (and the token masks) actually visit are ever built. States are small integers,
// stable for the life of the DFA, so per-state caches (token-trie.ts's masks) can key on them.
import type { Nfa } from './byte-nfa.js';
import { ConstraintError } from './constraint-error.js';

export const DEAD = -1;
const UNKNOWN = -2;

/** Above this many DFA states a constraint stops growing and fails: its language is too wild to determinise. */
export const MAX_DFA_STATES = 20_000;

export class ByteDfa {
  readonly start: number;
  private readonly sets: Int32Array[] = [];
  private readonly accepting: boolean[] = [];
  private readonly rows: Int32Array[] = [];
  private readonly ids = new Map<string, number>();

  constructor(private readonly nfa: Nfa) {
    this.start = this.intern(this.closure([nfa.start]));
  }

  get size(): number {
    return this.sets.length;
  }

  isAccepting(state: number): boolean {
    return this.accepting[state]!;
  }

  /** The state after `byte`, or DEAD. */
  next(state: number, byte: number): number {
    const row = this.rows[state]!;
    const s = row[byte]!;
    return s !== UNKNOWN ? s : this.expand(state)[byte]!;
  }

  /** True when no byte leads anywhere from `state`. */
  isFinal(state: number): boolean {
    for (let b = 0; b < 256; b++) if (this.next(state, b) !== DEAD) return false;
    return true;
  }

  private expand(state: number): Int32Array {
    const targets: number[][] = Array.from({ length: 256 }, () => []);
    for (const s of this.sets[state]!) {
      for (const { set, to } of this.nfa.edges[s]!) for (let b = 0; b < 256; b++) if (set[b]) targets[b]!.push(to);
    }
    const row = this.rows[state]!;
    const seen = new Map<string, number>(); // bytes with the same targets share one closure
    for (let b = 0; b < 256; b++) {
      const t = targets[b]!;
      if (!t.length) {
        row[b] = DEAD;
        continue;
      }
      const key = t.join(',');
      let id = seen.get(key);
      if (id === undefined) seen.set(key, (id = this.intern(this.closure(t))));
      row[b] = id;
    }
    return row;
  }

  private closure(from: number[]): Int32Array {
    const inSet = new Set<number>(from);
    const stack = [...from];
    while (stack.length) {
      for (const t of this.nfa.eps[stack.pop()!]!) {
        if (inSet.has(t)) continue;
        inSet.add(t);
        stack.push(t);
      }
    }
    // Only states with byte edges, or the accept state, matter for what follows: dropping the
    // pure ε-states merges DFA states that differ only in them.
    const kept = [...inSet].filter((s) => this.nfa.edges[s]!.length > 0 || s === this.nfa.accept);
    return Int32Array.from(kept).sort();
  }

  private intern(set: Int32Array): number {
    const key = set.join(',');
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    if (this.sets.length >= MAX_DFA_STATES) throw new ConstraintError(`its automaton grew past ${MAX_DFA_STATES} states; simplify the pattern or schema`);
    this.sets.push(set);
    this.accepting.push(set.includes(this.nfa.accept));
    this.rows.push(new Int32Array(256).fill(UNKNOWN));
    this.ids.set(key, this.sets.length - 1);
    return this.sets.length - 1;
  }
}
