// A model folder's chat template: chat messages → the prompt text the model was trained on.
//
// Found as transformers finds it: `chat_template.jinja` in the folder, else `chat_template` in
// tokenizer_config.json (a string, or a list of named templates of which 'default' is used).
// Folders written before templates were Jinja carry `"chat_template": "alpaca"` in config.json:
// that name means the Alpaca template below. Rendering uses @huggingface/jinja (the renderer of
// transformers.js) with the variables transformers passes: messages, add_generation_prompt,
// bos_token, eos_token (raise_exception and strftime_now are the renderer's own).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Template } from '@huggingface/jinja';
import { writeFileAtomic } from './durable.js';
import { readJsonIfExists } from './json-file.js';
import { encode, EOT, EOT_TEXT } from './tokenizer.js';

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

export interface ChatTemplate {
  /** Where the template came from (a file path, or 'alpaca' for the legacy name). */
  source: string;
  /** The prompt text; with addGenerationPrompt it ends where the assistant's answer begins. */
  render(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
  /** The rendered prompt as token ids: the template's own special tokens are special, text in messages never is. */
  encode(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): number[];
  /** Strings that end the assistant's turn (besides <|endoftext|>, which always does). */
  stop: string[];
}

/** A message the template refuses (raise_exception), or a template that does not parse or run. */
export class ChatTemplateError extends Error {}

export const ALPACA_TEMPLATE = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'alpaca.jinja'), 'utf8');
/** The files beside config.json that shape how a model is prompted and sampled (copied with it). */
export const PROMPT_FILES = ['tokenizer_config.json', 'chat_template.jinja', 'generation_config.json'];

/** What ends an Alpaca answer besides eos: the model starting a new "### " section. */
export const ALPACA_STOPS = ['\n\n### '];

/** Special-token strings transformers fills in from tokenizer_config.json. */
interface SpecialTokens {
  bos: string;
  eos: string;
}

/** The folder's template, `file` instead when given; undefined when the model has none (a base model). */
export function loadChatTemplate(dir: string, file?: string): ChatTemplate | undefined {
  const tokenizerConfig = readJsonIfExists(path.join(dir, 'tokenizer_config.json'));
  const special: SpecialTokens = { bos: tokenText(tokenizerConfig?.bos_token) ?? EOT_TEXT, eos: tokenText(tokenizerConfig?.eos_token) ?? EOT_TEXT };
  const stops = generationStops(dir);
  if (file) return compile(fs.readFileSync(file, 'utf8'), file, special, stops);
  const jinjaFile = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinjaFile)) return compile(fs.readFileSync(jinjaFile, 'utf8'), jinjaFile, special, stops);
  const inline = namedTemplate(tokenizerConfig?.chat_template);
  if (inline !== undefined) return compile(inline, path.join(dir, 'tokenizer_config.json'), special, stops);
  const legacy = readJsonIfExists(path.join(dir, 'config.json'))?.chat_template;
  if (legacy === 'alpaca') return compile(ALPACA_TEMPLATE, 'alpaca', special, [...new Set([...ALPACA_STOPS, ...stops])]);
  if (legacy !== undefined) throw new ChatTemplateError(`${path.join(dir, 'config.json')}: unknown chat_template ${JSON.stringify(legacy)} (only 'alpaca' is a name; Jinja templates go in tokenizer_config.json)`);
  return undefined;
}

/**
 * tokenizer_config.json with the Alpaca template, and generation_config.json with its stop string,
 * as transformers saves them, so `apply_chat_template` and `generate` there behave as we do here.
 */
export function writeAlpacaChatFiles(dir: string, contextLength: number): void {
  const tokenizerConfig = {
    add_prefix_space: false,
    bos_token: EOT_TEXT,
    eos_token: EOT_TEXT,
    unk_token: EOT_TEXT,
    model_max_length: contextLength,
    clean_up_tokenization_spaces: false,
    tokenizer_class: 'GPT2Tokenizer',
    chat_template: ALPACA_TEMPLATE,
  };
  writeFileAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  // Added to what a generation_config.json there already says (convert copies the source's first).
  const generationFile = path.join(dir, 'generation_config.json');
  const generationConfig = { bos_token_id: EOT, eos_token_id: EOT, ...readJsonIfExists(generationFile), stop_strings: ALPACA_STOPS };
  writeFileAtomic(generationFile, JSON.stringify(generationConfig, null, 2) + '\n');
}

/** Whether the folder's tokenizer_config.json holds the Alpaca template that writeAlpacaChatFiles writes. */
export function hasAlpacaTemplate(dir: string): boolean {
  return readJsonIfExists(path.join(dir, 'tokenizer_config.json'))?.chat_template === ALPACA_TEMPLATE;
}

function compile(source: string, where: string, special: SpecialTokens, stop: string[]): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new ChatTemplateError(`${where}: the chat template does not parse: ${(e as Error).message}`);
  }
  const run = (messages: ChatMessage[], addGenerationPrompt: boolean, tokens: SpecialTokens): string => {
    try {
      return template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: tokens.bos,
        eos_token: tokens.eos,
      });
    } catch (e) {
      // The renderer's raise_exception throws a plain Error with the template's message.
      throw new ChatTemplateError((e as Error).message);
    }
  };
  const eosStops = special.eos === EOT_TEXT ? [] : [special.eos];
  return {
    source: where,
    stop: [...new Set([...stop, ...eosStops])],
    render: (messages, opts) => run(messages, opts?.addGenerationPrompt ?? false, special),
    encode(messages, opts) {
      // Render with markers in place of the special tokens, so that only the template's own
      // tokens become special ids and a user who types '<|endoftext|>' sends plain text; the
      // markers are random so that no message can spell one.
      const nonce = randomBytes(12).toString('hex');
      const marks = { bos: `\u0000bos-${nonce}\u0000`, eos: `\u0000eos-${nonce}\u0000` };
      const text = run(messages, opts?.addGenerationPrompt ?? false, marks);
      const out: number[] = [];
      for (const piece of text.split(new RegExp(`(${marks.bos}|${marks.eos})`))) {
        if (piece === marks.bos) out.push(...encode(special.bos, { allowSpecial: true }));
        else if (piece === marks.eos) out.push(...encode(special.eos, { allowSpecial: true }));
        else if (piece) out.push(...encode(piece, { allowSpecial: false }));
      }
      return out;
    },
  };
}

/** generation_config.json's stop_strings (transformers' name), if any. */
function generationStops(dir: string): string[] {
  const s = readJsonIfExists(path.join(dir, 'generation_config.json'))?.stop_strings;
  if (typeof s === 'string') return [s];
  return Array.isArray(s) ? s.filter((x): x is string => typeof x === 'string') : [];
}

function namedTemplate(t: unknown): string | undefined {
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const chosen = named.find((x) => x.name === 'default') ?? named[0];
    return typeof chosen?.template === 'string' ? chosen.template : undefined;
  }
  return undefined;
}

/** A special token as tokenizer_config.json writes it: a string or an AddedToken object. */
function tokenText(t: unknown): string | undefined {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string') return (t as { content: string }).content;
  return undefined;
}
