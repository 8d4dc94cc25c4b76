// Regular languages over bytes, as a small expression tree: what the regex and JSON Schema
// front ends (regex-syntax.ts, json-schema-syntax.ts) compile to, and what byte-nfa.ts turns
// into an automaton. The constructors simplify as they build, so that a language with no string
// in it is always the single node EMPTY: the automaton then has no state that cannot reach the
// end, which is what lets the token masks treat every live state as completable.

export type Lang =
  | { k: 'empty' } // no string at all
  | { k: 'eps' } // only the empty string
  | { k: 'bytes'; set: Uint8Array } // one byte from the set (set[b] = 1)
  | { k: 'seq'; parts: Lang[] }
  | { k: 'alt'; parts: Lang[] }
  | { k: 'star'; x: Lang } // zero or more
  | { k: 'list'; item: Lang; sep: Lang; optional: boolean }; // item (sep item)*, or nothing when optional

export const EMPTY: Lang = { k: 'empty' };
export const EPS: Lang = { k: 'eps' };

export function byteSet(pred: (b: number) => boolean): Lang {
  const set = new Uint8Array(256);
  let any = false;
  for (let b = 0; b < 256; b++) {
    if (!pred(b)) continue;
    set[b] = 1;
    any = true;
  }
  return any ? { k: 'bytes', set } : EMPTY;
}

export const byteRange = (lo: number, hi: number): Lang => byteSet((b) => b >= lo && b <= hi);

export function seq(...parts: Lang[]): Lang {
  const flat: Lang[] = [];
  for (const p of parts) {
    if (p.k === 'empty') return EMPTY;
    if (p.k === 'eps') continue;
    if (p.k === 'seq') flat.push(...p.parts);
    else flat.push(p);
  }
  return flat.length === 0 ? EPS : flat.length === 1 ? flat[0]! : { k: 'seq', parts: flat };
}

export function alt(...parts: Lang[]): Lang {
  const kept = parts.filter((p) => p.k !== 'empty');
  return kept.length === 0 ? EMPTY : kept.length === 1 ? kept[0]! : { k: 'alt', parts: kept };
}

export const opt = (x: Lang): Lang => alt(x, EPS);

export const star = (x: Lang): Lang => (x.k === 'empty' || x.k === 'eps' ? EPS : { k: 'star', x });

/** x repeated min..max times (max may be Infinity); bounded repeats are copies, so callers cap them. */
export function repeat(x: Lang, min: number, max: number): Lang {
  const head = seq(...Array.from({ length: min }, () => x));
  if (max === Infinity) return seq(head, star(x));
  let tail: Lang = EPS;
  for (let i = min; i < max; i++) tail = opt(seq(x, tail)); // x(x(x)?)?: one copy per optional repeat
  return seq(head, tail);
}

export function list(item: Lang, sep: Lang, optional: boolean): Lang {
  if (item.k === 'empty') return optional ? EPS : EMPTY;
  return { k: 'list', item, sep, optional };
}

const utf8 = new TextEncoder();

/** The exact bytes of a string, as UTF-8. */
export function literal(text: string): Lang {
  return seq(...Array.from(utf8.encode(text), (b) => byteRange(b, b)));
}

/**
 * Any one non-ASCII character as valid UTF-8 (no overlong forms, no surrogates). `noLineSeparators`
 * leaves out U+2028 and U+2029, which JavaScript's `.` does not match.
 */
export function nonAsciiChar(noLineSeparators = false): Lang {
  const cont = byteRange(0x80, 0xbf);
  const e2 = noLineSeparators
    ? alt(seq(byteRange(0xe2, 0xe2), byteRange(0x80, 0x80), byteSet((b) => b >= 0x80 && b <= 0xbf && b !== 0xa8 && b !== 0xa9)), seq(byteRange(0xe2, 0xe2), byteRange(0x81, 0xbf), cont))
    : seq(byteRange(0xe2, 0xe2), cont, cont);
  return alt(
    seq(byteRange(0xc2, 0xdf), cont),
    seq(byteRange(0xe0, 0xe0), byteRange(0xa0, 0xbf), cont),
    seq(byteSet((b) => b === 0xe1 || (b >= 0xe3 && b <= 0xec) || b === 0xee || b === 0xef), cont, cont),
    e2,
    seq(byteRange(0xed, 0xed), byteRange(0x80, 0x9f), cont),
    seq(byteRange(0xf0, 0xf0), byteRange(0x90, 0xbf), cont, cont),
    seq(byteRange(0xf1, 0xf3), cont, cont, cont),
    seq(byteRange(0xf4, 0xf4), byteRange(0x80, 0x8f), cont, cont),
  );
}
