// `scratchgpt <command> [options]`: one file per command, each exporting run(argv) → exit code.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT } from '../model/default-model.js';
import { UsageError } from './args.js';
import { closest } from './suggest.js';

const COMMANDS: Record<string, { about: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> }> = {
  chat: { about: 'talk to a chat model in the terminal (streamed, multi-turn)', load: () => import('./chat.js') },
  generate: { about: 'stream a completion from a GPT-2 checkpoint', load: () => import('./generate.js') },
  serve: { about: 'serve models over an OpenAI-compatible HTTP API', load: () => import('./serve.js') },
  worker: { about: "train the fine-tuning jobs of servers that share a --database, without serving", load: () => import('./worker.js') },
  finetune: { about: 'finetune a GPT-2 on instructions or labelled texts (full, last blocks, LoRA)', load: () => import('./finetune.js') },
  pretrain: { about: 'train a GPT-2 on raw text files', load: () => import('./pretrain.js') },
  convert: { about: 'rewrite a GPT-2 folder in another dtype (F32, F16, BF16)', load: () => import('./convert.js') },
  download: { about: 'fetch a model from the Hugging Face Hub into the cache (ORG/NAME[@REV])', load: () => import('./download.js') },
  'prepare-brown': { about: 'write the Brown corpus as plain text (pretraining data)', load: () => import('./prepare-brown.js') },
};

/** Lines not backed by a command module. */
const BUILTINS: [string, string][] = [
  ['help [COMMAND]', "this text, or a command's options"],
  ['version', 'print the version (also --version, -v)'],
];

function usage(): string {
  const rows: [string, string][] = [...Object.entries(COMMANDS).map(([name, c]): [string, string] => [name, c.about]), ...BUILTINS];
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  return [
    'usage: scratchgpt <command> [options]',
    '',
    'commands:',
    ...rows.map(([name, about]) => `  ${name.padEnd(width)}${about}`),
    '',
    "Run 'scratchgpt help <command>' or 'scratchgpt <command> --help' for a command's options.",
  ].join('\n');
}

function version(): string {
  const require = createRequire(import.meta.url);
  const own = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  let ort = 'not installed';
  try {
    ort = (require('onnxruntime-node/package.json') as { version: string }).version; // the file, not the native binding: stays fast
  } catch {
    // reported as such: --version must work on a broken install too
  }
  return `scratchgpt ${own}\nonnxruntime-node ${ort}, node ${process.version}`;
}

function unknownCommand(name: string): number {
  const near = closest(name, [...Object.keys(COMMANDS), 'help', 'version']);
  console.error(`scratchgpt: unknown command '${name}'${near ? `; did you mean '${near}'?` : ''} (scratchgpt help lists them)`);
  return 2;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    console.log(version());
    return 0;
  }
  if (name === 'help') {
    if (rest.length === 0) {
      console.log(usage());
      return 0;
    }
    return COMMANDS[rest[0]!] ? main([rest[0]!, '--help']) : unknownCommand(rest[0]!);
  }
  const command = COMMANDS[name];
  if (!command) return unknownCommand(name);
  try {
    return await (await command.load()).run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`scratchgpt: ${e.message}`);
      return 2;
    }
    console.error(`scratchgpt ${name}: ${(e as Error).message}`);
    return 1;
  }
}
