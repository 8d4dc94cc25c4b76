import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decode, encode, EOT, StreamingDetokenizer, tokenBytes, VOCAB_SIZE } from '../src/model/tokenizer.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const verdictPath = path.resolve(repoRoot, '../shared/data/the-verdict.txt');
const hasVerdict = existsSync(verdictPath);
if (!hasVerdict) console.log(`skipping the-verdict.txt token count: ${verdictPath} not found`);

const utf8 = new TextEncoder();

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Push tokens one at a time, collecting every piece the detokenizer returns. */
function stream(tokens: number[]): { pieces: string[]; flushed: string } {
  const d = new StreamingDetokenizer();
  const pieces = tokens.map((t) => d.push(t));
  return { pieces, flushed: d.flush() };
}

describe('encode / decode', () => {
  it.skipIf(!hasVerdict)('the-verdict.txt encodes to 5,145 tokens and round-trips', () => {
    const text = readFileSync(verdictPath, 'utf8');
    const tokens = encode(text);
    expect(tokens.length).toBe(5145);
    expect(decode(tokens)).toBe(text);
  });

  it('matches GPT-2 reference ids', () => {
    expect(encode('Hello, world')).toEqual([15496, 11, 995]);
    expect(encode('The meaning of life is')).toEqual([464, 3616, 286, 1204, 318]);
  });

  it("recognises '<|endoftext|>' anywhere, as tiktoken does", () => {
    const text = 'Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace.';
    const expected = [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 1659, 617, 34680, 27271, 13];
    expect(encode(text)).toEqual(expected);
    expect(decode(expected)).toBe(text);
    expect(encode('x <|endoftext|> y')).toEqual([87, 220, EOT, 331]);
    expect(encode('<|endoftext|><|endoftext|>')).toEqual([EOT, EOT]);
    expect(encode('')).toEqual([]);
  });

  it("allowSpecial: false encodes '<|endoftext|>' as plain text", () => {
    const text = 'a <|endoftext|> b';
    const tokens = encode(text, { allowSpecial: false });
    expect(tokens).not.toContain(EOT);
    expect(decode(tokens)).toBe(text);
  });

  it('round-trips emoji, CJK, accents and odd whitespace', () => {
    for (const text of ['I ❤️ 🦙 and 🐉 with 中文字符 and ñ', '\ufeffBOM kept', 'tabs\tand\r\nCRLF  ', '👩‍👩‍👧‍👦 family', 'Ωμέγα — “quotes”']) {
      expect(decode(encode(text))).toBe(text);
    }
  });

  it('rejects invalid token ids with a clear error', () => {
    for (const bad of [-1, VOCAB_SIZE, 1.5, Number.NaN]) {
      expect(() => decode([bad])).toThrow(/invalid token id/);
      expect(() => tokenBytes(bad)).toThrow(/invalid token id/);
      expect(() => new StreamingDetokenizer().push(bad)).toThrow(/invalid token id/);
    }
  });
});

describe('tokenBytes', () => {
  it('the 256 byte tokens follow GPT-2 bytes_to_unicode order', () => {
    // GPT-2's encoder.json lists the printable bytes first (!..~, ¡..¬, ®..ÿ), then the rest in
    // ascending order: an independent check on the table we derive from gpt-tokenizer.
    const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const order = [...Array(256).keys()].filter(printable).concat([...Array(256).keys()].filter((b) => !printable(b)));
    for (let t = 0; t < 256; t++) expect([...tokenBytes(t)]).toEqual([order[t]]);
    expect([...tokenBytes(198)]).toEqual([10]); // '\n'
    expect([...tokenBytes(220)]).toEqual([32]); // ' '
  });

  it('concatenated token bytes equal the UTF-8 of the text, including split characters', () => {
    const text = 'I ❤️ 🦙 and 🐉 with 中文字符 and ñ';
    const tokens = encode(text);
    expect(concatBytes(tokens.map(tokenBytes))).toEqual(utf8.encode(text));
    // The llama emoji (F0 9F A6 99) is split across tokens: ' \xF0\x9F' + '\xA6' + '\x99'.
    expect([...tokenBytes(12520)]).toEqual([0x20, 0xf0, 0x9f]);
  });

  it('EOT stands for its literal text; the result is a copy', () => {
    expect(new TextDecoder().decode(tokenBytes(EOT))).toBe('<|endoftext|>');
    const b = tokenBytes(15496);
    b.fill(0);
    expect(decode([15496])).toBe('Hello');
  });
});

describe('StreamingDetokenizer', () => {
  const samples = ['I ❤️ 🦙 and 🐉 with 中文字符 and ñ', '日本語のテキストと한국어 텍스트', '🧑‍🚀🚀🌕 ok', 'plain ASCII only'];

  it.each(samples)('reassembles %s one token at a time without U+FFFD', (text) => {
    const { pieces, flushed } = stream(encode(text));
    for (const p of pieces) expect(p).not.toContain('\ufffd');
    expect(flushed).toBe('');
    expect(pieces.join('')).toBe(text);
  });

  it('holds back an incomplete character and emits it when completed', () => {
    const d = new StreamingDetokenizer();
    const llama = encode(' 🦙'); // 3 tokens, none a whole character on its own
    expect(llama.length).toBeGreaterThan(1);
    const out = llama.map((t) => d.push(t));
    expect(out.slice(0, -1).join('')).toBe(' '); // the space is complete and is not held back
    expect(out.at(-1)).toBe('🦙');
  });

  it('flush() replaces a truly broken tail with U+FFFD', () => {
    const d = new StreamingDetokenizer();
    expect(d.push(12520)).toBe(' '); // ' \xF0\x9F': an emoji that never finishes
    expect(d.flush()).toBe('\ufffd');
    expect(d.push(15496)).toBe('Hello'); // reusable after flush
  });

  it.skipIf(!hasVerdict)('streams the-verdict.txt exactly', () => {
    const text = readFileSync(verdictPath, 'utf8');
    const { pieces, flushed } = stream(encode(text));
    expect(pieces.join('') + flushed).toBe(text);
  });
});
