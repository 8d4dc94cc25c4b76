// GPT-2's vocabulary as a byte trie, flattened in depth-first order, and the walk that turns a
// DFA state into the set of tokens whose bytes the DFA can read from it. A subtree is skipped as
// soon as its prefix is dead, so the cost is the number of live prefixes, not 50,257 full matches.
import { DEAD, type ByteDfa } from './byte-dfa.js';
import { EOT, tokenBytes, VOCAB_SIZE } from './tokenizer.js';

interface FlatTrie {
  /** Per node, in depth-first order: the byte on the edge into it, its depth (1 = a first byte), */
  byte: Uint8Array;
  depth: Uint8Array;
  /** the index just past its subtree, and the token that ends there (-1: none). */
  skip: Int32Array;
  token: Int32Array;
  maxDepth: number;
}

let trie: FlatTrie | undefined;

/** Built once per thread on first use: every token but <|endoftext|>, which constraints handle apart. */
export function tokenTrie(): FlatTrie {
  if (trie) return trie;
  const ids = Array.from({ length: EOT }, (_, t) => t);
  const bytes = ids.map((t) => tokenBytes(t));
  ids.sort((a, b) => compareBytes(bytes[a]!, bytes[b]!));
  // In sorted order, a node is new wherever a token's bytes leave the previous token's path.
  const byte: number[] = [];
  const depth: number[] = [];
  const token: number[] = [];
  const path: number[] = []; // node index per depth along the previous token
  const skip: number[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  for (const t of ids) {
    const b = bytes[t]!;
    let common = 0;
    while (common < b.length && common < prev.length && b[common] === prev[common]) common++;
    for (let d = common; d < path.length; d++) skip[path[d]!] = byte.length; // subtrees that end here
    path.length = common;
    for (let d = common; d < b.length; d++) {
      path.push(byte.length);
      byte.push(b[d]!);
      depth.push(d + 1);
      token.push(-1);
      skip.push(0);
    }
    token[path[b.length - 1]!] = t;
    prev = b;
  }
  for (const n of path) skip[n] = byte.length;
  trie = {
    byte: Uint8Array.from(byte),
    depth: Uint8Array.from(depth),
    skip: Int32Array.from(skip),
    token: Int32Array.from(token),
    maxDepth: depth.reduce((a, b) => Math.max(a, b), 0),
  };
  return trie;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Words of a bitset over the vocabulary (bit t of word t >> 5). */
export const MASK_WORDS = Math.ceil(VOCAB_SIZE / 32);

/** Tokens readable from `state`, plus <|endoftext|> when the state accepts. */
export function tokenMask(dfa: ByteDfa, state: number): Uint32Array {
  const t = tokenTrie();
  const mask = new Uint32Array(MASK_WORDS);
  const at = new Int32Array(t.maxDepth + 1); // DFA state after each byte of the current path
  at[0] = state;
  const n = t.byte.length;
  for (let i = 0; i < n; ) {
    const s = dfa.next(at[t.depth[i]! - 1]!, t.byte[i]!);
    if (s === DEAD) {
      i = t.skip[i]!;
      continue;
    }
    at[t.depth[i]!] = s;
    const tok = t.token[i]!;
    if (tok >= 0) mask[tok >>> 5]! |= 1 << (tok & 31);
    i++;
  }
  if (dfa.isAccepting(state)) mask[EOT >>> 5]! |= 1 << (EOT & 31);
  return mask;
}

export const hasToken = (mask: Uint32Array, token: number): boolean => (mask[token >>> 5]! & (1 << (token & 31))) !== 0;
