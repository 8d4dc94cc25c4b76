// GPT-2's byte-level BPE (tiktoken's "r50k_base"), on top of gpt-tokenizer.
//
// Two things the library does not do the way we need, so they are done here:
//  - special tokens: gpt-tokenizer only recognises '<|endoftext|>' at the very start of the input
//    (see shared/notes/gpt-tokenizer.md). We split on it ourselves, like tiktoken does.
//  - bytes: its decode() works on whole strings and shares one streaming TextDecoder between calls.
//    We need each token's raw bytes (a token can be part of a UTF-8 sequence, e.g. half an emoji),
//    so we read them from the library's rank table and do our own UTF-8 decoding.
// And one thing it does too slowly: its BPE merge is quadratic in a piece's length (a piece is one
// match of its pre-tokenizer regex, e.g. a word), so long pieces go to our own merge in bpe-merge.ts.

import { encode as bpeEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { R50K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
// Index = token id; a string where the token's bytes are valid UTF-8, else the raw bytes.
import bpeRanks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { encodePiece } from './bpe-merge.js';

export const EOT = 50256; // <|endoftext|>, the only special token in GPT-2
export const EOT_TEXT = '<|endoftext|>';
export const VOCAB_SIZE = 50257; // 50,000 merges + 256 byte tokens + <|endoftext|>

const utf8 = new TextEncoder();

export function assertTokenId(token: number): void {
  if (!Number.isInteger(token) || token < 0 || token >= VOCAB_SIZE) {
    throw new RangeError(`invalid token id ${String(token)}: expected an integer in [0, ${VOCAB_SIZE})`);
  }
}

// Built on first use: 50,257 small Uint8Arrays.
let byteTable: Uint8Array[] | undefined;

function tokenByteTable(): Uint8Array[] {
  if (byteTable) return byteTable;
  if (bpeRanks.length !== EOT) throw new Error(`gpt-tokenizer r50k_base has ${bpeRanks.length} ranks, expected ${EOT}`);
  const table = bpeRanks.map((entry) => (typeof entry === 'string' ? utf8.encode(entry) : Uint8Array.from(entry)));
  table.push(utf8.encode(EOT_TEXT)); // decodes to its literal text, as tiktoken does
  byteTable = table;
  return table;
}

/** Bytes without validation or copy, for the hot paths in this file. */
function bytesOf(token: number): Uint8Array {
  assertTokenId(token);
  return tokenByteTable()[token]!;
}

/** The raw bytes token `token` stands for (may be an incomplete UTF-8 sequence). */
export function tokenBytes(token: number): Uint8Array {
  return bytesOf(token).slice(); // a copy: callers must not be able to corrupt the table
}

/** The most bytes one GPT-2 token stands for (a test checks it against the table). */
export const MAX_TOKEN_BYTES = 128;

/** The fewest tokens `text` can encode to, known without encoding it: a long text is refused before it costs an encode. */
export function minTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / MAX_TOKEN_BYTES);
}

export interface EncodeOptions {
  /**
   * true (default): '<|endoftext|>' anywhere in the text becomes EOT (tiktoken's GPT-2 behaviour
   * with allowed_special='all'). false: it is encoded as ordinary text.
   */
  allowSpecial?: boolean;
}

export function encode(text: string, opts: EncodeOptions = {}): number[] {
  if (opts.allowSpecial === false) return encodeOrdinary(text);
  const chunks: number[][] = [];
  text.split(EOT_TEXT).forEach((segment, i) => {
    if (i > 0) chunks.push([EOT]);
    chunks.push(encodeOrdinary(segment));
  });
  return concatTokens(chunks);
}

/** Pieces longer than this (in UTF-16 code units) are merged by bpe-merge.ts instead of the library. */
export const LONG_PIECE = 256;

// An empty disallowedSpecial set makes the library treat '<|endoftext|>' as plain text instead of throwing.
const asText = { disallowedSpecial: new Set<string>() };
const WHITESPACE = /\s/u; // as the pre-tokenizer regex means it: a piece that ends in one is all whitespace

/**
 * Text → tokens, with '<|endoftext|>' as plain text. Each long piece goes to encodePiece; the short
 * pieces between them go to the library in runs, which it splits into the same pieces again.
 * `longPiece` is there for tests, to send most pieces down the long path.
 */
export function encodeOrdinary(text: string, longPiece = LONG_PIECE): number[] {
  if (text.length <= longPiece) return bpeEncode(text, asText);
  const chunks: number[][] = [];
  let runStart = 0; // the first short piece not yet encoded
  let lastShort = 0; // the start of the latest short piece
  for (const match of text.matchAll(R50K_TOKEN_SPLIT_REGEX)) {
    const piece = match[0];
    if (piece.length <= longPiece) {
      lastShort = match.index;
      continue;
    }
    pushShortRun(chunks, text, runStart, lastShort, match.index);
    chunks.push(encodePiece(piece));
    runStart = lastShort = match.index + piece.length;
  }
  if (runStart === 0) return bpeEncode(text, asText); // no long piece
  chunks.push(bpeEncode(text.slice(runStart), asText));
  return concatTokens(chunks);
}

/**
 * Encodes the short pieces in text[start, end) with the library. A whitespace piece at the end is
 * encoded on its own: how a run of whitespace splits depends on the character after it ("\n\n" then
 * a letter is '\n', '\n'), and in the slice the library would see the end of the text instead.
 */
function pushShortRun(chunks: number[][], text: string, start: number, lastPiece: number, end: number): void {
  const cut = end > start && WHITESPACE.test(text[end - 1]!) ? lastPiece : end;
  if (cut > start) chunks.push(bpeEncode(text.slice(start, cut), asText));
  if (cut < end) chunks.push(bpeEncode(text.slice(cut, end), asText));
}

/** Joins token arrays into one, without out.push(...chunk): spreading a long array overflows the stack. */
function concatTokens(chunks: readonly number[][]): number[] {
  if (chunks.length === 1) return chunks[0]!;
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  const out = new Array<number>(total); // preallocated: several times faster than push for long outputs
  let at = 0;
  for (const chunk of chunks) for (const token of chunk) out[at++] = token;
  return out;
}

/** Tokens → text. Invalid UTF-8 (e.g. a lone half of an emoji) becomes U+FFFD. */
export function decode(tokens: readonly number[]): string {
  const parts = tokens.map(bytesOf);
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  // ignoreBOM: keep a leading U+FEFF if the model produced one, instead of silently eating it.
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all);
}

/**
 * Turns a token stream into text as it arrives. Tokens may end in the middle of a UTF-8 sequence
 * (emoji and CJK characters are often split across 2-3 tokens), so the incomplete tail is held back
 * until the bytes that finish it arrive. One instance per generation: it is stateful.
 */
export class StreamingDetokenizer {
  // A streaming TextDecoder does exactly the holding back we want, and emits U+FFFD at once for
  // bytes that can never become valid (so only a truly broken sequence produces it).
  private decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  /** Returns the text completed by this token ('' while a multi-byte character is unfinished). */
  push(token: number): string {
    return this.decoder.decode(bytesOf(token), { stream: true });
  }

  /** End of stream: returns whatever is held back, with U+FFFD for an incomplete tail. Resets. */
  flush(): string {
    return this.decoder.decode();
  }
}
