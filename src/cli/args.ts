// Small helpers shared by the CLI commands: node:util's parseArgs with one-line errors, numeric
// values, progress output. Commands declare their options in options.ts's terms.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { closest } from './suggest.js';

/** A mistyped command line: main prints it as one line and exits 2, as for an unknown command. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * node:util's parseArgs for `scratchgpt <command>`, with its errors (unknown option, missing or
 * surplus value, stray argument) rewritten as one line that names the command, suggests the
 * nearest option and points at the command's --help.
 */
export function parseOptions<T extends ParseArgsConfig>(command: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (!err.code?.startsWith('ERR_PARSE_ARGS_')) throw e;
    throw new UsageError(`${usageMessage(command, err, Object.keys(config.options ?? {}))} (scratchgpt ${command} --help)`);
  }
}

function usageMessage(command: string, err: Error & { code?: string }, names: string[]): string {
  const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? '';
  const flag = quoted.split(/[ =]/)[0]!; // "--max-tokens <value>" → "--max-tokens"
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const near = flag.startsWith('--') ? closest(flag.slice(2), names) : undefined;
      return `unknown option '${flag}' for '${command}'${near ? `; did you mean '--${near}'?` : ''}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(err.message)) return `option '${flag}' takes no value`;
      if (/ambiguous/.test(err.message)) return `option '${flag}' needs a value; a value that starts with '-' is written '${flag}=-…'`;
      return `option '${flag}' needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const near = closest(quoted, names); // an option written without its dashes?
      return `unexpected argument '${quoted}' for '${command}'${near ? `; did you mean '--${near}'?` : ''}`;
    }
    default:
      return err.message.split('\n')[0]!;
  }
}

export function number(flag: string, s: string): number {
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v)) throw new Error(`${flag} expects a number, got '${s}'`);
  return v;
}

export function integer(flag: string, s: string, min = -Infinity): number {
  const v = number(flag, s);
  if (!Number.isInteger(v) || v < min) throw new Error(`${flag} expects an integer${min > -Infinity ? ` ≥ ${min}` : ''}, got '${s}'`);
  return v;
}

/** Progress on stderr for long work (loading big weights); silent when stderr is not a terminal. */
export function progressLine(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => {
    process.stderr.write(`\r${label} ${Math.round((100 * done) / total)}%`);
    if (done === total) process.stderr.write('\r\x1b[K');
  };
}
