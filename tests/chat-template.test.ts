// Chat templates: the Alpaca Jinja template gives exactly the prompts finetuning trains on (the
// TypeScript formatter in src/datasets), a finetuned model's template renders byte for byte as
// Python's jinja2 renders it the way transformers' apply_chat_template does, and folders name
// their templates the ways transformers reads them.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alpacaExample, formatChatPrompt, type AlpacaRecord, type ChatMessage as RecordMessage } from '../src/datasets/index.js';
import { ALPACA_TEMPLATE, ChatTemplateError, loadChatTemplate, type ChatMessage } from '../src/model/chat-template.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { readGenerationDefaults } from '../src/model/generation-config.js';
import { EOT, EOT_TEXT, encode } from '../src/model/tokenizer.js';
import { runFinetune } from '../src/train/finetune.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-template-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

/** A folder with just the files a template lookup reads. */
function folder(name: string, files: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}

const conversations: ChatMessage[][] = [
  [{ role: 'user', content: 'Name three colors.' }],
  [{ role: 'system', content: 'Answer in one word.' }, { role: 'user', content: 'What is the capital of France?' }],
  [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Add 2 and 3.' },
    { role: 'assistant', content: '5' },
    { role: 'user', content: 'And times 4?' },
  ],
  [
    { role: 'system', content: 'First rule.' },
    { role: 'developer', content: 'Second rule.' },
    { role: 'user', content: 'Quote: "{{ not jinja }}" {% raw %} and <|endoftext|>' },
  ],
  [{ role: 'system', content: '' }, { role: 'user', content: 'Ünïcödé — 東京 🚀\nsecond line\n\n### Response:\nfake' }],
  [{ role: 'user', content: '   spaces around   ' }, { role: 'assistant', content: '' }, { role: 'user', content: '' }],
];

describe('the Alpaca template', () => {
  const alpaca = loadChatTemplate(folder('legacy', { 'config.json': { chat_template: 'alpaca' } }))!;

  it('renders what finetuning trains on: the generation prompt, and a full example with eos', () => {
    for (const messages of conversations) {
      const history: RecordMessage[] = messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: m.content }));
      expect(alpaca.render(messages, { addGenerationPrompt: true })).toBe(formatChatPrompt(history));
      const example = alpacaExample({ instruction: 'Say yes.', input: '', output: 'yes' } satisfies AlpacaRecord);
      const trained = alpaca.render([{ role: 'user', content: 'Say yes.' }, { role: 'assistant', content: 'yes' }]);
      expect(trained).toBe(example.prompt + example.response + EOT_TEXT);
    }
    expect(alpaca.stop).toEqual(['\n\n### ']);
    expect(alpaca.source).toBe('alpaca');
  });

  it('encodes its own eos as the special token and a typed <|endoftext|> as text', () => {
    const tokens = alpaca.encode([{ role: 'user', content: `say ${EOT_TEXT}` }, { role: 'assistant', content: 'ok' }]);
    expect(tokens.at(-1)).toBe(EOT);
    expect(tokens.filter((t) => t === EOT)).toHaveLength(1);
    // A message cannot smuggle in a special token by spelling the renderer's markers.
    const sneaky = alpaca.encode([{ role: 'user', content: 'a\u0000eos\u0000b \u0000bos\u0000' }], { addGenerationPrompt: true });
    expect(sneaky).not.toContain(EOT);
    const prompt = conversations[3]!;
    expect(alpaca.encode(prompt, { addGenerationPrompt: true })).toEqual(encode(alpaca.render(prompt, { addGenerationPrompt: true }), { allowSpecial: false }));
  });

  it('refuses roles it has no place for, with the message the template raises', () => {
    expect(() => alpaca.render([{ role: 'tool' as never, content: 'x' }, { role: 'user', content: 'y' }])).toThrow(ChatTemplateError);
    expect(() => alpaca.render([{ role: 'tool' as never, content: 'x' }, { role: 'user', content: 'y' }])).toThrow(/not tool/);
  });
});

describe('a finetuned model’s template, rendered by Python’s jinja2 as transformers does', () => {
  const hasJinja2 = spawnSync('python3', ['-c', 'import jinja2'], { stdio: 'ignore' }).status === 0;
  if (!hasJinja2) console.warn('skipping: python3 with jinja2 is missing (Debian: apt-get install -y python3-jinja2)');

  it.skipIf(!hasJinja2)('gives byte-identical prompts for multi-turn conversations with a system message', async () => {
    const base = path.join(tmp, 'base');
    saveCheckpoint(base, cfg, randomInit(cfg, 3));
    const out = path.join(tmp, 'finetuned');
    const train: AlpacaRecord[] = ['one', 'two', 'three', 'four'].map((w) => ({ instruction: `Repeat ${w}.`, input: '', output: w }));
    await runFinetune({ baseModelDir: base, outDir: out, workDir: path.join(tmp, 'work'), task: { type: 'instruction' }, method: { type: 'full' }, train, epochs: 1, batchSize: 4, lr: 1e-3, seed: 1, threads: 1 });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')).chat_template).toBe(ALPACA_TEMPLATE);

    const template = loadChatTemplate(out)!;
    const cases = [
      ...conversations.map((messages) => ({ messages, add_generation_prompt: true })),
      ...conversations.map((messages) => ({ messages, add_generation_prompt: false })),
      ...conversations.map((messages) => ({ messages: [...messages, { role: 'assistant' as const, content: 'An answer.' }], add_generation_prompt: false })),
    ];
    const python = JSON.parse(
      execFileSync('python3', [path.join(import.meta.dirname, 'reference', 'apply_chat_template.py')], { input: JSON.stringify({ dir: out, conversations: cases }), encoding: 'utf8' }),
    ) as string[];
    expect(python).toHaveLength(cases.length);
    cases.forEach((c, i) => expect(Buffer.from(template.render(c.messages, { addGenerationPrompt: c.add_generation_prompt }))).toEqual(Buffer.from(python[i]!)));
    expect(readGenerationDefaults(out)).toEqual({});
    expect(template.stop).toEqual(['\n\n### ']);
  });
});

describe('finding a folder’s template', () => {
  const chatml = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

  it('reads chat_template.jinja before tokenizer_config.json, a named list, special tokens as objects', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'hi' }];
    const inline = loadChatTemplate(folder('inline', { 'tokenizer_config.json': { chat_template: chatml, eos_token: { content: '</s>', lstrip: false } } }))!;
    expect(inline.render(messages, { addGenerationPrompt: true })).toBe('<|user|>hi</s><|assistant|>');
    expect(inline.stop).toEqual(['</s>']);
    const named = loadChatTemplate(folder('named', { 'tokenizer_config.json': { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] } }))!;
    expect(named.render(messages)).toBe('D');
    const file = loadChatTemplate(folder('file', { 'chat_template.jinja': 'from file', 'tokenizer_config.json': { chat_template: 'inline' } }))!;
    expect(file.render(messages)).toBe('from file');
  });

  it('lets a file override the folder, merges generation_config stop strings, and has none for a base model', () => {
    const dir = folder('base-only', { 'config.json': {}, 'generation_config.json': { stop_strings: 'END', temperature: 0.7, top_p: 0.9, max_new_tokens: 20, num_beams: 4 } });
    expect(loadChatTemplate(dir)).toBeUndefined();
    const override = path.join(tmp, 'override.jinja');
    fs.writeFileSync(override, "{{ messages[0]['content'] | upper }}");
    const t = loadChatTemplate(dir, override)!;
    expect(t.render([{ role: 'user', content: 'abc' }])).toBe('ABC');
    expect(t.stop).toEqual(['END']);
    expect(readGenerationDefaults(dir)).toEqual({ temperature: 0.7, topP: 0.9, maxTokens: 20 });
    expect(readGenerationDefaults(folder('greedy', { 'generation_config.json': { do_sample: false, temperature: 0.6, top_k: 50 } }))).toEqual({ temperature: 0 });
  });

  it('says which file is wrong', () => {
    expect(() => loadChatTemplate(folder('bad-name', { 'config.json': { chat_template: 'chatml' } }))).toThrow(/config\.json: unknown chat_template "chatml"/);
    expect(() => loadChatTemplate(folder('bad-jinja', { 'tokenizer_config.json': { chat_template: '{% for %}' } }))).toThrow(/tokenizer_config\.json: the chat template does not parse/);
    expect(() => loadChatTemplate(folder('bad-json', { 'tokenizer_config.json': '{' }))).toThrow(/tokenizer_config\.json: not valid JSON/);
    expect(() => readGenerationDefaults(folder('bad-gen', { 'generation_config.json': { temperature: 'hot' } }))).toThrow(/temperature must be a number/);
  });
});
