// A practical subset of JavaScript regular expression syntax → a byte-level Lang (byte-lang.ts),
// always matched against the whole output. Supported: literals, escapes (\d \w \s \D \W \S, \n \t
// \r \f \v \0, \xHH, \uHHHH, escaped punctuation), classes [...] and [^...] with ranges, '.',
// * + ? {m} {m,} {m,n} (lazy forms too: they match the same strings), '|', (...), (?:...),
// (?<name>...), and ^ / $ at the very ends. Anything else is refused with a ConstraintError
// naming it: a constraint that silently matched something else would be worse than none.
import { alt, byteSet, EMPTY, literal, nonAsciiChar, repeat, seq, type Lang } from './byte-lang.js';
import { ConstraintError } from './constraint-error.js';

/** Groups nested deeper are refused: parsing recurses once per level. */
export const MAX_GROUP_DEPTH = 100;
/** Bounded repeats are unrolled into copies, so their bounds are capped. */
export const MAX_REPEAT = 256;

/** A set of characters: ASCII members as a 128-entry table, non-ASCII ones listed, or "all non-ASCII". */
interface CharSet {
  ascii: Uint8Array;
  nonAscii: string[];
  anyNonAscii: boolean;
}

const asciiSet = (pred: (c: number) => boolean): CharSet => ({ ascii: Uint8Array.from({ length: 128 }, (_, c) => (pred(c) ? 1 : 0)), nonAscii: [], anyNonAscii: false });
const isDigit = (c: number) => c >= 48 && c <= 57;
const isWord = (c: number) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);

function complement(s: CharSet): CharSet {
  if (s.nonAscii.length) throw new ConstraintError('regex: a negated class with non-ASCII members is not supported');
  return { ascii: s.ascii.map((v) => 1 - v), nonAscii: [], anyNonAscii: !s.anyNonAscii };
}

function charSetLang(s: CharSet, noLineSeparators = false): Lang {
  return alt(byteSet((b) => b < 128 && s.ascii[b] === 1), s.anyNonAscii ? nonAsciiChar(noLineSeparators) : EMPTY, ...s.nonAscii.map(literal));
}

export function parseRegex(pattern: string): Lang {
  return new Parser(pattern).parse();
}

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private readonly src: string) {}

  parse(): Lang {
    if (this.src.startsWith('^')) this.i = 1;
    const lang = this.alternation();
    if (this.i < this.src.length) this.fail(`unexpected '${this.src[this.i]}'`);
    return lang;
  }

  private fail(msg: string): never {
    throw new ConstraintError(`regex: ${msg} at position ${this.i} of ${JSON.stringify(this.src)}`);
  }

  private peek(): string | undefined {
    return this.src[this.i];
  }

  private alternation(): Lang {
    const branches = [this.sequence()];
    while (this.peek() === '|') {
      this.i++;
      branches.push(this.sequence());
    }
    return alt(...branches);
  }

  private sequence(): Lang {
    const parts: Lang[] = [];
    for (let c = this.peek(); c !== undefined && c !== '|' && c !== ')'; c = this.peek()) {
      if (c === '$') {
        this.i++;
        if (this.i !== this.src.length) this.fail("'$' is only supported at the end");
        continue;
      }
      parts.push(this.quantified(this.atom()));
    }
    return seq(...parts);
  }

  private quantified(x: Lang): Lang {
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{' && /^\{\d+(,\d*)?\}/.test(this.src.slice(this.i))) {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i))!;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) this.fail(`bad repeat {${min},${max}}`);
        if (Math.max(min, max === Infinity ? 0 : max) > MAX_REPEAT) this.fail(`repeat bounds above ${MAX_REPEAT} are not supported`);
        this.i += m[0].length - 1;
      } else return x;
      this.i++;
      if (this.peek() === '?') this.i++; // lazy: the same strings match the whole pattern
      x = repeat(x, min, max);
    }
  }

  private atom(): Lang {
    const c = this.src[this.i]!;
    switch (c) {
      case '(': {
        this.i++;
        if (this.src.startsWith('?:', this.i)) this.i += 2;
        else if (this.src.startsWith('?<', this.i) && !/^\?<[=!]/.test(this.src.slice(this.i))) {
          const end = this.src.indexOf('>', this.i);
          if (end < 0) this.fail('unterminated group name');
          this.i = end + 1;
        } else if (this.peek() === '?') this.fail('lookaround and other (?…) groups are not supported');
        if (++this.depth > MAX_GROUP_DEPTH) this.fail(`groups nested deeper than ${MAX_GROUP_DEPTH} are not supported`);
        const inner = this.alternation();
        this.depth--;
        if (this.peek() !== ')') this.fail("missing ')'");
        this.i++;
        return inner;
      }
      case '[':
        return charSetLang(this.charClass());
      case '.':
        this.i++;
        return charSetLang({ ...asciiSet((ch) => ch !== 10 && ch !== 13), anyNonAscii: true }, true);
      case '\\':
        return this.escape(false) as Lang;
      case '*':
      case '+':
      case '?':
      case '{':
        return this.fail(`nothing to repeat before '${c}'`);
      case '^':
        return this.fail("'^' is only supported at the start");
      default: {
        const cp = this.src.codePointAt(this.i)!;
        const ch = String.fromCodePoint(cp);
        this.i += ch.length;
        return literal(ch);
      }
    }
  }

  /** An escape at src[i] = '\\': a Lang outside classes, a CharSet inside them. */
  private escape(inClass: boolean): Lang | CharSet {
    const e = this.src[this.i + 1];
    if (e === undefined) this.fail('trailing backslash');
    this.i += 2;
    const classes: Record<string, () => CharSet> = {
      d: () => asciiSet(isDigit),
      w: () => asciiSet(isWord),
      s: () => asciiSet(isSpace),
      D: () => complement(asciiSet(isDigit)),
      W: () => complement(asciiSet(isWord)),
      // JavaScript's \s includes Unicode spaces: only ASCII non-spaces are sure to be \S.
      S: () => asciiSet((c) => !isSpace(c)),
    };
    const cls = classes[e];
    if (cls) return inClass ? cls() : charSetLang(cls());
    const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', f: '\f', v: '\v', '0': '\0' };
    let ch: string;
    if (simple[e] !== undefined) ch = simple[e];
    else if (e === 'x' && /^[0-9a-fA-F]{2}/.test(this.src.slice(this.i))) {
      ch = String.fromCharCode(parseInt(this.src.slice(this.i, this.i + 2), 16));
      this.i += 2;
    } else if (e === 'u' && /^[0-9a-fA-F]{4}/.test(this.src.slice(this.i))) {
      ch = String.fromCharCode(parseInt(this.src.slice(this.i, this.i + 4), 16));
      this.i += 4;
    } else if (/[\^$\\.*+?()[\]{}|/\-]/.test(e)) ch = e;
    else this.fail(`unsupported escape '\\${e}'`);
    if (!inClass) return literal(ch);
    return single(ch);
  }

  private charClass(): CharSet {
    this.i++; // '['
    const negated = this.peek() === '^';
    if (negated) this.i++;
    const set: CharSet = asciiSet(() => false);
    const add = (s: CharSet) => {
      s.ascii.forEach((v, c) => v && (set.ascii[c] = 1));
      set.nonAscii.push(...s.nonAscii);
      set.anyNonAscii ||= s.anyNonAscii;
    };
    while (this.peek() !== ']') {
      if (this.peek() === undefined) this.fail("missing ']'");
      const lo = this.classAtom();
      if (this.peek() === '-' && this.src[this.i + 1] !== ']' && this.src[this.i + 1] !== undefined) {
        this.i++;
        const hi = this.classAtom();
        const [a, b] = [singleCode(lo), singleCode(hi)];
        if (a === undefined || b === undefined) this.fail('a class range must run between two characters');
        if (a > b) this.fail('class range out of order');
        if (b >= 128) this.fail('class ranges beyond ASCII are not supported');
        add(asciiSet((c) => c >= a && c <= b));
      } else add(lo);
    }
    this.i++; // ']'
    return negated ? complement(set) : set;
  }

  private classAtom(): CharSet {
    if (this.peek() === '\\') return this.escape(true) as CharSet;
    const cp = this.src.codePointAt(this.i)!;
    const ch = String.fromCodePoint(cp);
    this.i += ch.length;
    return single(ch);
  }
}

function single(ch: string): CharSet {
  const cp = ch.codePointAt(0)!;
  if (cp < 128) return asciiSet((c) => c === cp);
  return { ascii: new Uint8Array(128), nonAscii: [ch], anyNonAscii: false };
}

/** The one code point a CharSet stands for, if it is a single ASCII character or a single listed one. */
function singleCode(s: CharSet): number | undefined {
  const ascii = [...s.ascii.keys()].filter((c) => s.ascii[c]);
  if (ascii.length === 1 && !s.nonAscii.length && !s.anyNonAscii) return ascii[0];
  if (!ascii.length && s.nonAscii.length === 1 && !s.anyNonAscii) return s.nonAscii[0]!.codePointAt(0);
  return undefined;
}
