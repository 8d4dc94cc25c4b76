import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  balanceClasses,
  bookInstructionSplit,
  classIds,
  collateClassification,
  collateInstructions,
  DatasetError,
  encodeInstruction,
  formatChatPrompt,
  formatPrompt,
  parseDataset,
  row,
  splitByRatio,
  toInstructionExample,
  toInstructionExamples,
  type AlpacaRecord,
  type ChatRecord,
} from '../src/datasets/index.js';
import { decode, encode } from '../src/model/tokenizer.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const instructionDataPath = path.resolve(repoRoot, '../shared/data/instruction-data.json');
const hasInstructionData = existsSync(instructionDataPath);
if (!hasInstructionData) console.log(`skipping instruction-data.json checks: ${instructionDataPath} not found`);

const jsonl = (...objs: unknown[]): string => objs.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))).join('\n') + '\n';

/** Run fn, expect a DatasetError, and return it for property checks. */
function datasetError(fn: () => unknown): DatasetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

describe('parseDataset: format detection', () => {
  it('detects OpenAI chat', () => {
    const ds = parseDataset(
      jsonl(
        { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }] },
        { messages: [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'A', weight: 1 }] },
      ),
    );
    expect(ds.format).toBe('chat');
    expect(ds.container).toBe('jsonl');
    expect(ds.records).toHaveLength(2);
    expect(ds.lines).toEqual([1, 2]);
  });

  it('detects prompt/completion', () => {
    const ds = parseDataset(jsonl({ prompt: 'Say hi', completion: 'hi' }));
    expect(ds).toMatchObject({ format: 'prompt_completion', records: [{ prompt: 'Say hi', completion: 'hi' }] });
  });

  it('detects Alpaca as JSONL, with input optional (absent or null → "")', () => {
    const ds = parseDataset(jsonl({ instruction: 'a', input: 'b', output: 'c' }, { instruction: 'd', output: 'e' }, { instruction: 'f', input: null, output: 'g' }));
    expect(ds.format).toBe('alpaca');
    expect(ds.records).toEqual([
      { instruction: 'a', input: 'b', output: 'c' },
      { instruction: 'd', input: '', output: 'e' },
      { instruction: 'f', input: '', output: 'g' },
    ]);
  });

  it('detects Alpaca as a pretty-printed JSON array and records each element line', () => {
    const text = JSON.stringify([{ instruction: 'a', input: '', output: 'b' }, { instruction: 'c', input: '', output: 'd' }], null, 4);
    const ds = parseDataset(text, 'data.json');
    expect(ds).toMatchObject({ format: 'alpaca', container: 'json_array' });
    expect(ds.lines).toEqual([2, 7]);
  });

  it('detects classification with string labels (sorted distinct labels)', () => {
    const ds = parseDataset(jsonl({ text: 'buy now', label: 'spam' }, { text: 'lunch?', label: 'ham' }, { text: 'win', label: 'spam' }));
    if (ds.format !== 'classification') throw new Error(ds.format);
    expect(ds.labels).toEqual(['ham', 'spam']);
    expect(ds.labelType).toBe('string');
    expect(classIds(ds.records, ds.labels)).toEqual([1, 0, 1]);
  });

  it('detects classification with integer labels (sorted numerically)', () => {
    const ds = parseDataset(jsonl({ text: 'a', label: 10 }, { text: 'b', label: 2 }, { text: 'c', label: 0 }));
    if (ds.format !== 'classification') throw new Error(ds.format);
    expect(ds.labels).toEqual(['0', '2', '10']);
    expect(ds.labelType).toBe('integer');
    expect(classIds(ds.records, ds.labels)).toEqual([2, 1, 0]);
  });

  it('accepts a Buffer with BOM, CRLF line ends and blank lines', () => {
    const text = '\ufeff' + [JSON.stringify({ prompt: 'p', completion: 'c' }), '', JSON.stringify({ prompt: 'q', completion: 'd' }), ''].join('\r\n');
    const ds = parseDataset(Buffer.from(text, 'utf8'), 'x.jsonl');
    expect(ds.records).toHaveLength(2);
    expect(ds.lines).toEqual([1, 3]);
  });

  it('keeps only known fields (extra keys do not leak into records)', () => {
    const ds = parseDataset(jsonl({ prompt: 'p', completion: 'c', meta: { id: 1 } }));
    expect(ds.records[0]).toEqual({ prompt: 'p', completion: 'c' });
  });
});

describe('parseDataset: errors name the line and the field', () => {
  it('malformed JSON line', () => {
    const e = datasetError(() => parseDataset(jsonl({ prompt: 'a', completion: 'b' }, '{"prompt": "a", "completion": }')));
    expect(e.line).toBe(2);
    expect(e.field).toBeUndefined();
    expect(e.message).toMatch(/^line 2: malformed JSON/);
  });

  it('malformed JSON array: the line of the syntax error', () => {
    const e = datasetError(() => parseDataset('[\n  {"instruction": "a", "output": "b"},\n  {"instruction" "c"}\n]'));
    expect(e.line).toBe(3);
    expect(e.message).toMatch(/^line 3: malformed JSON/);
  });

  it('missing field', () => {
    const e = datasetError(() =>
      parseDataset(jsonl({ instruction: 'a', output: 'b' }, { instruction: 'c', output: 'd' }, { instruction: 'e', input: 'f' })),
    );
    expect(e.message).toBe("line 3: missing field 'output'");
    expect(e).toMatchObject({ line: 3, field: 'output', reason: "missing field 'output'" });
  });

  it('missing field in a JSON array names the index and the element line', () => {
    const text = JSON.stringify([{ instruction: 'a', input: '', output: 'b' }, { instruction: 'c', input: '' }], null, 4);
    const e = datasetError(() => parseDataset(text, 'train.json'));
    expect(e).toMatchObject({ index: 1, line: 7, field: 'output', filename: 'train.json' });
    expect(e.message).toBe("train.json: index 1 (line 7): missing field 'output'");
  });

  it('wrong field type', () => {
    const e = datasetError(() => parseDataset(jsonl({ prompt: 'a', completion: 5 })));
    expect(e).toMatchObject({ line: 1, field: 'completion' });
    expect(e.message).toBe("line 1: field 'completion' must be a string, got the number 5");
  });

  it('a line that is not an object', () => {
    const e = datasetError(() => parseDataset(jsonl({ prompt: 'a', completion: 'b' }, '["a"]')));
    expect(e).toMatchObject({ line: 2, field: undefined });
    expect(e.message).toBe('line 2: expected a JSON object, got an array');
  });

  it('empty file', () => {
    for (const content of ['', '\n  \n', '[]', Buffer.alloc(0)]) {
      const e = datasetError(() => parseDataset(content));
      expect(e.message).toBe('empty file: no records');
      expect(e.line).toBeUndefined();
      expect(e.field).toBeUndefined();
    }
  });

  it.each([
    ['an object', { a: 1 }, 'an object'],
    ['null', null, 'null'],
    ['a float', 1.5, 'the non-integer number 1.5'],
    ['a boolean', true, 'a boolean'],
  ])('wrong label type: %s', (_, label, described) => {
    const e = datasetError(() => parseDataset(jsonl({ text: 'a', label: 'x' }, { text: 'b', label })));
    expect(e).toMatchObject({ line: 2, field: 'label' });
    expect(e.message).toBe(`line 2: field 'label' must be a string or an integer, got ${described}`);
  });

  it('wrong label type: strings and integers mixed in one file', () => {
    const e = datasetError(() => parseDataset(jsonl({ text: 'a', label: 0 }, { text: 'b', label: 1 }, { text: 'c', label: 'spam' })));
    expect(e).toMatchObject({ line: 3, field: 'label' });
    expect(e.message).toBe("line 3: field 'label' is a string but the first label (line 1) is an integer; use one label type per file");
  });

  it('mixed formats', () => {
    const e = datasetError(() =>
      parseDataset(jsonl({ instruction: 'a', output: 'b' }, { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] })),
    );
    expect(e).toMatchObject({ line: 2, field: 'messages' });
    expect(e.message).toBe(
      "line 2: mixed formats: this record is chat (it has 'messages') but the first record (line 1) is alpaca; use one format per file",
    );
  });

  it('unknown role', () => {
    const e = datasetError(() =>
      parseDataset(jsonl({ messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'y' }, { role: 'assistant', content: 'z' }] })),
    );
    expect(e).toMatchObject({ line: 1, field: 'messages[1].role' });
    expect(e.message).toBe("line 1: unknown role 'tool' in 'messages[1].role' (expected system, user or assistant)");
  });

  it('chat: bad weight, weight on a user turn, missing content, nothing to train on', () => {
    const user = { role: 'user', content: 'q' };
    const cases: [unknown, string][] = [
      [{ messages: [user, { role: 'assistant', content: 'a', weight: 2 }] }, 'messages[1].weight'],
      [{ messages: [{ ...user, weight: 1 }, { role: 'assistant', content: 'a' }] }, 'messages[0].weight'],
      [{ messages: [user, { role: 'assistant' }] }, 'messages[1].content'],
      [{ messages: [user, { role: 'assistant', content: 'a', weight: 0 }] }, 'messages'],
      [{ messages: [{ role: 'assistant', content: 'a' }] }, 'messages[0]'],
      [{ messages: [] }, 'messages'],
      [{ messages: 'hi' }, 'messages'],
    ];
    for (const [record, field] of cases) {
      const e = datasetError(() => parseDataset(jsonl({ messages: [user, { role: 'assistant', content: 'ok' }] }, record)));
      expect(e).toMatchObject({ line: 2, field });
      expect(e.message.startsWith('line 2: ')).toBe(true);
    }
  });

  it('unrecognised record', () => {
    const e = datasetError(() => parseDataset(jsonl({ question: 'a', answer: 'b' })));
    expect(e.line).toBe(1);
    expect(e.message).toMatch(/^line 1: unrecognised record/);
  });

  it('invalid UTF-8 names its line', () => {
    const bytes = Buffer.concat([Buffer.from('{"prompt":"a","completion":"b"}\n{"prompt":"'), Buffer.from([0xff]), Buffer.from('","completion":"c"}\n')]);
    const e = datasetError(() => parseDataset(bytes));
    expect(e.line).toBe(2);
    expect(e.message).toBe('line 2: file is not valid UTF-8');
  });
});

// The book's chapter 7 output for data[50] (with input) and data[999] (without), verbatim.
const BOOK_50 = `Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
Identify the correct spelling of the following word.

### Input:
Ocassion

### Response:
The correct spelling is 'Occasion.'`;
const BOOK_999 = `Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
What is an antonym of 'complicated'?

### Response:
An antonym of 'complicated' is 'simple'.`;

describe('instruction template', () => {
  it('matches the book with and without input', () => {
    const withInput: AlpacaRecord = { instruction: 'Identify the correct spelling of the following word.', input: 'Ocassion', output: "The correct spelling is 'Occasion.'" };
    const noInput: AlpacaRecord = { instruction: "What is an antonym of 'complicated'?", input: '', output: "An antonym of 'complicated' is 'simple'." };
    for (const [record, book] of [[withInput, BOOK_50], [noInput, BOOK_999]] as const) {
      const ex = toInstructionExample(record);
      expect(ex.prompt + ex.response).toBe(book);
      expect(formatPrompt(record)).toBe(book.slice(0, book.indexOf('### Response:\n') + '### Response:\n'.length));
      expect(ex.response).toBe(record.output);
    }
  });

  it.skipIf(!hasInstructionData)('matches the book on instruction-data.json records 0, 2, 50 and 999', () => {
    const ds = parseDataset(readFileSync(instructionDataPath), 'instruction-data.json');
    if (ds.format !== 'alpaca') throw new Error(ds.format);
    expect(ds.records).toHaveLength(1100);
    const full = (i: number): string => {
      const ex = toInstructionExample(ds.records[i]!);
      return ex.prompt + ex.response;
    };
    expect(full(0)).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        '### Instruction:\nEvaluate the following phrase by transforming it into the spelling given.\n\n' +
        '### Input:\nfreind --> friend\n\n' +
        '### Response:\nThe spelling of the given phrase "freind" is incorrect, the correct spelling is "friend".',
    );
    expect(full(2)).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        '### Instruction:\nConvert 45 kilometers to meters.\n\n### Response:\n45 kilometers is 45000 meters.',
    );
    expect(full(50)).toBe(BOOK_50);
    expect(full(999)).toBe(BOOK_999);
  });

  it('prompt/completion maps to instruction/output', () => {
    expect(toInstructionExample({ prompt: 'Say hi', completion: 'hi' })).toEqual(toInstructionExample({ instruction: 'Say hi', input: '', output: 'hi' }));
  });

  it('single-turn chat: system + user → instruction, assistant → output', () => {
    const chat: ChatRecord = { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Capital of France?' }, { role: 'assistant', content: 'Paris.' }] };
    expect(toInstructionExample(chat)).toEqual(toInstructionExample({ instruction: 'Be brief.\n\nCapital of France?', input: '', output: 'Paris.' }));
    expect(formatChatPrompt(chat.messages.slice(0, 2))).toBe(formatPrompt(chat));
  });

  it('multi-turn chat: one example per trained assistant turn, earlier turns in the input section', () => {
    const chat: ChatRecord = {
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'U1' },
        { role: 'assistant', content: 'A1', weight: 0 },
        { role: 'user', content: 'U2' },
        { role: 'assistant', content: 'A2' },
        { role: 'user', content: 'U3' },
        { role: 'assistant', content: 'A3', weight: 1 },
      ],
    };
    const examples = toInstructionExamples(chat);
    expect(examples.map((e) => e.response)).toEqual(['A2', 'A3']); // A1 has weight 0: context only
    expect(examples[0]).toEqual(toInstructionExample({ instruction: 'S\n\nU2', input: 'User: U1\n\nAssistant: A1', output: 'A2' }));
    expect(toInstructionExample(chat)).toEqual(
      toInstructionExample({ instruction: 'S\n\nU3', input: 'User: U1\n\nAssistant: A1\n\nUser: U2\n\nAssistant: A2', output: 'A3' }),
    );
  });
});

describe('tokenized instruction examples and the book collate', () => {
  const PAD = 50256;

  it("reproduces the book's custom_collate_fn example", () => {
    const batch = collateInstructions([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]);
    expect([batch.B, batch.T]).toEqual([3, 5]);
    expect([0, 1, 2].map((b) => row(batch.inputs, batch.T, b))).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, PAD, PAD, PAD],
      [7, 8, 9, PAD, PAD],
    ]);
    expect([0, 1, 2].map((b) => row(batch.targets, batch.T, b))).toEqual([
      [1, 2, 3, 4, PAD],
      [6, PAD, -100, -100, -100],
      [8, 9, PAD, -100, -100],
    ]);
    expect(batch.count).toBe(5 + 2 + 3);
  });

  it('truncates to allowedMaxLength after masking, as the book does', () => {
    const batch = collateInstructions([[0, 1, 2, 3, 4], [5, 6]], { allowedMaxLength: 3 });
    expect(batch.T).toBe(3);
    expect(row(batch.targets, 3, 0)).toEqual([1, 2, 3]);
    expect(row(batch.targets, 3, 1)).toEqual([6, PAD, -100]);
  });

  it('maskPrompt ignores the targets that predict prompt tokens (exercise 7.2)', () => {
    const batch = collateInstructions(
      [
        { tokens: [0, 1, 2, 3, 4], promptLength: 3 },
        { tokens: [5, 6], promptLength: 1 },
        { tokens: [7, 8, 9], promptLength: 0 },
      ],
      { maskPrompt: true },
    );
    expect(row(batch.targets, batch.T, 0)).toEqual([-100, -100, 3, 4, PAD]); // 3 = first response token
    expect(row(batch.targets, batch.T, 1)).toEqual([6, PAD, -100, -100, -100]);
    expect(row(batch.targets, batch.T, 2)).toEqual([8, 9, PAD, -100, -100]); // not the book's targets[:-1]
    expect(() => collateInstructions([[1, 2]], { maskPrompt: true })).toThrow(/promptLength/);
  });

  it('encodeInstruction: encode(prompt + response), promptLength = prompt tokens', () => {
    const ex = toInstructionExample({ instruction: 'Convert 45 kilometers to meters.', input: '', output: '45 kilometers is 45000 meters.' });
    const enc = encodeInstruction(ex);
    expect(enc.tokens).toEqual(encode(ex.prompt + ex.response));
    expect(enc.promptLength).toBe(encode(ex.prompt).length);
    expect(decode(enc.tokens.slice(0, enc.promptLength))).toBe(ex.prompt);
    const batch = collateInstructions([enc], { maskPrompt: true });
    const targets = row(batch.targets, batch.T, 0);
    // Loss only on the response tokens and the final end-of-text.
    expect(targets.filter((t) => t !== -100)).toEqual([...enc.tokens.slice(enc.promptLength), PAD]);
    expect(decode(enc.tokens.slice(enc.promptLength))).toBe(ex.response);
  });

  it('encodeInstruction: a literal <|endoftext|> in user text is not token 50256', () => {
    const enc = encodeInstruction({ prompt: 'p\n', response: 'a <|endoftext|> b' });
    expect(enc.tokens).not.toContain(PAD);
    expect(decode(enc.tokens)).toBe('p\na <|endoftext|> b');
  });

  it('encodeInstruction: a BPE merge across the boundary counts as response', () => {
    const enc = encodeInstruction({ prompt: 'x\n', response: '\n\nmore' }); // tokens: x, "\n\n", "\n", more
    expect(decode(enc.tokens.slice(0, enc.promptLength))).toBe('x');
  });
});

describe('splits and balancing', () => {
  it('bookInstructionSplit: 1,100 records → 935 / 110 / 55 in file order', () => {
    const records = Array.from({ length: 1100 }, (_, i) => i);
    const { train, test, validation } = bookInstructionSplit(records);
    expect([train.length, test.length, validation.length]).toEqual([935, 110, 55]);
    expect([train[0], test[0], validation[0], validation[54]]).toEqual([0, 935, 1045, 1099]);
  });

  it.skipIf(!hasInstructionData)('bookInstructionSplit on instruction-data.json', () => {
    const ds = parseDataset(readFileSync(instructionDataPath));
    if (ds.format !== 'alpaca') throw new Error(ds.format);
    const { train, test, validation } = bookInstructionSplit(ds.records);
    expect([train.length, test.length, validation.length]).toEqual([935, 110, 55]);
    expect(test[0]).toBe(ds.records[935]);
  });

  it('splitByRatio: 70/10/20, a permutation, the same for the same seed', () => {
    const records = Array.from({ length: 101 }, (_, i) => i);
    const parts = splitByRatio(records, [0.7, 0.1, 0.2], 123);
    expect(parts.map((p) => p.length)).toEqual([70, 10, 21]); // int(70.7), int(10.1), rest
    expect(parts.flat().sort((a, b) => a - b)).toEqual(records);
    expect(splitByRatio(records, [0.7, 0.1, 0.2], 123)).toEqual(parts);
    expect(splitByRatio(records, [0.7, 0.1, 0.2], 124)).not.toEqual(parts);
    expect(parts[0]).not.toEqual(records.slice(0, 70)); // shuffled
    expect(() => splitByRatio(records, [0.7, 0.1], 1)).toThrow(/sum to 1/);
  });

  it('balanceClasses: undersamples every class to the smallest, deterministically', () => {
    const records = [
      ...Array.from({ length: 20 }, (_, i) => ({ id: i, label: 'ham' })),
      ...Array.from({ length: 5 }, (_, i) => ({ id: 100 + i, label: 'spam' })),
    ];
    const balanced = balanceClasses(records, 123);
    expect(balanced.filter((r) => r.label === 'ham')).toHaveLength(5);
    expect(balanced.filter((r) => r.label === 'spam').map((r) => r.id)).toEqual([100, 101, 102, 103, 104]);
    expect(balanced.map((r) => r.id)).toEqual([...balanced.map((r) => r.id)].sort((a, b) => a - b)); // file order kept
    expect(balanceClasses(records, 123)).toEqual(balanced);
    expect(balanceClasses(records, 7)).not.toEqual(balanced);
    const [train] = splitByRatio(balanced, [0.7, 0.1, 0.2], 123);
    expect(splitByRatio(balanceClasses(records, 123), [0.7, 0.1, 0.2], 123)[0]).toEqual(train);
  });
});

describe('classification batches', () => {
  it('pads to maxLength with 50256, truncates, and reports the last real token', () => {
    const long = 'one two three four five six seven';
    const batch = collateClassification(['Hello world', long], [0, 1], { maxLength: 4 });
    expect([batch.B, batch.T]).toEqual([2, 4]);
    const hello = encode('Hello world');
    expect(hello).toHaveLength(2);
    expect(row(batch.inputs, 4, 0)).toEqual([...hello, 50256, 50256]);
    expect(row(batch.inputs, 4, 1)).toEqual(encode(long).slice(0, 4));
    expect(Array.from(batch.lastIndex)).toEqual([1, 3]);
    expect(Array.from(batch.labels)).toEqual([0, 1]);
    expect(() => collateClassification([''], [0], { maxLength: 4 })).toThrow(/no tokens/);
  });
});
