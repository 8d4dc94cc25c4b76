// scratchgpt chat: talk to a chat model in the terminal, as `ollama run` does: answers stream as
// they are sampled, the conversation is kept between messages, Ctrl-C stops an answer.
//
// On a terminal, readline owns the prompt line in raw mode; while an answer is written the
// terminal goes back to cooked mode, so Ctrl-C arrives as SIGINT and stops the answer (readline
// stays paused, so keys typed meanwhile wait for the next prompt instead of mixing with the answer).
// Without a terminal (a pipe, a file) each line is one message and each answer one block of text.
import path from 'node:path';
import readline from 'node:readline';
import type { ReadStream } from 'node:tty';
import { DEFAULT_CHAT_MODEL_DIR, resolveModelDir } from '../model/default-model.js';
import { withGenerationDefaults } from '../model/generation-config.js';
import { readModelFolder } from '../model/model-folder.js';
import { resolveModel } from '../model/resolve.js';
import { validateSamplingOptions } from '../model/sampler.js';
import { ModelSession } from '../model/session.js';
import { progressLine } from './args.js';
import { RUNTIME_OPTIONS, SAMPLING_OPTIONS } from './common-options.js';
import { Conversation, type AnswerOptions, type Turn } from './conversation.js';
import { flag, int, parseCommand, str } from './options.js';
import { downloadProgress } from './progress.js';
import { closest } from './suggest.js';

const CHAT = {
  name: 'chat',
  usage: 'usage: scratchgpt chat [--model DIR] [options]',
  options: {
    model: str({
      arg: 'DIR',
      defaultText: 'the embedded weights/scratchgpt-brown-instruct',
      help: "a chat model: a GPT-2 folder with a chat template (tokenizer_config.json's chat_template)",
    }),
    chatTemplate: str({ arg: 'FILE', help: "a Jinja chat template to use instead of the model's own" }),
    system: str({ arg: 'TEXT', help: 'system message that opens the conversation (kept by /reset)' }),
    maxTokens: int({ arg: 'N', min: 1, defaultText: "generation_config.json's max_new_tokens, else up to the end of the context", help: 'longest answer' }),
    ...SAMPLING_OPTIONS,
    ...RUNTIME_OPTIONS,
    verbose: flag({ help: 'after each answer, print its token counts and speed on stderr' }),
  },
  epilog: `In the chat: /reset forgets the conversation, /exit (or Ctrl-D) leaves, /help lists the commands.
Ctrl-C stops the answer being written (what was written stays in the conversation); at the prompt
it clears the line, and a second Ctrl-C in a row on an empty line leaves. When the conversation
leaves too little of the model's context for an answer (--max-tokens, else a quarter of the
context, at most 256 tokens), its oldest exchanges are forgotten.

Without a terminal on stdin (a pipe or a file) every line is one message and every answer is
printed to stdout followed by a newline: no prompt, no banner, no escape codes.`,
};

const SLASH_COMMANDS: Record<string, string> = {
  '/reset': 'forget the conversation (the --system message stays)',
  '/exit': 'leave (also /bye and Ctrl-D)',
  '/help': 'this list',
};

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(CHAT, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  const { device, quantize, draft, draftTokens, threads } = a;

  const dir = a.model ? (await resolveModel(a.model, { onProgress: downloadProgress() })).dir : resolveModelDir(undefined, DEFAULT_CHAT_MODEL_DIR);
  // An adapter's own prompt files first, then its base's (as the server reads them).
  const { chat: template, generation: defaults } = readModelFolder(dir, a.chatTemplate && path.resolve(a.chatTemplate));
  if (!template) {
    throw new Error(`${path.basename(dir)} is a base model without a chat template: chat with a chat model (--model weights/scratchgpt-brown-instruct, or a folder whose tokenizer_config.json has a chat_template) or give --chat-template FILE`);
  }
  const options: AnswerOptions = withGenerationDefaults(
    { maxTokens: a.maxTokens ?? defaults.maxTokens, temperature: a.temperature, topK: a.topK, topP: a.topP, seed: a.seed },
    defaults,
  );
  validateSamplingOptions({ ...options, maxTokens: options.maxTokens ?? 0 });

  const model = await ModelSession.load(dir, {
    device,
    threads,
    quantize,
    draft,
    draftTokens,
    onProgress: progressLine('loading weights'),
  });
  try {
    return await talk(new Conversation(model, template, options, a.system), path.basename(dir), a.verbose);
  } finally {
    await model.close();
  }
}

/** The read–answer loop; resolves with the exit code once the user leaves or input ends. */
async function talk(conversation: Conversation, name: string, verbose: boolean): Promise<number> {
  const stdin = process.stdin;
  const out = process.stdout;
  const interactive = Boolean(stdin.isTTY);
  const rl = readline.createInterface({ input: stdin, output: out, terminal: interactive, prompt: '>>> ', historySize: 200 });
  const lines = lineQueue(rl);
  let answering: AbortController | undefined;
  let armed = false; // a Ctrl-C on an empty prompt was seen: the next one leaves
  let leave: number | undefined;

  // Ctrl-C at the prompt (readline reads it as a key in raw mode).
  const onPromptInterrupt = () => {
    if (rl.line) {
      rl.write(null, { ctrl: true, name: 'e' }); // cursor to the end, then delete to the start
      rl.write(null, { ctrl: true, name: 'u' });
      armed = false;
    } else if (armed) {
      out.write('\n');
      leave = 0;
      rl.close();
    } else {
      armed = true;
      out.write('\n(to leave, press Ctrl-C again, Ctrl-D or type /exit)\n');
      rl.prompt();
    }
  };
  // SIGINT: Ctrl-C while an answer is written (cooked mode), or `kill -INT` at any time.
  const onSignal = () => {
    if (answering) answering.abort();
    else if (interactive) onPromptInterrupt();
    else {
      leave = 130;
      rl.close();
    }
  };
  rl.on('SIGINT', onPromptInterrupt);
  process.on('SIGINT', onSignal);
  const setRaw = (raw: boolean) => interactive && (stdin as ReadStream).setRawMode(raw);

  try {
    if (interactive) out.write(`${name}: /help for commands; Ctrl-C stops an answer; Ctrl-D or /exit leaves\n`);
    for (;;) {
      if (interactive) {
        setRaw(true);
        rl.prompt();
      }
      const line = await lines.next();
      if (line === undefined) {
        if (interactive && leave === undefined) out.write('\n'); // Ctrl-D leaves the cursor after the prompt
        return leave ?? 0;
      }
      if (interactive) {
        rl.pause();
        setRaw(false);
      }
      const text = line.trim();
      if (!text) continue;
      armed = false;
      if (text.startsWith('/')) {
        const [command] = text.split(/\s/, 1) as [string];
        if (command === '/exit' || command === '/bye') return 0;
        if (command === '/reset' || command === '/clear') {
          conversation.reset();
          if (interactive) out.write('(conversation cleared)\n');
        } else if (command === '/help' || command === '/?') {
          out.write(Object.entries(SLASH_COMMANDS).map(([c, about]) => `  ${c.padEnd(8)}${about}`).join('\n') + '\n');
        } else {
          const near = closest(command.slice(1), Object.keys(SLASH_COMMANDS).map((c) => c.slice(1)));
          console.error(`unknown command '${command}'${near ? `; did you mean '/${near}'?` : ''} (/help lists them)`);
        }
        continue;
      }

      answering = new AbortController();
      let turn: Turn;
      try {
        turn = await conversation.say(text, { signal: answering.signal, onText: (piece) => out.write(piece) });
      } catch (e) {
        console.error(`error: ${(e as Error).message}`);
        continue;
      } finally {
        answering = undefined;
      }
      out.write(interactive ? '\n\n' : '\n');
      if (turn.forgotten) console.error(`(forgot the oldest ${turn.forgotten === 1 ? 'exchange' : `${turn.forgotten} exchanges`}: the conversation outgrew the model's context)`);
      if (verbose) {
        const rate = turn.answerTokens / Math.max(turn.seconds, 1e-9);
        const kept = conversation.exchanges;
        console.error(`[prompt ${turn.promptTokens} tokens, answer ${turn.answerTokens} tokens (${turn.finishReason}), ${rate.toFixed(1)} tokens/s; ${kept} exchange${kept === 1 ? '' : 's'} kept]`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    rl.close();
  }
}

/** readline's lines as a pull queue: lines that arrive while an answer is written wait their turn. */
function lineQueue(rl: readline.Interface): { next(): Promise<string | undefined> } {
  const queued: string[] = [];
  let waiting: ((line: string | undefined) => void) | undefined;
  let closed = false;
  rl.on('line', (line) => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(line);
    } else queued.push(line);
  });
  rl.on('close', () => {
    closed = true;
    waiting?.(undefined);
    waiting = undefined;
  });
  return {
    next: () =>
      new Promise((resolve) => {
        if (queued.length) resolve(queued.shift());
        else if (closed) resolve(undefined);
        else waiting = resolve;
      }),
  };
}
