// Finetuning batches: bucketed lengths, the book's collate inside a wider row, classification
// rows read at their last real token, and the seeded epoch order.
import { describe, expect, it } from 'vitest';
import { collateInstructions, encodeInstruction, toInstructionExamples, type AlpacaRecord } from '../src/datasets/index.js';
import { EOT } from '../src/model/tokenizer.js';
import { bucketLength, ClassificationExamples, classificationTokens, evalBatches, InstructionExamples, TrainOrder } from '../src/train/finetune-data.js';

describe('bucketLength', () => {
  it('pads by at most 25 % (8 below 32), never past the maximum', () => {
    for (let n = 1; n <= 1024; n++) {
      const b = bucketLength(n, 1024);
      expect(b).toBeGreaterThanOrEqual(n);
      expect(b - n).toBeLessThanOrEqual(Math.max(7, n / 4));
    }
    expect([5, 33, 100, 200, 1000].map((n) => bucketLength(n, 1024))).toEqual([8, 40, 112, 224, 1024]);
    expect(bucketLength(100, 101)).toBe(101);
    expect(new Set(Array.from({ length: 1024 }, (_, n) => bucketLength(n + 1, 1024))).size).toBeLessThan(40);
  });
});

describe('instruction batches', () => {
  const records: AlpacaRecord[] = [
    { instruction: 'Say yes.', input: '', output: 'yes' },
    { instruction: 'Name three colours, please.', input: 'Be brief.', output: 'red, green and blue' },
  ];
  it('are the book\'s collate, widened with ignored padding and padding rows', () => {
    const ex = new InstructionExamples(records, 1024, true);
    const book = collateInstructions(records.flatMap((r) => toInstructionExamples(r)).map(encodeInstruction), { maskPrompt: true });
    const [B, T] = [3, book.T + 5];
    const batch = ex.batch([0, 1], B, T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const inside = b < 2 && t < book.T;
        expect(Number(batch.tokens[b * T + t])).toBe(inside ? book.inputs[b * book.T + t] : EOT);
        expect(Number(batch.targets[b * T + t])).toBe(inside ? book.targets[b * book.T + t] : -100);
      }
    }
    expect(batch.count).toBe(book.count);
    expect(ex.length(1)).toBe(book.T); // the longer row sets the book's length
  });

  it('truncate to maxLength', () => {
    const ex = new InstructionExamples(records, 20);
    expect(ex.length(1)).toBe(20);
    expect(() => ex.batch([1], 1, 16)).toThrow(/does not fit/);
    expect(ex.batch([1], 1, 24).targets.length).toBe(24);
  });
});

describe('classification batches', () => {
  const records = [
    { text: 'short', label: 'b' },
    { text: 'a somewhat longer text than that', label: 'a' },
    { text: '', label: 'a' },
  ];
  it('pad with end-of-text, point each row at its last real token, ignore padding rows', () => {
    const ex = new ClassificationExamples(records, classificationTokens(records), ['a', 'b'], 4);
    expect([0, 1, 2].map((i) => ex.length(i))).toEqual([1, 4, 1]); // truncated to 4; empty = one <|endoftext|>
    const batch = ex.batch([1, 0, 2], 4, 8);
    expect(Array.from(batch.lastRows!, Number)).toEqual([3, 8, 16, 24]);
    expect(Array.from(batch.targets, Number)).toEqual([0, 1, 0, -100]);
    expect(Number(batch.tokens[8 + 1])).toBe(EOT);
    expect(Number(batch.tokens[16])).toBe(EOT);
    expect(batch.count).toBe(3);
  });
});

describe('TrainOrder', () => {
  it('is a seeded permutation per epoch with full batches only', () => {
    const order = new TrainOrder(10, 3, 7);
    expect(order.batchesPerEpoch).toBe(3);
    const epoch = (e: number) => [0, 1, 2].flatMap((k) => order.indices(e * 3 + k));
    const [e0, e1] = [epoch(0), epoch(1)];
    expect(new Set(e0).size).toBe(9);
    expect(e1).not.toEqual(e0);
    expect(epoch(0)).toEqual(e0);
    expect(new TrainOrder(10, 3, 7).indices(4)).toEqual(order.indices(4)); // a fresh order (a resumed run) agrees
    expect(new TrainOrder(10, 3, 8).indices(0)).not.toEqual(order.indices(0));
  });

  it('gives a dataset smaller than a batch one partial batch per epoch', () => {
    const order = new TrainOrder(2, 8, 1);
    expect(order.batchesPerEpoch).toBe(1);
    expect(order.indices(0).sort()).toEqual([0, 1]);
  });
});

describe('evalBatches', () => {
  it('covers every example once, longest first; a limit takes the first examples', () => {
    const records = ['a b c', 'a', 'a b c d e', 'a b'].map((text) => ({ text, label: 'x' }));
    const ex = new ClassificationExamples(records, classificationTokens(records), ['x'], 64);
    expect(evalBatches(ex, 3)).toEqual([[2, 0, 3], [1]]);
    expect(evalBatches(ex, 2, 1)).toEqual([[0, 1]]);
  });
});
