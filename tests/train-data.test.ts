// Pretraining data: the book's sliding windows, the character split, seeded batching, and the
// Brown corpus detokenizer.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/model/default-model.js';
import { encode } from '../src/model/tokenizer.js';
import { brownDocument, detokenize } from '../src/datasets/brown.js';
import { BatchLoader, IGNORE_INDEX, SlidingWindows, splitText, tokenize } from '../src/train/data.js';
import { streamSeed } from '../src/train/streams.js';

const VERDICT = path.resolve(REPO_ROOT, '../shared/data/the-verdict.txt');

describe('sliding windows', () => {
  it.skipIf(!fs.existsSync(VERDICT))('the-verdict.txt with max_length 4, stride 1 starts as in the book', () => {
    const windows = new SlidingWindows(tokenize(fs.readFileSync(VERDICT, 'utf8')), 4, 1);
    expect([...windows.input(0)]).toEqual([40, 367, 2885, 1464]);
    expect([...windows.target(0)]).toEqual([367, 2885, 1464, 1807]);
    expect([...windows.input(1)]).toEqual([367, 2885, 1464, 1807]);
    expect(windows.length).toBe(5145 - 4); // range(0, len(tokens) - max_length, stride)
  });
  if (!fs.existsSync(VERDICT)) console.log(`skipped the-verdict test: ${VERDICT} not found`);

  it('counts windows like range(0, n - max_length, stride) and every target fits', () => {
    const tokens = Int32Array.from({ length: 23 }, (_, i) => i);
    for (const [L, S] of [[4, 4], [4, 3], [5, 1], [22, 1], [23, 1], [30, 2]] as const) {
      const w = new SlidingWindows(tokens, L, S);
      let expected = 0;
      for (let i = 0; i < 23 - L; i += S) expected++;
      expect(w.length).toBe(expected);
      for (let i = 0; i < w.length; i++) {
        expect([...w.input(i)]).toEqual(Array.from({ length: L }, (_, t) => i * S + t));
        expect([...w.target(i)]).toEqual(Array.from({ length: L }, (_, t) => i * S + t + 1));
      }
    }
  });
});

describe('train/validation split', () => {
  it('validation is the last ratio of the characters', () => {
    const text = 'abcdefghij';
    expect(splitText(text, 0.1)).toEqual({ train: 'abcdefghi', val: 'j' });
    expect(splitText(text, 0)).toEqual({ train: text, val: '' });
    expect(() => splitText(text, 1)).toThrow(/\[0, 1\)/);
  });
});

describe('batches', () => {
  const windows = new SlidingWindows(Int32Array.from({ length: 41 }, (_, i) => i), 4, 4); // 10 windows

  it('training batches: a seeded shuffle per epoch, every window once, the partial batch dropped', () => {
    const loader = new BatchLoader(windows, { batchSize: 3, shuffle: true, dropLast: true, seed: 7 });
    expect(loader.batchesPerEpoch).toBe(3);
    const firstTokens = (k: number) => Array.from({ length: 3 }, (_, b) => Number(loader.batch(k).tokens[b * 4]!) / 4);
    const epoch0 = [0, 1, 2].flatMap(firstTokens);
    const epoch1 = [3, 4, 5].flatMap(firstTokens);
    expect(new Set(epoch0).size).toBe(9);
    expect(epoch0).not.toEqual(epoch1);
    // same seed → same order, in a fresh loader and out of order
    const again = new BatchLoader(windows, { batchSize: 3, shuffle: true, dropLast: true, seed: 7 });
    expect(Array.from(again.batch(4).tokens)).toEqual(Array.from(loader.batch(4).tokens));
    const other = new BatchLoader(windows, { batchSize: 3, shuffle: true, dropLast: true, seed: 8 });
    expect([0, 1, 2].flatMap((k) => Array.from(other.batch(k).tokens))).not.toEqual([0, 1, 2].flatMap((k) => Array.from(loader.batch(k).tokens)));
    // targets are inputs shifted by one
    const b = loader.batch(1);
    for (let i = 0; i < 12; i++) expect(b.targets[i]).toBe(b.tokens[i]! + 1n);
    expect(b.count).toBe(12);
  });

  it('evaluation batches keep the order and pad the last batch with ignored targets', () => {
    const loader = new BatchLoader(windows, { batchSize: 4, shuffle: false, dropLast: false, seed: 0 });
    expect(loader.batchesPerEpoch).toBe(3);
    const last = loader.batch(2);
    expect(last.count).toBe(8);
    expect(Number(last.tokens[0])).toBe(32);
    expect([...last.targets.slice(8)].every((t) => t === BigInt(IGNORE_INDEX))).toBe(true);
  });

  it('derived stream seeds differ per position and stay below 2^53', () => {
    const seeds = new Set<number>();
    for (let s = 0; s < 4; s++) for (let k = 0; k < 50; k++) seeds.add(streamSeed(s, 2, k));
    expect(seeds.size).toBe(200);
    for (const x of seeds) expect(Number.isSafeInteger(x) && x >= 0).toBe(true);
  });
});

describe('Brown corpus as plain text', () => {
  it('strips tags, turns `` and \'\' into quotes, and re-attaches punctuation', () => {
    const tagged = "The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( 1-1/2/cd )/) he/pps did/dod not/* go/vb ;/. Mr./np Smith/np Jr./np ./.";
    expect(detokenize(tagged.split(' '))).toBe('The jury said "no evidence", (1-1/2) he did not go; Mr. Smith Jr.');
    expect(detokenize("more/ap '/' pro/jj '/' letters/nns ?/.".split(' '))).toBe("more 'pro' letters?");
  });

  it('paragraphs start at tab-indented lines; headlines stand alone', () => {
    const doc = '\n\n\tFirst/at line/nn ./.\nSecond/at sentence/nn ./.\n\n\n\tNew/jj paragraph/nn ./.\n\nMerger/nn-hl proposed/vbn-hl\nHowever/wrb ,/, yes/rb ./.\n';
    expect(brownDocument(doc)).toBe('First line. Second sentence.\n\nNew paragraph.\n\nMerger proposed\n\nHowever, yes.');
  });

  it('the text tokenizes like ordinary English', () => {
    const text = brownDocument("\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.");
    expect(encode(text).length).toBeLessThan(10);
  });
});
