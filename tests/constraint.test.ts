// Structured output's engine (src/model/constraint.ts and the files under it): random schemas,
// regexes and choices, sampled at temperature 1 through Generation from random logits over the
// real 50,257-token vocabulary; every output must parse and validate (ajv, RegExp). Also a tiny
// random-weight GPT-2, and the refusals.
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GPTConfig } from '../src/model/config.js';
import { compileConstraint, ConstraintError, ConstraintState, type ConstraintSpec } from '../src/model/constraint.js';
import { generate, Generation } from '../src/model/generation.js';
import { randomInit } from '../src/model/gpt.js';
import { Rng } from '../src/model/rng.js';
import { ModelSession } from '../src/model/session.js';
import { tokenTrie } from '../src/model/token-trie.js';
import { decode, encode, EOT, tokenBytes, VOCAB_SIZE } from '../src/model/tokenizer.js';

const config: GPTConfig = { vocabSize: VOCAB_SIZE, contextLength: 4096, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

// A pool of random logit vectors, with tokens that close strings, objects and arrays favoured:
// uniform draws inside a string would otherwise take hundreds of tokens to close it.
const pool = (() => {
  const rng = new Rng(99);
  const closing = new Float32Array(VOCAB_SIZE);
  for (let t = 0; t < EOT; t++) if (/["}\]]/.test(decode([t]))) closing[t] = 4;
  return Array.from({ length: 16 }, () => Float32Array.from({ length: VOCAB_SIZE }, (_, t) => rng.normal() * 2 + closing[t]!));
})();

/** Samples one output under `spec` at temperature 1 from the random logits. */
function sample(spec: ConstraintSpec, seed: number, maxTokens = 600): { text: string; finish: string | null; tokens: number[] } {
  const gen = new Generation([EOT], { maxTokens, temperature: 1, seed, constraint: spec }, config);
  const pick = new Rng(seed + 1);
  while (!gen.done) gen.step(pool[pick.int(pool.length)]!);
  return { text: decode(gen.tokens.filter((t) => t !== EOT)), finish: gen.finishReason, tokens: gen.tokens };
}

const key = fc.oneof(fc.stringMatching(/^[a-z]{1,6}$/), fc.constantFrom('a"b', 'é', 'x\\y', ' s p', '🙂'));
const scalar = fc.oneof(fc.string({ maxLength: 4 }), fc.integer({ min: -1000, max: 1000 }), fc.boolean(), fc.constant(null));
const leaf = fc.oneof(
  fc.constantFrom({ type: 'string' }, { type: 'number' }, { type: 'integer' }, { type: 'boolean' }, { type: 'null' }, { type: ['string', 'null'] }, { type: 'integer', minimum: 0 }),
  fc.tuple(fc.nat(3), fc.nat(4)).map(([min, extra]) => ({ type: 'string', minLength: min, maxLength: min + extra })),
  fc.uniqueArray(scalar, { minLength: 1, maxLength: 4, selector: (v) => JSON.stringify(v) }).map((e) => ({ enum: e })),
  scalar.map((v) => ({ const: v })),
);
const { node: schemaArb } = fc.letrec<{ node: object; object: object; array: object; anyOf: object }>((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, leaf, tie('object'), tie('array'), tie('anyOf')),
  object: fc.dictionary(key, tie('node'), { maxKeys: 4 }).chain((props) =>
    fc.subarray(Object.keys(props)).map((required) => ({ type: 'object', properties: props, required, additionalProperties: false })),
  ),
  array: fc.tuple(tie('node'), fc.nat(2), fc.option(fc.nat(3))).map(([items, min, extra]) => ({ type: 'array', items, minItems: min, ...(extra === null ? {} : { maxItems: min + extra }) })),
  anyOf: fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((anyOf) => ({ anyOf })),
}));

const ajv = new Ajv({ strict: false });

describe('token trie', () => {
  it('holds every token but <|endoftext|> once, at the end of its own bytes', () => {
    const t = tokenTrie();
    const seen = new Set<number>();
    const path: number[] = [];
    for (let i = 0; i < t.byte.length; i++) {
      path.length = t.depth[i]! - 1;
      path.push(t.byte[i]!);
      const tok = t.token[i]!;
      if (tok < 0) continue;
      expect(seen.has(tok)).toBe(false);
      seen.add(tok);
      if (tok % 997 === 0) expect(path).toEqual(Array.from(tokenBytes(tok)));
    }
    expect(seen.size).toBe(EOT);
  });
});

describe('json_schema', () => {
  it('samples outputs that validate, for a few hundred random schemas', () => {
    let complete = 0;
    fc.assert(
      fc.property(schemaArb, fc.nat(1000), (schema, seed) => {
        const { text, finish } = sample({ type: 'json_schema', schema }, seed);
        if (finish === 'length') return; // counted below: must be rare
        complete++;
        expect(finish).toBe('stop');
        const value: unknown = JSON.parse(text);
        if (!ajv.validate(schema, value)) throw new Error(`${text} does not match ${JSON.stringify(schema)}: ${ajv.errorsText()}`);
      }),
      { numRuns: 300, seed: 42 },
    );
    expect(complete).toBeGreaterThan(290);
  });

  it('follows $defs/$ref, recursion included (bounded), and the shape zodResponseFormat emits', () => {
    const tree = {
      $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v', 'kids'], additionalProperties: false } },
      $ref: '#/$defs/node',
    };
    const zodLike = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { age: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 }, nick: { type: ['string', 'null'] }, kind: { type: 'string', enum: ['a', 'b'] } },
      required: ['age', 'nick', 'kind'],
      additionalProperties: false,
    };
    for (const schema of [tree, zodLike]) {
      for (let seed = 0; seed < 10; seed++) {
        const { text, finish } = sample({ type: 'json_schema', schema }, seed);
        expect(finish).toBe('stop');
        expect(ajv.validate(schema, JSON.parse(text)), text).toBe(true);
      }
    }
  });

  it('ends when the value is complete, allows <|endoftext|> only then, and stops at max_tokens mid-value', () => {
    const spec: ConstraintSpec = { type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'boolean' } }, required: ['a'], additionalProperties: false } };
    const c = new ConstraintState(compileConstraint(spec));
    const eotAllowed = () => (c.allowed()[EOT >>> 5]! >>> (EOT & 31)) & 1;
    expect(eotAllowed()).toBe(0);
    for (const t of encode('{"a":true}')) {
      expect(c.complete).toBe(false);
      c.advance(t);
    }
    expect(c.complete).toBe(true);
    expect(eotAllowed()).toBe(1);
    const { text, finish, tokens } = sample(spec, 3);
    expect(finish).toBe('stop');
    expect(tokens.at(-1)).not.toBe(EOT); // ended by the constraint, not by a sampled <|endoftext|>
    expect(JSON.parse(text)).toHaveProperty('a');
    const cut = sample({ type: 'json_schema', schema: { type: 'array', items: { type: 'string' }, minItems: 20 } }, 1, 5);
    expect(cut.finish).toBe('length');
    expect(() => JSON.parse(cut.text)).toThrow();
  });

  it('gives the same output for the same seed, different ones for different seeds', () => {
    const spec: ConstraintSpec = { type: 'json_object' };
    expect(sample(spec, 5).text).toBe(sample(spec, 5).text);
    expect(new Set([1, 2, 3, 4].map((s) => sample(spec, s).text)).size).toBeGreaterThan(1);
  });
});

describe('json_object, choice, regex', () => {
  it('json_object: any JSON object, compact', () => {
    let complete = 0;
    for (let seed = 0; seed < 30; seed++) {
      const { text, finish } = sample({ type: 'json_object' }, seed);
      if (finish === 'length') continue; // random logits may nest and list for long: counted below
      complete++;
      const v: unknown = JSON.parse(text);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
      expect(JSON.stringify(v).length).toBeLessThanOrEqual(text.length);
    }
    expect(complete).toBeGreaterThan(25);
  });

  it('choice: exactly one of the strings', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8, unit: 'grapheme' }), { minLength: 1, maxLength: 5 }), fc.nat(1000), (choices, seed) => {
        const { text, finish } = sample({ type: 'choice', choices }, seed);
        expect(finish).toBe('stop');
        expect(choices).toContain(text);
      }),
      { numRuns: 100, seed: 7 },
    );
  });

  // Random patterns from a small grammar of the supported syntax, checked with RegExp ('u': code points).
  const atom = fc.oneof(
    fc.constantFrom('a', 'b', 'x', '\\.', '\\d', '\\w', '\\s', '[a-f]', '[^a-z]', '[0-9_-]', '.', 'é', '\\n', '[xyz]'),
    fc.constantFrom('(ab|c)', '(?:no|yes)', '(q)'),
  );
  const quant = fc.constantFrom('', '', '?', '*', '+', '{2}', '{1,3}', '{0,}');
  const regexArb = fc
    .array(fc.array(fc.tuple(atom, quant).map(([a, q]) => a + q), { minLength: 1, maxLength: 5 }).map((p) => p.join('')), { minLength: 1, maxLength: 3 })
    .map((alts) => alts.join('|'));

  it('regex: outputs match the whole pattern', () => {
    let complete = 0;
    fc.assert(
      fc.property(regexArb, fc.nat(1000), (pattern, seed) => {
        const { text, finish } = sample({ type: 'regex', pattern }, seed, 200);
        if (finish === 'length') return; // a + or * may go on: counted below
        complete++;
        expect(new RegExp(`^(?:${pattern})$`, 'u').test(text), `${JSON.stringify(text)} vs /${pattern}/`).toBe(true);
      }),
      { numRuns: 200, seed: 11 },
    );
    expect(complete).toBeGreaterThan(150);
  });
});

describe('automaton size', () => {
  it('a DFA that grows past its limit throws ConstraintError (the server answers it as the client\'s 400)', () => {
    // [ab]*a[ab]{20} needs a state per pattern of a's in the last 21 bytes: 2^21 of them.
    const { dfa } = compileConstraint({ type: 'regex', pattern: '[ab]*a[ab]{20}' });
    const rng = new Rng(1);
    const walk = () => {
      for (let n = 0; n < 5000; n++) {
        let state = dfa.start;
        for (let i = 0; i < 25; i++) state = dfa.next(state, rng.int(2) ? 0x61 : 0x62);
      }
    };
    expect(walk).toThrow(ConstraintError);
    expect(walk).toThrow(/grew past 20000 states/);
  });
});

describe('with ignore_eos', () => {
  it('never draws <|endoftext|> under a constraint, so the text stays in the language', () => {
    for (let seed = 0; seed < 20; seed++) {
      const gen = new Generation([EOT], { maxTokens: 60, temperature: 1, seed, ignoreEos: true, constraint: { type: 'regex', pattern: '(ab|c)+' } }, config);
      const pick = new Rng(seed + 1);
      const eotFirst = Float32Array.from(pool[0]!, (x, t) => (t === EOT ? 50 : x)); // the model would rather end
      while (!gen.done) gen.step(pick.int(2) ? eotFirst : pool[pick.int(pool.length)]!);
      expect(gen.tokens).not.toContain(EOT);
      const text = decode(gen.tokens);
      expect(gen.finishReason === 'length' ? /^(?:ab|c)*a?$/.test(text) : /^(?:ab|c)+$/.test(text), text).toBe(true); // max_tokens may cut an 'ab'
    }
  });
});

describe('with the sampler', () => {
  it('top-k, top-p, min-p, penalties and greedy never draw a masked token', () => {
    const variants = [{ topK: 500 }, { topP: 0.9 }, { minP: 0.05 }, { topK: 40, topP: 0.5 }, { frequencyPenalty: 1, repetitionPenalty: 1.3 }, { temperature: 0 }];
    for (const v of variants) {
      for (let seed = 0; seed < 20; seed++) {
        const gen = new Generation([EOT], { maxTokens: 40, temperature: 1, seed, constraint: { type: 'regex', pattern: '(yes|no|maybe) [0-9]{2}' }, ...v }, config);
        while (!gen.done) gen.step(pool[seed % pool.length]!);
        expect(decode(gen.tokens), JSON.stringify(v)).toMatch(/^(yes|no|maybe) [0-9]{2}$/);
        expect(gen.finishReason).toBe('stop');
      }
    }
  });
});

describe('refusals', () => {
  it('names unsupported keywords and syntax', () => {
    const bad: [ConstraintSpec, RegExp][] = [
      [{ type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'string', pattern: 'x' } } } }, /#\/properties\/a: unsupported keyword 'pattern'/],
      [{ type: 'json_schema', schema: { type: 'number', minimum: 3 } }, /'minimum'/],
      [{ type: 'json_schema', schema: { oneOf: [{ type: 'string' }] } }, /'oneOf'/],
      [{ type: 'json_schema', schema: { type: 'object', properties: {}, required: ['x'] } }, /'x' not in 'properties'/],
      [{ type: 'json_schema', schema: { $ref: '#/$defs/nope' } }, /does not resolve/],
      [{ type: 'json_schema', schema: { $defs: { n: { type: 'object', properties: { n: { $ref: '#/$defs/n' } }, required: ['n'] } }, $ref: '#/$defs/n' } }, /no output can satisfy/],
      [{ type: 'regex', pattern: 'a(?=b)' }, /lookaround/],
      [{ type: 'regex', pattern: '(a)\\1' }, /unsupported escape '\\1'/],
      [{ type: 'regex', pattern: 'a{1,1000}' }, /repeat bounds above/],
      [{ type: 'regex', pattern: '(ab' }, /missing '\)'/],
      [{ type: 'choice', choices: [] }, /non-empty array/],
      [{ type: 'regex', pattern: '('.repeat(5000) + ')'.repeat(5000) }, /nested deeper/],
      [{ type: 'json_schema', schema: JSON.parse('{"items":'.repeat(100) + '{}' + '}'.repeat(100)) as object }, /nested deeper than 64 levels/],
      [{ type: 'json_schema', schema: JSON.parse('{"items":'.repeat(5000) + '{}' + '}'.repeat(5000)) as object }, /nested deeper/], // too deep even to stringify
    ];
    for (const [spec, message] of bad) expect(() => compileConstraint(spec), String(message)).toThrow(message);
    expect(() => compileConstraint({ type: 'regex', pattern: '*' })).toThrow(ConstraintError);
  });
});

describe('with a tiny random GPT-2', () => {
  it('generates valid JSON for a schema at temperature 1, logprobs from the raw distribution', async () => {
    const weights = new Map([...randomInit(config, 5)].map(([k, t]) => [k, { kind: 'memory' as const, data: t.data, shape: t.shape }]));
    const session = await ModelSession.create(config, weights, { slots: 1 });
    try {
      const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, ok: { type: 'boolean' }, n: { type: 'integer' } }, required: ['name', 'ok', 'n'], additionalProperties: false };
      for (let seed = 0; seed < 3; seed++) {
        const steps = [];
        for await (const s of generate(session, encode('JSON:'), { maxTokens: 80, temperature: 1, seed, logprobs: 2, constraint: { type: 'json_schema', schema } })) steps.push(s);
        expect(steps.at(-1)!.finishReason).toBe('stop');
        const text = decode(steps.map((s) => s.token).filter((t) => t !== EOT));
        expect(ajv.validate(schema, JSON.parse(text)), text).toBe(true);
        for (const s of steps) expect(s.logprob).toBeLessThan(0); // finite: a masked-out token would be -Infinity
      }
    } finally {
      await session.close();
    }
  });
});
