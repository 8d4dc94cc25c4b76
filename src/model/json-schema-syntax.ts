// JSON Schema (the subset OpenAI's strict mode accepts) → a byte-level Lang (byte-lang.ts) of the
// compact JSON texts that validate: no insignificant whitespace, properties in the schema's order.
// A keyword outside the subset is refused with a ConstraintError naming it and where it is, never
// ignored: output that looked constrained but was not would be worse than an error.
import { alt, byteRange, byteSet, EPS, list, literal, nonAsciiChar, opt, repeat, seq, star, type Lang } from './byte-lang.js';
import { ConstraintError } from './constraint-error.js';

/** Levels of objects and arrays inside a value whose schema does not say (json_object, {}). */
export const ANY_VALUE_DEPTH = 4;
/** Times one $ref may be expanded inside itself; deeper, the recursive alternative is dropped. */
export const MAX_REF_DEPTH = 3;
/** Schemas nested deeper are refused: compiling recurses once per level. */
export const MAX_SCHEMA_DEPTH = 64;
/** Bounds (minItems, maxLength, …) are unrolled into copies, so they are capped. */
export const MAX_BOUND = 256;

const ANNOTATIONS = ['title', 'description', '$schema', '$id', '$comment', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions'];
const SUPPORTED = new Set([...ANNOTATIONS, 'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'anyOf', '$ref', 'minItems', 'maxItems', 'minLength', 'maxLength', 'minimum', 'maximum']);
const TYPES = ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array'] as const;
type TypeName = (typeof TYPES)[number];

const digit = byteRange(0x30, 0x39);
const hasKey = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** One character inside a JSON string: printable ASCII, any valid UTF-8 character, or a short escape. */
const jsonChar: Lang = alt(
  byteSet((b) => b >= 0x20 && b < 0x80 && b !== 0x22 && b !== 0x5c),
  nonAsciiChar(),
  seq(literal('\\'), byteSet((b) => '"\\/bfnrt'.includes(String.fromCharCode(b)))),
);
const anyString = seq(literal('"'), star(jsonChar), literal('"'));
// Digits are bounded so that a number cannot go on forever and stays an exact float64 integer.
const magnitude = alt(literal('0'), seq(byteRange(0x31, 0x39), repeat(digit, 0, 14)));
/** The largest magnitude the digit bounds allow an integer part. */
const MAX_MAGNITUDE = 10 ** 15 - 1;
const intPart = seq(opt(literal('-')), magnitude);
const integer = intPart;
const fraction = (int: Lang) => seq(int, opt(seq(literal('.'), repeat(digit, 1, 15))), opt(seq(byteSet((b) => b === 0x65 || b === 0x45), opt(byteSet((b) => b === 0x2b || b === 0x2d)), repeat(digit, 1, 2))));
const number = fraction(intPart);

/** Any JSON value with at most `depth` levels of objects and arrays. */
export function anyValue(depth: number): Lang {
  const scalars = alt(anyString, number, literal('true'), literal('false'), literal('null'));
  return depth <= 0 ? scalars : alt(scalars, anyObject(depth), seq(literal('['), list(anyValue(depth - 1), literal(','), true), literal(']')));
}

/** Any JSON object whose values nest at most `depth` − 1 further levels. */
export function anyObject(depth: number): Lang {
  return seq(literal('{'), list(seq(anyString, literal(':'), anyValue(depth - 1)), literal(','), true), literal('}'));
}

export function schemaLang(schema: unknown): Lang {
  return new SchemaCompiler(schema).compile(schema, '#', new Map());
}

class SchemaCompiler {
  private depth = 0;

  constructor(private readonly root: unknown) {}

  compile(s: unknown, path: string, refs: Map<string, number>): Lang {
    if (this.depth >= MAX_SCHEMA_DEPTH) this.fail(path, `schemas nested deeper than ${MAX_SCHEMA_DEPTH} levels are not supported`);
    this.depth++;
    try {
      return this.compileAt(s, path, refs);
    } finally {
      this.depth--;
    }
  }

  private compileAt(s: unknown, path: string, refs: Map<string, number>): Lang {
    if (s === true) return anyValue(ANY_VALUE_DEPTH);
    if (s === false) return alt();
    if (typeof s !== 'object' || s === null || Array.isArray(s)) this.fail(path, 'a schema must be an object or a boolean');
    const o = s as Record<string, unknown>;
    const unsupported = Object.keys(o).filter((k) => !SUPPORTED.has(k));
    if (unsupported.length) this.fail(path, `unsupported keyword${unsupported.length > 1 ? 's' : ''} ${unsupported.map((k) => `'${k}'`).join(', ')}`);
    const constraints = Object.keys(o).filter((k) => !ANNOTATIONS.includes(k));
    const alone = (k: string) => {
      const others = constraints.filter((c) => c !== k && c !== 'type');
      if (others.length) this.fail(path, `'${k}' combined with ${others.map((c) => `'${c}'`).join(', ')} is not supported`);
    };
    if (hasKey(o, '$ref')) {
      alone('$ref');
      return this.ref(o.$ref, path, refs);
    }
    if (hasKey(o, 'anyOf')) {
      alone('anyOf');
      if (!Array.isArray(o.anyOf) || !o.anyOf.length) this.fail(path, "'anyOf' must be a non-empty array");
      return alt(...o.anyOf.map((x, i) => this.compile(x, `${path}/anyOf/${i}`, refs)));
    }
    if (hasKey(o, 'const')) return literal(JSON.stringify(o.const));
    if (hasKey(o, 'enum')) {
      if (!Array.isArray(o.enum) || !o.enum.length) this.fail(path, "'enum' must be a non-empty array");
      return alt(...o.enum.map((v) => literal(JSON.stringify(v))));
    }
    const types = this.types(o, path);
    return alt(...types.map((t) => this.typed(t, o, path, refs)));
  }

  private types(o: Record<string, unknown>, path: string): TypeName[] {
    if (!hasKey(o, 'type')) {
      if (hasKey(o, 'properties') || hasKey(o, 'required') || hasKey(o, 'additionalProperties')) return ['object'];
      if (hasKey(o, 'items') || hasKey(o, 'minItems') || hasKey(o, 'maxItems')) return ['array'];
      if (hasKey(o, 'minLength') || hasKey(o, 'maxLength')) return ['string'];
      return [...TYPES];
    }
    const list = Array.isArray(o.type) ? o.type : [o.type];
    for (const t of list) if (!TYPES.includes(t as TypeName)) this.fail(path, `unknown type ${JSON.stringify(t)}`);
    return list as TypeName[];
  }

  private typed(t: TypeName, o: Record<string, unknown>, path: string, refs: Map<string, number>): Lang {
    switch (t) {
      case 'string': {
        const min = this.bound(o, 'minLength', path) ?? 0;
        const max = this.bound(o, 'maxLength', path) ?? Infinity;
        return seq(literal('"'), repeat(jsonChar, min, max), literal('"'));
      }
      case 'number':
        return this.signed(o, path) ? number : fraction(magnitude);
      case 'integer':
        return this.signed(o, path) ? integer : magnitude;
      case 'boolean':
        return alt(literal('true'), literal('false'));
      case 'null':
        return literal('null');
      case 'array': {
        const item = hasKey(o, 'items') ? this.compile(o.items, `${path}/items`, refs) : anyValue(ANY_VALUE_DEPTH - 1);
        const min = this.bound(o, 'minItems', path) ?? 0;
        const max = this.bound(o, 'maxItems', path) ?? Infinity;
        if (max < min) this.fail(path, "'maxItems' is below 'minItems'");
        const items =
          min <= 1 && max === Infinity
            ? list(item, literal(','), min === 0)
            : max === 0
              ? EPS
              : min === 0
                ? opt(seq(item, repeat(seq(literal(','), item), 0, max - 1)))
                : seq(item, repeat(seq(literal(','), item), min - 1, max - 1));
        return seq(literal('['), items, literal(']'));
      }
      case 'object':
        return this.object(o, path, refs);
    }
  }

  private object(o: Record<string, unknown>, path: string, refs: Map<string, number>): Lang {
    const extra = o.additionalProperties;
    if (extra !== undefined && typeof extra !== 'boolean') this.fail(path, "'additionalProperties' other than true or false is not supported");
    const props = o.properties ?? {};
    if (typeof props !== 'object' || props === null || Array.isArray(props)) this.fail(path, "'properties' must be an object");
    const required = o.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === 'string')) this.fail(path, "'required' must be an array of strings");
    const names = Object.keys(props);
    const missing = required.filter((r) => !names.includes(r));
    if (missing.length) this.fail(path, `required propert${missing.length > 1 ? 'ies' : 'y'} ${missing.map((m) => `'${m}'`).join(', ')} not in 'properties'`);
    // No properties listed: any object (when extra ones are allowed) or only {}.
    if (!names.length) return extra === false ? literal('{}') : anyObject(ANY_VALUE_DEPTH);
    const member = names.map((n) => seq(literal(JSON.stringify(n)), literal(':'), this.compile((props as Record<string, unknown>)[n], `${path}/properties/${n}`, refs)));
    const isRequired = names.map((n) => required.includes(n));
    // rest[i]: the members from i on, each after a comma; first[i]: the same with no comma before the first present one.
    const rest: Lang[] = new Array(names.length + 1).fill(EPS);
    const first: Lang[] = new Array(names.length + 1).fill(EPS);
    for (let i = names.length - 1; i >= 0; i--) {
      const withComma = seq(literal(','), member[i]!);
      rest[i] = isRequired[i] ? seq(withComma, rest[i + 1]!) : seq(opt(withComma), rest[i + 1]!);
      first[i] = isRequired[i] ? seq(member[i]!, rest[i + 1]!) : alt(seq(member[i]!, rest[i + 1]!), first[i + 1]!);
    }
    return seq(literal('{'), first[0]!, literal('}'));
  }

  private ref(ref: unknown, path: string, refs: Map<string, number>): Lang {
    if (typeof ref !== 'string' || !ref.startsWith('#')) this.fail(path, `only local '$ref's ('#/…') are supported, got ${JSON.stringify(ref)}`);
    const depth = refs.get(ref) ?? 0;
    if (depth >= MAX_REF_DEPTH) return alt(); // too deep: this alternative is dropped
    let target: unknown = this.root;
    for (const raw of ref.slice(1).split('/').slice(1)) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (typeof target !== 'object' || target === null || !hasKey(target, key)) this.fail(path, `'$ref' ${JSON.stringify(ref)} does not resolve`);
      target = (target as Record<string, unknown>)[key];
    }
    const inner = new Map(refs).set(ref, depth + 1);
    return this.compile(target, ref, inner);
  }

  /**
   * Whether negative numbers are allowed: bounds are supported only where they change nothing
   * (zod's .int() emits ±2^53) or where they are just "not negative" (minimum 0).
   */
  private signed(o: Record<string, unknown>, path: string): boolean {
    const { minimum: min, maximum: max } = o;
    if (max !== undefined && !(typeof max === 'number' && max >= MAX_MAGNITUDE)) this.fail(path, `'maximum' below ${MAX_MAGNITUDE} is not supported`);
    if (min === undefined || (typeof min === 'number' && min <= -MAX_MAGNITUDE)) return true;
    if (min === 0) return false;
    return this.fail(path, "'minimum' other than 0 (or a no-op bound) is not supported");
  }

  private bound(o: Record<string, unknown>, key: string, path: string): number | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || (v as number) < 0) this.fail(path, `'${key}' must be a non-negative integer`);
    if ((v as number) > MAX_BOUND) this.fail(path, `'${key}' above ${MAX_BOUND} is not supported`);
    return v as number;
  }

  private fail(path: string, msg: string): never {
    throw new ConstraintError(`schema ${path}: ${msg}`);
  }
}
