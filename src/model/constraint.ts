// Constrained decoding: which tokens may come next so that the output stays in a language (a JSON
// Schema, any JSON object, a regular expression, one of a list of strings). A spec compiles to a
// lazy byte-level DFA (byte-dfa.ts); each DFA state's token mask comes from one walk of GPT-2's
// token trie (token-trie.ts) and is cached on the compiled constraint, so a state seen before
// costs nothing to mask again. Compiled constraints are cached per thread, keyed by the spec's JSON.
import { alt, byteRange, byteSet, EPS, literal, opt, seq, star, type Lang } from './byte-lang.js';
import { ByteDfa, DEAD } from './byte-dfa.js';
import { buildNfa, NfaTooLargeError } from './byte-nfa.js';
import { ConstraintError } from './constraint-error.js';
import { anyObject, ANY_VALUE_DEPTH, schemaLang } from './json-schema-syntax.js';
import { parseRegex } from './regex-syntax.js';
import { hasToken, tokenMask } from './token-trie.js';
import { EOT, tokenBytes, VOCAB_SIZE } from './tokenizer.js';

export { ConstraintError };

/** Plain data, so that it crosses the thread boundary with the rest of SamplingOptions. */
export type ConstraintSpec =
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: object }
  | { type: 'regex'; pattern: string }
  | { type: 'choice'; choices: string[] }
  /** Text that does not begin with `marker`, or `marker` followed by a JSON value valid under `schema` (tool calling's 'auto'). */
  | { type: 'tool_or_text'; marker: string; schema: object };

/** Masks kept per compiled constraint; past this, masks are computed and not kept (bounded memory). */
const MAX_CACHED_MASKS = 1024;
/** Compiled constraints kept per thread, least recently used dropped first. */
const MAX_CACHED_CONSTRAINTS = 32;

export class CompiledConstraint {
  private readonly masks = new Map<number, Uint32Array>();

  constructor(readonly dfa: ByteDfa) {}

  /** Tokens allowed from `state` (bit t of word t >> 5), <|endoftext|> included when it accepts. */
  mask(state: number): Uint32Array {
    let m = this.masks.get(state);
    if (m) return m;
    m = tokenMask(this.dfa, state);
    if (this.masks.size < MAX_CACHED_MASKS) this.masks.set(state, m);
    return m;
  }
}

function specLang(spec: ConstraintSpec): Lang {
  switch (spec?.type) {
    case 'json_object':
      return anyObject(ANY_VALUE_DEPTH);
    case 'json_schema':
      return schemaLang(spec.schema);
    case 'regex':
      if (typeof spec.pattern !== 'string') throw new ConstraintError('regex: the pattern must be a string');
      return parseRegex(spec.pattern);
    case 'choice':
      if (!Array.isArray(spec.choices) || !spec.choices.length || !spec.choices.every((c) => typeof c === 'string')) {
        throw new ConstraintError('choice: expected a non-empty array of strings');
      }
      return alt(...spec.choices.map(literal));
    case 'tool_or_text':
      if (typeof spec.marker !== 'string' || !spec.marker) throw new ConstraintError('tool_or_text: the marker must be a non-empty string');
      return alt(notStartingWith(spec.marker), seq(literal(spec.marker), schemaLang(spec.schema)));
    default:
      throw new ConstraintError(`unknown constraint type ${JSON.stringify((spec as { type?: unknown })?.type)}`);
  }
}

/** Every byte string that does not begin with `prefix`: a proper prefix of it, or one that leaves it at some byte. */
function notStartingWith(prefix: string): Lang {
  const bytes = new TextEncoder().encode(prefix);
  const any = star(byteSet(() => true));
  const parts: Lang[] = [EPS];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    parts.push(seq(...Array.from(bytes.slice(0, i), (x) => byteRange(x, x)), opt(seq(byteSet((x) => x !== b), any))));
  }
  return alt(...parts);
}

const cache = new Map<string, CompiledConstraint>();

/** The spec's JSON; a spec nested too deeply to stringify is refused like any other bad spec. */
function cacheKey(spec: ConstraintSpec): string {
  try {
    return JSON.stringify(spec);
  } catch (e) {
    if (e instanceof RangeError) throw new ConstraintError(`${spec.type}: nested deeper than this server supports`);
    throw e;
  }
}

/** The compiled constraint for `spec`, from this thread's cache when seen before; throws ConstraintError. */
export function compileConstraint(spec: ConstraintSpec): CompiledConstraint {
  const key = cacheKey(spec);
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // re-inserted: most recently used last
    cache.set(key, hit);
    return hit;
  }
  const lang = specLang(spec);
  if (lang.k === 'empty') throw new ConstraintError(`${spec.type}: no output can satisfy this constraint`);
  let compiled: CompiledConstraint;
  try {
    compiled = new CompiledConstraint(new ByteDfa(buildNfa(lang)));
  } catch (e) {
    if (e instanceof NfaTooLargeError) throw new ConstraintError(`${spec.type}: ${e.message}`);
    throw e;
  }
  cache.set(key, compiled);
  if (cache.size > MAX_CACHED_CONSTRAINTS) cache.delete(cache.keys().next().value!);
  return compiled;
}

/** One sequence's position in a constraint: n choices of one request each have their own. */
export class ConstraintState {
  private state: number;

  constructor(private readonly c: CompiledConstraint) {
    this.state = c.dfa.start;
  }

  /** Tokens allowed next; <|endoftext|> only where the output so far is complete. */
  allowed(): Uint32Array {
    return this.c.mask(this.state);
  }

  /** Moves past `token`, which must be allowed. */
  advance(token: number): void {
    if (!hasToken(this.allowed(), token)) throw new Error(`token ${token} is not allowed by the constraint here`);
    if (token === EOT) return;
    for (const b of tokenBytes(token)) this.state = this.c.dfa.next(this.state, b);
    if (this.state === DEAD) throw new Error('constraint: fell off the automaton'); // unreachable once the mask allowed the token
  }

  /** The output is complete and nothing may follow it: generation ends here. */
  get complete(): boolean {
    return this.c.dfa.isAccepting(this.state) && this.c.dfa.isFinal(this.state);
  }

  /** The output so far is complete (more may follow). */
  get accepting(): boolean {
    return this.c.dfa.isAccepting(this.state);
  }
}

/**
 * logits with every token the mask leaves out set to -Infinity, written into `out` (reused by
 * the caller, so no vocabulary-sized allocation per step).
 */
export function applyMask(logits: Float32Array, mask: Uint32Array, out: Float32Array): Float32Array {
  const n = Math.min(logits.length, VOCAB_SIZE);
  for (let w = 0, t = 0; t < n; w++) {
    const bits = mask[w]!;
    const end = Math.min(t + 32, n);
    if (bits === 0) {
      out.fill(-Infinity, t, end);
      t = end;
      continue;
    }
    if (bits === 0xffffffff) {
      for (; t < end; t++) out[t] = logits[t]!; // all 32 allowed, as inside most strings: no bit tests
      continue;
    }
    for (let j = 0; t < end; t++, j++) out[t] = (bits >>> j) & 1 ? logits[t]! : -Infinity;
  }
  if (logits.length > n) out.fill(-Infinity, n); // padded vocabularies: never a real token
  return out;
}
