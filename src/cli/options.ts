// Command-line options declared once: each option's value type, range, default and help, from
// which a command's parseArgs table, its --help text and its typed values are all derived (as
// LitGPT derives its CLI from the dataclasses in litgpt/args.py).
import type { ParseArgsConfig } from 'node:util';
import { integer, number, parseOptions } from './args.js';

/** One option; `Always`: its value is never undefined (it has a default, is required or a boolean). */
export interface Option<T, Always extends boolean = boolean> {
  readonly always?: Always;
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  /** The value's placeholder in --help (N, FILE); a boolean has none. */
  readonly arg?: string;
  readonly help: string;
  /** The heading --help lists the option under. */
  readonly group?: string;
  /** Read when the flag is absent, before the default. */
  readonly env?: string;
  readonly default?: T;
  /** Absent (and no env value) is an error. */
  readonly required?: boolean;
  /** --help's words for a default the command works out itself (from the model, the data…). */
  readonly defaultText?: string;
  /** The flag's text as the typed value; throws a message that names the flag. */
  readonly parse: (flag: string, raw: string) => T;
}

type Options = Record<string, Option<unknown>>;

/** The typed values of a command's options, keyed as declared (camelCase; the flag is kebab-case). */
export type Values<S extends Options> = { -readonly [K in keyof S]: S[K] extends Option<infer T, true> ? T : S[K] extends Option<infer T, boolean> ? T | undefined : never };

interface Common {
  help: string;
  arg?: string;
  env?: string;
  defaultText?: string;
}
type WithDefault<T, D> = Option<T, D extends undefined ? false : true>;

function option<T>(type: 'string' | 'boolean', o: Common & { default?: unknown; required?: boolean; multiple?: boolean }, parse: (flag: string, raw: string) => T): Option<T> {
  return { type, ...o, default: o.default as T | undefined, parse };
}

export const int = <D extends number | undefined = undefined>(o: Common & { min?: number; default?: D }): WithDefault<number, D> =>
  option('string', o, (flag, s) => integer(flag, s, o.min)) as WithDefault<number, D>;

export const num = <D extends number | undefined = undefined>(o: Common & { default?: D }): WithDefault<number, D> =>
  option('string', o, (flag, s) => number(flag, s)) as WithDefault<number, D>;

export function str(o: Common & { required: true }): Option<string, true>;
export function str<D extends string | undefined = undefined>(o: Common & { default?: D }): WithDefault<string, D>;
export function str(o: Common & { default?: string; required?: boolean }): Option<string> {
  return option('string', o, (_, s) => s);
}

/** One of `choices`; with ignoreCase, written in any case and returned as listed. */
export const choice = <const C extends readonly string[], D extends C[number] | undefined = undefined>(
  choices: C,
  o: Common & { default?: D; ignoreCase?: boolean },
): WithDefault<C[number], D> =>
  option('string', { arg: choices.join('|'), ...o }, (flag, s) => {
    const found = choices.find((c) => (o.ignoreCase ? c.toUpperCase() === s.toUpperCase() : c === s));
    if (found === undefined) throw new Error(`${flag} must be one of ${choices.join(', ')}, got '${s}'`);
    return found;
  }) as WithDefault<C[number], D>;

/** Repeatable: every occurrence, in order. */
export const list = (o: Common): WithDefault<string[], undefined> => option('string', { ...o, multiple: true }, (_, s) => [s]) as WithDefault<string[], undefined>;

/** Comma-separated words (blanks dropped). */
export const csv = <D extends string[] | undefined = undefined>(o: Common & { default?: D }): WithDefault<string[], D> =>
  option('string', o, (_, s) => s.split(',').map((w) => w.trim()).filter(Boolean)) as WithDefault<string[], D>;

/** A boolean switch: present or not. */
export const flag = (o: Omit<Common, 'arg' | 'env' | 'defaultText'>): Option<boolean, true> => option('boolean', { ...o, default: false }, () => true) as Option<boolean, true>;

/** The same options under a --help heading. */
export function group<S extends Options>(heading: string, options: S): S {
  return Object.fromEntries(Object.entries(options).map(([k, o]) => [k, { ...o, group: heading }])) as S;
}

/** `aBcD` → `--a-bc-d`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export interface Command<S extends Options> {
  readonly name: string;
  /** The first line of --help (`usage: scratchgpt NAME …`). */
  readonly usage: string;
  readonly options: S;
  /** Free text after the options. */
  readonly epilog?: string;
  /** Words after the options are allowed (else they are an error). */
  readonly positionals?: boolean;
}

export interface Parsed<S extends Options> {
  values: Values<S>;
  positionals: string[];
  /** The options written on the command line (not from the environment or a default). */
  given: ReadonlySet<keyof S & string>;
}

/**
 * The command line as typed values: defaults applied, numbers checked. Prints --help and returns
 * undefined when asked for it (before any value is checked, so help always works).
 */
export function parseCommand<S extends Options>(c: Command<S>, argv: string[]): Parsed<S> | undefined {
  const entries = Object.entries(c.options);
  const table: NonNullable<ParseArgsConfig['options']> = {};
  for (const [k, o] of entries) table[flagName(k).slice(2)] = { type: o.type, ...(o.multiple && { multiple: true }) };
  table.help = { type: 'boolean', short: 'h' };
  const { values: raw, positionals } = parseOptions(c.name, { args: argv, allowPositionals: c.positionals ?? false, options: table });
  if (raw.help) {
    console.log(helpText(c));
    return undefined;
  }
  const values: Record<string, unknown> = {};
  const given = new Set<keyof S & string>();
  for (const [k, o] of entries) {
    const f = flagName(k);
    const v = raw[f.slice(2)] as string | boolean | string[] | undefined;
    if (v !== undefined) given.add(k);
    const text = v ?? (o.env === undefined ? undefined : process.env[o.env]);
    if (text === undefined && o.required) throw new Error(`${f} ${o.arg} is required (see --help)`);
    if (text === undefined) values[k] = o.default;
    else if (typeof text === 'boolean') values[k] = text;
    else if (Array.isArray(text)) values[k] = text; // a repeated --flag: the strings as given
    else values[k] = o.parse(f, text);
  }
  return { values: values as Values<S>, positionals, given };
}

const WIDTH = 100;

/** --help: the usage line, the options (one per line, under their headings), the epilog. */
function helpText(c: Command<Options>): string {
  const rows = Object.entries(c.options).map(([k, o]) => ({ o, left: `  ${flagName(k)}${o.arg ? ` ${o.arg}` : ''}` }));
  const blocks = [c.usage];
  if (rows.length) {
    const column = Math.min(27, Math.max(...rows.map((r) => r.left.length)) + 2);
    const lines: string[] = [];
    let heading: string | undefined;
    for (const { o, left } of rows) {
      if (o.group !== heading && o.group !== undefined) lines.push(`${o.group}:`);
      heading = o.group;
      const text = wrap(o.help + defaults(o), WIDTH - column);
      if (left.length > column - 2) lines.push(left, ...text.map((t) => ' '.repeat(column) + t));
      else lines.push(left.padEnd(column) + text[0], ...text.slice(1).map((t) => ' '.repeat(column) + t));
    }
    blocks.push(lines.join('\n'));
  }
  if (c.epilog) blocks.push(c.epilog);
  return blocks.join('\n\n');
}

function defaults(o: Option<unknown>): string {
  const d = o.defaultText ?? (o.type === 'boolean' || o.default === undefined ? undefined : show(o.default));
  if (o.env) return ` (env ${o.env}${d === undefined ? '' : `, default: ${d}`})`;
  return d === undefined ? '' : ` (default: ${d})`;
}

function show(v: unknown): string {
  if (typeof v === 'number') return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : String(v);
  if (Array.isArray(v)) return v.length ? v.join(',') : 'none';
  return typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v);
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}
