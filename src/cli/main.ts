// `scratchgpt <command> [options]`: one file per command, each exporting run(argv) → exit code.
const COMMANDS: Record<string, { about: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> }> = {
  generate: { about: 'stream a completion from a GPT-2 checkpoint', load: () => import('./generate.js') },
  pretrain: { about: 'train a GPT-2 on raw text files', load: () => import('./pretrain.js') },
  finetune: { about: 'finetune a GPT-2 on instructions or labelled texts (full, last blocks, LoRA)', load: () => import('./finetune.js') },
  serve: { about: 'serve models over an OpenAI-compatible HTTP API', load: () => import('./serve.js') },
  convert: { about: 'rewrite a GPT-2 folder in another dtype (F32, F16, BF16)', load: () => import('./convert.js') },
  'prepare-brown': { about: 'write the Brown corpus as plain text (pretraining data)', load: () => import('./prepare-brown.js') },
};

const USAGE = `usage: scratchgpt <command> [options]\n\ncommands:\n${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.about}`)
  .join('\n')}\n\nRun 'scratchgpt <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`scratchgpt: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await (await command.load()).run(rest);
  } catch (e) {
    console.error(`scratchgpt ${name}: ${(e as Error).message}`);
    return 1;
  }
}
