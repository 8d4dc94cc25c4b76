// GPT-2's byte-level BPE (tiktoken's "r50k_base"), on top of gpt-tokenizer.
//
// Two things the library does not do the way we need, so they are done here:
//  - special tokens: gpt-tokenizer only recognises '<|endoftext|>' at the very start of the input
//    (see shared/notes/gpt-tokenizer.md). We split on it ourselves, like tiktoken does.
//  - bytes: its decode() works on whole strings and shares one streaming TextDecoder between calls.
//    We need each token's raw bytes (a token can be part of a UTF-8 sequence, e.g. half an emoji),
//    so we read them from the library's rank table and do our own UTF-8 decoding.

import { encode as bpeEncode } from 'gpt-tokenizer/encoding/r50k_base';
// Index = token id; a string where the token's bytes are valid UTF-8, else the raw bytes.
import bpeRanks from 'gpt-tokenizer/bpeRanks/r50k_base';

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

export interface EncodeOptions {
  /**
   * true (default): '<|endoftext|>' anywhere in the text becomes EOT (tiktoken's GPT-2 behaviour
   * with allowed_special='all'). false: it is encoded as ordinary text.
   */
  allowSpecial?: boolean;
}

export function encode(text: string, opts: EncodeOptions = {}): number[] {
  // An empty disallowedSpecial set makes the library treat '<|endoftext|>' as plain text instead
  // of throwing; the pieces we pass below never contain it when allowSpecial is on.
  const asText = { disallowedSpecial: new Set<string>() };
  if (opts.allowSpecial === false) return bpeEncode(text, asText);
  const out: number[] = [];
  text.split(EOT_TEXT).forEach((piece, i) => {
    if (i > 0) out.push(EOT);
    if (piece) out.push(...bpeEncode(piece, asText));
  });
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
