// `scratchgpt chat` as users run it: lines piped through stdin (child process), and typed into a
// pseudo-terminal (python3's pty module relays between the test's pipes and the terminal), on tiny
// random models whose tokenizer_config.json carries a small Jinja chat template. Every wait is on
// output the chat prints, never on a clock.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChatTemplate, type ChatMessage } from '../src/model/chat-template.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { generate } from '../src/model/generation.js';
import { ModelSession } from '../src/model/session.js';

const exec = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
const TEMPLATE = '{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-chat-'));
const chatModel = path.join(tmp, 'chat'); // context 2048: room for a 1000-token answer (long enough to interrupt) after a stopped one
const smallModel = path.join(tmp, 'small'); // context 64: a second exchange no longer fits
const baseModel = path.join(tmp, 'base'); // no chat template
const terseModel = path.join(tmp, 'terse'); // context 64, and generation_config.json stops answers at the first space

function writeModel(dir: string, contextLength: number, template: boolean): void {
  const cfg: GPTConfig = { vocabSize: 50257, contextLength, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
  const params = randomInit(cfg, 11);
  for (const t of params.values()) t.data.forEach((x, i) => (t.data[i] = x * 40)); // peaked distributions: no early <|endoftext|>
  saveCheckpoint(dir, cfg, params);
  if (template) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', chat_template: TEMPLATE }));
}

beforeAll(() => {
  writeModel(chatModel, 2048, true);
  writeModel(smallModel, 64, true);
  writeModel(baseModel, 64, false);
  writeModel(terseModel, 64, true);
  fs.writeFileSync(path.join(terseModel, 'generation_config.json'), JSON.stringify({ stop_strings: [' '] }));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The chat's --verbose lines on stderr. */
function turns(stderr: string): { prompt: number; answer: number; finish: string; kept: number }[] {
  return [...stderr.matchAll(/\[prompt (\d+) tokens, answer (\d+) tokens \((\w+)\), [\d.]+ tokens\/s; (\d+) exchanges? kept\]/g)].map((m) => ({
    prompt: Number(m[1]),
    answer: Number(m[2]),
    finish: m[3]!,
    kept: Number(m[4]),
  }));
}

/** A running chat whose output (stdout and stderr together) can be awaited. */
class Session {
  output = '';
  private readonly waiters: (() => void)[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    const take = (d: Buffer) => {
      this.output += d.toString('utf8');
      this.waiters.splice(0).forEach((w) => w());
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    this.exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  }

  /** Resolves with the output's index once `test` holds for the output from `from` on. */
  async until(test: (text: string) => boolean, from = 0): Promise<number> {
    while (!test(this.output.slice(from))) {
      if (this.child.exitCode !== null) throw new Error(`the chat exited (${this.child.exitCode}) while waiting; output:\n${this.output}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.output.length;
  }

  /** Waits for `text` to appear after index `from`; returns the index just past it. */
  async see(text: string, from = 0): Promise<number> {
    await this.until((s) => s.includes(text), from);
    return this.output.indexOf(text, from) + text.length;
  }

  type(keys: string): void {
    this.child.stdin.write(keys);
  }
}

// A pseudo-terminal for the chat: the child gets it as its controlling terminal (so Ctrl-C, typed
// as \x03, becomes SIGINT), the test reads and writes it through this relay's stdout and stdin.
const PTY_RELAY = `
import fcntl, os, pty, select, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))
watch = [fd, 0]
while True:
    ready, _, _ = select.select(watch, [], [])
    if fd in ready:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 4096)
        if data:
            os.write(fd, data)
        else:
            watch.remove(0)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
`;

function ptyChat(...args: string[]): Session {
  return new Session(spawn('python3', ['-c', PTY_RELAY, process.execPath, BIN, 'chat', '--threads', '1', ...args]));
}

async function piped(input: string, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const child = spawn(process.execPath, [BIN, 'chat', '--threads', '1', ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { stdout, stderr, code: code ?? -1 };
}

/** What the model answers to `messages` in-process, greedily: the reference for the CLI's output. */
async function reference(dir: string, messages: ChatMessage[], maxTokens: number): Promise<{ prompt: number; text: string }> {
  const template = loadChatTemplate(dir)!;
  const prompt = template.encode(messages, { addGenerationPrompt: true });
  const model = await ModelSession.load(dir);
  let text = '';
  for await (const s of generate(model, prompt, { maxTokens, temperature: 0, stop: template.stop })) text += s.text;
  await model.close();
  return { prompt: prompt.length, text };
}

describe('scratchgpt chat, stdin not a terminal', () => {
  it('answers line by line with the conversation so far; /reset forgets it, /exit ends the input', async () => {
    const r = await piped('hello there\nhow are you\n\n/reset\nhello there\n/exit\nnot read\n', '--model', chatModel, '--max-tokens', '8', '--temperature', '0', '--verbose');
    expect(r.code, r.stderr).toBe(0);
    const first = await reference(chatModel, [{ role: 'user', content: 'hello there' }], 8);
    const second = await reference(
      chatModel,
      [
        { role: 'user', content: 'hello there' },
        { role: 'assistant', content: first.text },
        { role: 'user', content: 'how are you' },
      ],
      8,
    );
    expect(first.text).not.toBe('');
    // answers only: no prompt, no banner, no escape codes; after /reset the first answer again
    expect(r.stdout).toBe(`${first.text}\n${second.text}\n${first.text}\n`);
    expect(turns(r.stderr)).toEqual([
      { prompt: first.prompt, answer: 8, finish: 'length', kept: 1 },
      { prompt: second.prompt, answer: 8, finish: 'length', kept: 2 },
      { prompt: first.prompt, answer: 8, finish: 'length', kept: 1 },
    ]);
  });

  it('--system opens the prompt, and survives /reset', async () => {
    const r = await piped('hi\n/reset\nhi\n', '--model', chatModel, '--max-tokens', '4', '--temperature', '0', '--system', 'You answer briefly.', '--verbose');
    expect(r.code, r.stderr).toBe(0);
    const withSystem = await reference(
      chatModel,
      [
        { role: 'system', content: 'You answer briefly.' },
        { role: 'user', content: 'hi' },
      ],
      4,
    );
    expect(turns(r.stderr).map((t) => t.prompt)).toEqual([withSystem.prompt, withSystem.prompt]);
    expect(r.stdout).toBe(`${withSystem.text}\n${withSystem.text}\n`);
  });

  it('forgets the oldest exchange when the conversation outgrows the context', async () => {
    // 64-token context, 30-token answers: the second prompt cannot keep the first exchange.
    const r = await piped('hello there\nand then\n', '--model', smallModel, '--max-tokens', '30', '--temperature', '0', '--verbose');
    expect(r.code, r.stderr).toBe(0);
    const alone = await reference(smallModel, [{ role: 'user', content: 'and then' }], 30);
    expect(r.stderr).toContain("(forgot the oldest exchange: the conversation outgrew the model's context)");
    expect(turns(r.stderr)[1]).toEqual({ prompt: alone.prompt, answer: 30, finish: 'length', kept: 1 });
  });

  it('without --max-tokens, short answers leave the conversation whole', async () => {
    // An answer may run to the end of the context, but only a quarter of it (16 tokens here) is
    // kept free for one: two short exchanges fit in 64 tokens.
    const r = await piped('hello there\nand then\n', '--model', terseModel, '--temperature', '0', '--verbose');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('(forgot');
    const t = turns(r.stderr);
    expect(t.map((x) => [x.finish, x.kept])).toEqual([
      ['stop', 1],
      ['stop', 2],
    ]);
    expect(t[1]!.prompt).toBeGreaterThan(t[0]!.prompt + 5);
  });

  it('SIGINT stops the answer being written, and the next line is answered', async () => {
    const s = new Session(spawn(process.execPath, [BIN, 'chat', '--threads', '1', '--model', chatModel, '--max-tokens', '1000', '--seed', '5', '--verbose']));
    s.type('hello there\n');
    await s.until((out) => out.length >= 20); // the answer is streaming
    s.child.kill('SIGINT');
    let at = await s.see(' kept]\n'); // the end of the first answer's line
    s.type('again\n');
    await s.until((out) => out.length >= 20, at); // nothing but the answer is printed before it ends
    s.child.kill('SIGINT');
    at = await s.see('(interrupted)', at);
    s.child.stdin.end();
    expect(await s.exited).toBe(0);
    const t = turns(s.output);
    expect(t.map((x) => x.finish)).toEqual(['interrupted', 'interrupted']);
    expect(t[0]!.answer).toBeLessThan(1000);
    expect(t[0]!.kept).toBe(1); // the stopped answer stays in the conversation…
    expect(t[1]!.prompt).toBeGreaterThan(t[0]!.prompt); // …and in the next prompt
    expect(s.output).not.toContain('(forgot');
  });

  it('refuses a base model in one line that names a chat model, and bad options', async () => {
    const r = await piped('hi\n', '--model', baseModel);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^scratchgpt chat: base is a base model without a chat template: chat with a chat model \(--model weights\/scratchgpt-brown-instruct/);
    expect((await piped('', '--model', chatModel, '--top-p', '2')).stderr).toMatch(/top_p: must be in \[0, 1\], got 2/);
    const typo = await piped('', '--model', chatModel, '--sytem', 'x');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe("scratchgpt: unknown option '--sytem' for 'chat'; did you mean '--system'? (scratchgpt chat --help)\n");
  });

  it('--chat-template FILE gives a base model a template', async () => {
    const file = path.join(tmp, 'template.jinja');
    fs.writeFileSync(file, TEMPLATE);
    const r = await piped('hi\n', '--model', baseModel, '--chat-template', file, '--max-tokens', '3', '--temperature', '0', '--verbose');
    expect(r.code, r.stderr).toBe(0);
    expect(turns(r.stderr)).toHaveLength(1);
  });
});

describe('scratchgpt chat in a terminal', () => {
  it('prompts, streams, Ctrl-C stops the answer and the prompt comes back, /reset empties the history, /exit leaves', async () => {
    const s = ptyChat('--model', chatModel, '--max-tokens', '1000', '--seed', '7', '--verbose');
    let at = await s.see('>>> ');
    expect(s.output).toContain('chat: /help for commands');

    s.type('hello there\r');
    at = await s.see('\n', await s.see('hello there', at)); // readline's echo up to the newline, then the answer
    await s.until((out) => out.length >= 20, at);
    s.type('\x03');
    at = await s.see(' kept]', at);
    at = await s.see('>>> ', at);
    const [stopped] = turns(s.output);
    expect(stopped!.finish).toBe('interrupted');
    expect(stopped!.answer).toBeLessThan(1000);
    expect(stopped!.kept).toBe(1);

    s.type('/reset\r');
    at = await s.see('(conversation cleared)', at);
    at = await s.see('>>> ', at);
    s.type('hello there\r');
    at = await s.see('\n', await s.see('hello there', at));
    await s.until((out) => out.length >= 20, at);
    s.type('\x03');
    at = await s.see(' kept]', at);
    at = await s.see('>>> ', at);
    const again = turns(s.output)[1]!;
    expect(again.prompt).toBe(stopped!.prompt); // the history was empty again: same prompt as the first
    expect(s.output).not.toContain('(forgot'); // (not emptied by outgrowing the context)
    expect(again.finish).toBe('interrupted');

    s.type('/nope\r');
    at = await s.see("unknown command '/nope'", at);
    at = await s.see('>>> ', at);
    s.type('/exit\r');
    expect(await s.exited).toBe(0);
    expect(s.output.slice(at)).not.toContain('>>> ');
  });

  it('Ctrl-C at the prompt clears the line, twice on an empty line leaves; Ctrl-D leaves', async () => {
    const s = ptyChat('--model', smallModel, '--max-tokens', '2', '--verbose');
    let at = await s.see('>>> ');
    s.type('half a question');
    at = await s.see('half a question', at);
    s.type('\x03'); // clears the typed text: only 'hi' is sent
    s.type('hi\r');
    at = await s.see(' kept]', at);
    at = await s.see('>>> ', at);
    expect(turns(s.output).map((t) => t.prompt)).toEqual([(await reference(smallModel, [{ role: 'user', content: 'hi' }], 0)).prompt]);
    s.type('\x03');
    at = await s.see('(to leave, press Ctrl-C again, Ctrl-D or type /exit)', at);
    s.type('\x03');
    expect(await s.exited).toBe(0);

    const d = ptyChat('--model', smallModel, '--max-tokens', '2');
    await d.see('>>> ');
    d.type('\x04');
    expect(await d.exited).toBe(0);
  });
});

describe('scratchgpt chat --help', () => {
  it('documents the keys and the piped mode', async () => {
    const { stdout } = await exec(process.execPath, [BIN, 'chat', '--help']);
    expect(stdout).toMatch(/^usage: scratchgpt chat \[--model DIR\]/);
    for (const s of ['/reset', '/exit', 'Ctrl-C stops the answer', 'second Ctrl-C', 'Without a terminal on stdin']) expect(stdout).toContain(s);
  });
});
