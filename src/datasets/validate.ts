// Step two of parsing: decide each record's format from its keys, check that the whole file uses
// one format, and validate every record into its normalised shape. Every error names the
// record's line (and array index) and the offending field.
import { DatasetError } from './errors.js';
import type { RawItem } from './read.js';
import type { AlpacaRecord, ChatMessage, ChatRecord, ClassificationRecord, DatasetFormat, PromptCompletionRecord } from './records.js';
import { ROLES } from './records.js';

type Obj = Record<string, unknown>;

/** Where the record being validated came from; turns (reason, field) into a located DatasetError. */
export class RecordContext {
  constructor(
    readonly item: RawItem,
    readonly filename?: string,
  ) {}

  error(reason: string, field?: string): DatasetError {
    return new DatasetError(reason, { line: this.item.line, index: this.item.index, field, filename: this.filename });
  }
}

// The key that identifies each format, in priority order. A record is classified by the first
// rule that has any of its keys, so e.g. a chat record with a stray 'text' key is still chat.
const SIGNATURES: readonly { format: DatasetFormat; keys: readonly string[] }[] = [
  { format: 'chat', keys: ['messages'] },
  { format: 'prompt_completion', keys: ['prompt', 'completion'] },
  { format: 'alpaca', keys: ['instruction', 'output', 'input'] },
  { format: 'classification', keys: ['text', 'label'] },
];

export function asObject(ctx: RecordContext): Obj {
  const v = ctx.item.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw ctx.error(`expected a JSON object, got ${typeName(v)}`);
  return v as Obj;
}

/** The record's format and the key that gave it away (used to name the field in mixed-format errors). */
export function detectFormat(obj: Obj, ctx: RecordContext): { format: DatasetFormat; key: string } {
  for (const { format, keys } of SIGNATURES) {
    const key = keys.find((k) => Object.hasOwn(obj, k));
    if (key !== undefined) return { format, key };
  }
  throw ctx.error(
    "unrecognised record: expected 'messages' (chat), 'prompt'/'completion', " +
      "'instruction'/'input'/'output' (Alpaca) or 'text'/'label' (classification)",
  );
}

export function validateChat(obj: Obj, ctx: RecordContext): ChatRecord {
  const raw = obj['messages'];
  if (!Array.isArray(raw)) throw ctx.error(`field 'messages' must be an array, got ${typeName(raw)}`, 'messages');
  if (raw.length === 0) throw ctx.error("field 'messages' must not be empty", 'messages');
  const messages = raw.map((m: unknown, i): ChatMessage => {
    const at = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw ctx.error(`${at} must be an object, got ${typeName(m)}`, at);
    const msg = m as Obj;
    if (!Object.hasOwn(msg, 'role')) throw ctx.error(`missing field '${at}.role'`, `${at}.role`);
    const role = msg['role'];
    if (typeof role !== 'string') throw ctx.error(`field '${at}.role' must be a string, got ${typeName(role)}`, `${at}.role`);
    if (!(ROLES as readonly string[]).includes(role)) {
      throw ctx.error(`unknown role '${role}' in '${at}.role' (expected system, user or assistant)`, `${at}.role`);
    }
    const content = stringField(msg, 'content', ctx, `${at}.content`);
    const out: ChatMessage = { role: role as ChatMessage['role'], content };
    if (Object.hasOwn(msg, 'weight')) {
      const weight = msg['weight'];
      if (role !== 'assistant') throw ctx.error(`field '${at}.weight' is only allowed on assistant messages`, `${at}.weight`);
      if (weight !== 0 && weight !== 1) throw ctx.error(`field '${at}.weight' must be 0 or 1, got ${JSON.stringify(weight)}`, `${at}.weight`);
      out.weight = weight;
    }
    return out;
  });
  // Each trained assistant turn becomes one instruction example (see chat.ts); it needs a target
  // and something before it to respond to.
  const trained = messages.map((m, i) => (m.role === 'assistant' && m.weight !== 0 ? i : -1)).filter((i) => i >= 0);
  if (trained.length === 0) throw ctx.error('no assistant message to train on (every assistant message is missing or has weight 0)', 'messages');
  const first = trained[0]!;
  if (!messages.slice(0, first).some((m) => m.role !== 'assistant')) {
    throw ctx.error(`messages[${first}] is an assistant turn with no system or user message before it`, `messages[${first}]`);
  }
  return { messages };
}

export function validatePromptCompletion(obj: Obj, ctx: RecordContext): PromptCompletionRecord {
  return { prompt: stringField(obj, 'prompt', ctx), completion: stringField(obj, 'completion', ctx) };
}

export function validateAlpaca(obj: Obj, ctx: RecordContext): AlpacaRecord {
  const instruction = stringField(obj, 'instruction', ctx);
  // 'input' is optional; null is accepted as "no input" because table exports (pandas) write it.
  const input = obj['input'] === undefined || obj['input'] === null ? '' : stringField(obj, 'input', ctx);
  return { instruction, input, output: stringField(obj, 'output', ctx) };
}

/**
 * `labelType` is fixed by the file's first record; every later record must match it, so a file
 * cannot mix "1" and 1 (which would silently become two classes).
 */
export function validateClassification(
  obj: Obj,
  ctx: RecordContext,
  labelType: { kind?: 'string' | 'integer'; line?: number },
): ClassificationRecord {
  const text = stringField(obj, 'text', ctx);
  if (text.length === 0) throw ctx.error("field 'text' must not be empty", 'text');
  if (!Object.hasOwn(obj, 'label')) throw ctx.error("missing field 'label'", 'label');
  const label = obj['label'];
  let kind: 'string' | 'integer';
  if (typeof label === 'string') {
    if (label.length === 0) throw ctx.error("field 'label' must not be an empty string", 'label');
    kind = 'string';
  } else if (typeof label === 'number' && Number.isSafeInteger(label)) kind = 'integer';
  else throw ctx.error(`field 'label' must be a string or an integer, got ${typeName(label)}`, 'label');
  if (labelType.kind === undefined) {
    labelType.kind = kind;
    labelType.line = ctx.item.line;
  } else if (labelType.kind !== kind) {
    throw ctx.error(
      `field 'label' is ${kind === 'string' ? 'a string' : 'an integer'} but the first label (line ${labelType.line}) is ` +
        `${labelType.kind === 'string' ? 'a string' : 'an integer'}; use one label type per file`,
      'label',
    );
  }
  return { text, label };
}

function stringField(obj: Obj, key: string, ctx: RecordContext, field = key): string {
  if (!Object.hasOwn(obj, key)) throw ctx.error(`missing field '${field}'`, field);
  const v = obj[key];
  if (typeof v !== 'string') throw ctx.error(`field '${field}' must be a string, got ${typeName(v)}`, field);
  return v;
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? `the number ${v}` : `the non-integer number ${v}`;
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}
