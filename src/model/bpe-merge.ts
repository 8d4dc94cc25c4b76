// BPE for one long pre-tokenized piece in O(n log n), with gpt-tokenizer's exact output: the library
// rescans the whole piece after every merge, which is quadratic (issue 18: one long word froze the server).

// Index = token id; a string where the token's bytes are valid UTF-8, else the raw bytes.
import bpeRanks from 'gpt-tokenizer/bpeRanks/r50k_base';

const utf8 = new TextEncoder();
const NO_MERGE = -1;
const ASCII_ONLY = /^[\x00-\x7f]*$/;

interface VocabTables {
  /** Token id of each single byte. */
  byteToken: Int32Array;
  /** Tokens by text, for those stored as text: the library's whole-piece lookup. */
  textToken: Map<string, number>;
  /** Each token's bytes as a binary string (one char per byte). */
  binaryOf: string[];
  /** Token ids by binary string. */
  tokenOfBinary: Map<string, number>;
}

let vocab: VocabTables | undefined;

/** One char per byte: a Map key that compares byte sequences exactly. */
function binaryString(bytes: Iterable<number>): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function binaryOfEntry(entry: string | number[]): string {
  if (typeof entry !== 'string') return binaryString(entry);
  return ASCII_ONLY.test(entry) ? entry : binaryString(utf8.encode(entry)); // ASCII is its own binary string
}

function buildVocabTables(): VocabTables {
  const textToken = new Map<string, number>();
  const tokenOfBinary = new Map<string, number>();
  const binaryOf = bpeRanks.map((entry, id) => {
    if (typeof entry === 'string') textToken.set(entry, id);
    const binary = binaryOfEntry(entry);
    tokenOfBinary.set(binary, id);
    return binary;
  });
  const byteToken = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteToken[b] = tokenOfBinary.get(String.fromCharCode(b))!;
  return { byteToken, textToken, binaryOf, tokenOfBinary };
}

function vocabTables(): VocabTables {
  vocab ??= buildVocabTables();
  return vocab;
}

/**
 * The token two adjacent tokens merge into, if their bytes together spell one. Cached per piece:
 * a long piece asks about the same few pairs many times, and a cache per call cannot grow without bound.
 */
class PairMerges {
  private readonly byLeft: (Map<number, number> | undefined)[] = [];

  constructor(private readonly tables: VocabTables) {}

  merged(left: number, right: number): number {
    const row = (this.byLeft[left] ??= new Map<number, number>());
    let token = row.get(right);
    if (token === undefined) {
      token = this.tables.tokenOfBinary.get(this.tables.binaryOf[left]! + this.tables.binaryOf[right]!) ?? NO_MERGE;
      row.set(right, token);
    }
    return token;
  }
}

/**
 * Heap entries are single numbers, rank * 2^32 + position, so one `<` orders them by rank and then
 * leftmost first (exact in a double: ranks are below 2^16 and positions below 2^32).
 */
const POSITION_SPAN = 2 ** 32;

class MinHeap {
  private items: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.items = new Float64Array(Math.max(capacity, 16));
  }

  push(item: number): void {
    if (this.size === this.items.length) this.grow();
    const items = this.items;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]! <= item) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): number {
    const items = this.items;
    const top = items[0]!;
    const last = items[--this.size]!;
    const n = this.size;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && items[child + 1]! < items[child]!) child++;
      if (items[child]! >= last) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }

  private grow(): void {
    const grown = new Float64Array(this.items.length * 2);
    grown.set(this.items);
    this.items = grown;
  }
}

/** The parts of a piece while merging. A part is named by the position of its first byte. */
class PartList {
  readonly token: Int32Array;
  readonly next: Int32Array; // = length after the last part
  readonly prev: Int32Array; // = -1 before the first part
  /**
   * Token that the part and the next one merge into; NO_MERGE if none or if the position no longer
   * starts a part. A heap entry that disagrees with it is stale.
   */
  readonly mergesInto: Int32Array;
  count: number;

  constructor(bytes: Uint8Array, byteToken: Int32Array) {
    const n = bytes.length;
    this.token = new Int32Array(n);
    this.next = new Int32Array(n);
    this.prev = new Int32Array(n);
    this.mergesInto = new Int32Array(n).fill(NO_MERGE);
    this.count = n;
    for (let i = 0; i < n; i++) {
      this.token[i] = byteToken[bytes[i]!]!;
      this.next[i] = i + 1;
      this.prev[i] = i - 1;
    }
  }

  get length(): number {
    return this.token.length;
  }

  /** Merges part `at` with the part after it into token `merged`. */
  merge(at: number, merged: number): void {
    const gone = this.next[at]!;
    const after = this.next[gone]!;
    this.token[at] = merged;
    this.mergesInto[gone] = NO_MERGE;
    this.next[at] = after;
    if (after < this.length) this.prev[after] = at;
    this.count--;
  }

  tokens(): number[] {
    const out = new Array<number>(this.count);
    for (let at = 0, i = 0; at < this.length; at = this.next[at]!) out[i++] = this.token[at]!;
    return out;
  }
}

/** Records what the pair starting at part `at` merges into, and queues it if it merges at all. */
function queuePair(parts: PartList, at: number, pairs: PairMerges, heap: MinHeap): void {
  const after = parts.next[at]!;
  const merged = after < parts.length ? pairs.merged(parts.token[at]!, parts.token[after]!) : NO_MERGE;
  parts.mergesInto[at] = merged;
  if (merged !== NO_MERGE) heap.push(merged * POSITION_SPAN + at);
}

/**
 * Token ids for the bytes of one piece. The rules are the library's (and tiktoken's): repeatedly merge
 * the adjacent pair of parts whose bytes together are the lowest-ranked token, the leftmost such pair
 * on ties. The parts form a linked list and the candidate pairs wait in a min-heap keyed by (rank,
 * position). In r50k_base a token's id is its rank, so a pair's rank is the id of the token it makes.
 */
export function mergeBytePairs(bytes: Uint8Array): number[] {
  const tables = vocabTables();
  const parts = new PartList(bytes, tables.byteToken);
  const pairs = new PairMerges(tables);
  const heap = new MinHeap(bytes.length);
  for (let at = 0; at < bytes.length - 1; at++) queuePair(parts, at, pairs, heap);
  while (heap.size > 0) {
    const entry = heap.pop();
    const merged = Math.floor(entry / POSITION_SPAN);
    const at = entry - merged * POSITION_SPAN;
    if (parts.mergesInto[at] !== merged) continue; // merged away, or its pair changed since queued
    parts.merge(at, merged);
    queuePair(parts, at, pairs, heap);
    const before = parts.prev[at]!;
    if (before >= 0) queuePair(parts, before, pairs, heap);
  }
  return parts.tokens();
}

/**
 * What gpt-tokenizer's encode gives for one pre-tokenized piece: the piece's own token if it is one
 * (checked first, as the library does), else the merge of its UTF-8 bytes.
 */
export function encodePiece(piece: string): number[] {
  const whole = vocabTables().textToken.get(piece);
  return whole !== undefined ? [whole] : mergeBytePairs(utf8.encode(piece));
}
