// Declared options (src/cli/options.ts): one declaration gives the parseArgs table, the typed
// values (defaults, environment, ranges, required) and the --help text.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../src/cli/args.js';
import { choice, csv, flag, group, int, list, num, parseCommand, str } from '../src/cli/options.js';

const COMMAND = {
  name: 'demo',
  usage: 'usage: scratchgpt demo --out DIR [options]',
  options: {
    ...group('data', {
      data: list({ arg: 'FILE', help: 'input (repeatable)' }),
      valRatio: num({ arg: 'R', default: 0.1, help: 'validation share' }),
    }),
    ...group('training', {
      batchSize: int({ arg: 'B', min: 1, default: 8, help: 'records per step' }),
      lr: num({ arg: 'LR', default: 5e-5, help: 'learning rate' }),
      maxLength: int({ arg: 'L', min: 1, defaultText: 'the context length', help: 'truncate rows' }),
      decay: choice(['all', 'none'], { default: 'all', help: 'tensors that decay' }),
      dtype: choice(['F32', 'F16'], { ignoreCase: true, help: 'storage dtype' }),
      hosts: csv({ arg: 'H,...', env: 'DEMO_HOSTS', default: [], help: 'host names' }),
      merge: flag({ help: 'merge the adapters' }),
    }),
    ...group('output', { out: str({ arg: 'DIR', required: true, help: 'where to write' }) }),
  },
  epilog: 'Ctrl-C stops.',
};

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('parseCommand', () => {
  it('gives typed values: defaults applied, numbers parsed, choices and lists; `given` holds what was written', () => {
    const p = parseCommand(COMMAND, ['--out', 'x', '--batch-size', '4', '--data', 'a', '--data', 'b', '--dtype', 'f16', '--merge'])!;
    expect(p.values).toEqual({ data: ['a', 'b'], valRatio: 0.1, batchSize: 4, lr: 5e-5, maxLength: undefined, decay: 'all', dtype: 'F16', hosts: [], merge: true, out: 'x' });
    expect([...p.given].sort()).toEqual(['batchSize', 'data', 'dtype', 'merge', 'out']);
  });

  it('reads an option from its environment variable when the flag is absent; the flag wins', () => {
    vi.stubEnv('DEMO_HOSTS', 'a.com, ,b.com');
    expect(parseCommand(COMMAND, ['--out', 'x'])!.values.hosts).toEqual(['a.com', 'b.com']);
    expect(parseCommand(COMMAND, ['--out', 'x', '--hosts', 'c.com'])!.values.hosts).toEqual(['c.com']);
    expect(parseCommand(COMMAND, ['--out', 'x'])!.given.has('hosts')).toBe(false);
  });

  it('names the flag in every value error', () => {
    expect(() => parseCommand(COMMAND, ['--out', 'x', '--batch-size', '0'])).toThrow("--batch-size expects an integer ≥ 1, got '0'");
    expect(() => parseCommand(COMMAND, ['--out', 'x', '--lr', 'fast'])).toThrow("--lr expects a number, got 'fast'");
    expect(() => parseCommand(COMMAND, ['--out', 'x', '--decay', 'some'])).toThrow("--decay must be one of all, none, got 'some'");
    expect(() => parseCommand(COMMAND, [])).toThrow('--out DIR is required (see --help)');
    expect(() => parseCommand(COMMAND, ['--out', 'x', '--batchsize', '2'])).toThrow(UsageError);
  });

  it('--help prints the derived help (headings, defaults, epilog) before any value is checked', () => {
    let printed = '';
    vi.spyOn(console, 'log').mockImplementation((s: string) => void (printed += s));
    expect(parseCommand(COMMAND, ['--batch-size', 'many', '--help'])).toBeUndefined();
    expect(printed).toBe(
      [
        'usage: scratchgpt demo --out DIR [options]',
        '',
        'data:',
        '  --data FILE       input (repeatable)',
        '  --val-ratio R     validation share (default: 0.1)',
        'training:',
        '  --batch-size B    records per step (default: 8)',
        '  --lr LR           learning rate (default: 5e-5)',
        '  --max-length L    truncate rows (default: the context length)',
        '  --decay all|none  tensors that decay (default: all)',
        '  --dtype F32|F16   storage dtype',
        '  --hosts H,...     host names (env DEMO_HOSTS, default: none)',
        '  --merge           merge the adapters',
        'output:',
        '  --out DIR         where to write',
        '',
        'Ctrl-C stops.',
      ].join('\n'),
    );
  });
});
