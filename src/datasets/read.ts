// Step one of parsing: bytes → JSON values, each with the line it starts on. Two layouts are
// accepted: JSONL (one object per line; what OpenAI's fine-tuning API takes) and a single JSON
// array (what the book's instruction-data.json is). Nothing here knows about record formats.
import { DatasetError } from './errors.js';

export interface RawItem {
  value: unknown;
  /** 1-based line where the item starts. */
  line: number;
  /** 0-based index in the top-level array (JSON-array files only). */
  index?: number;
}

export interface RawFile {
  container: 'jsonl' | 'json_array';
  items: RawItem[];
}

export function decodeText(content: string | Uint8Array, filename?: string): string {
  let text: string;
  if (typeof content === 'string') text = content;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    } catch {
      // A bad byte would otherwise become U+FFFD silently and train the model on garbage.
      throw new DatasetError('file is not valid UTF-8', { line: firstBadUtf8Line(content), filename });
    }
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // editors on Windows add a BOM
}

/**
 * `.jsonl` files are always read line by line. Otherwise the first non-blank character decides:
 * '[' → one JSON array, anything else → JSONL (so a `.json` file holding JSONL also works).
 */
export function readRawFile(text: string, filename?: string): RawFile {
  const first = text.match(/\S/)?.[0];
  if (first === undefined) throw new DatasetError('empty file: no records', { filename });
  const forcedJsonl = filename !== undefined && /\.jsonl$/i.test(filename);
  const file = !forcedJsonl && first === '[' ? readJsonArray(text, filename) : readJsonl(text, filename);
  if (file.items.length === 0) throw new DatasetError('empty file: no records', { filename });
  return file;
}

function readJsonl(text: string, filename?: string): RawFile {
  const items: RawItem[] = [];
  text.split('\n').forEach((raw, i) => {
    if (!/\S/.test(raw)) return; // blank lines (e.g. the trailing newline) carry no record
    try {
      items.push({ value: JSON.parse(raw), line: i + 1 }); // JSON whitespace includes the \r of CRLF
    } catch (e) {
      throw new DatasetError(`malformed JSON (${jsonMessage(e)})`, { line: i + 1, filename });
    }
  });
  return { container: 'jsonl', items };
}

function readJsonArray(text: string, filename?: string): RawFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new DatasetError(`malformed JSON (${jsonMessage(e)})`, { line: errorLine(text, e), filename });
  }
  if (!Array.isArray(parsed)) throw new DatasetError('expected a JSON array of records', { line: 1, filename });
  const starts = arrayElementOffsets(text);
  const lineOf = lineFinder(text);
  return {
    container: 'json_array',
    items: parsed.map((value: unknown, index) => ({ value, index, line: lineOf(starts[index] ?? 0) })),
  };
}

/**
 * Character offsets where each element of the top-level array starts. Only called on text that
 * JSON.parse accepted, so a small scanner (strings, escapes, nesting) is enough.
 */
function arrayElementOffsets(text: string): number[] {
  const out: number[] = [];
  let depth = 0;
  let inString = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') continue;
    if (depth === 1 && expectElement && c !== ']') {
      out.push(i);
      expectElement = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElement = true;
  }
  return out;
}

/** offset → 1-based line, by binary search over newline positions. */
function lineFinder(text: string): (offset: number) => number {
  const newlines: number[] = [];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) newlines.push(i);
  return (offset) => {
    let lo = 0;
    let hi = newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (newlines[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

function jsonMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** V8 says "… at position N" (Node 20) or "(line L column C)" (newer); end of input → last line. */
function errorLine(text: string, e: unknown): number | undefined {
  const msg = jsonMessage(e);
  const lineCol = msg.match(/\(line (\d+) column \d+\)/);
  if (lineCol) return Number(lineCol[1]);
  const pos = msg.match(/at position (\d+)/);
  if (pos) return lineFinder(text)(Number(pos[1]));
  if (/end of JSON input/i.test(msg)) return lineFinder(text)(text.trimEnd().length);
  return undefined;
}

function firstBadUtf8Line(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  let line = 1;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        decoder.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      start = i + 1;
      line++;
    }
  }
  return line;
}
