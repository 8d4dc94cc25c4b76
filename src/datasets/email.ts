// cleanEmail: a raw RFC 822 message (as in the SpamAssassin corpus: every header, MIME parts,
// encodings) → the text a classifier should see: the Subject, then the readable body.
//
// Headers are dropped because they identify the corpus rather than the message (the spam and
// ham folders were collected from different servers and dates, so Received:/Date:/Message-ID
// lines would let a model learn "which mailbox" instead of "is this spam").
import { htmlToText, looksLikeHtml } from './html.js';
import { contentType, decodeBody, decodeEncodedWords, parseEntity, splitMultipart, type MimeEntity } from './mime.js';

const MAX_DEPTH = 8; // nesting limit: a crafted message must not recurse forever

/** "Subject text\nbody text", each with whitespace collapsed; either part may be absent. */
export function cleanEmail(raw: string): string {
  const top = parseEntity(raw, true);
  const subject = collapse(decodeEncodedWords(top.headers.get('subject') ?? ''));
  const body = collapse(entityText(top, 0));
  return [subject, body].filter((s) => s).join('\n');
}

function entityText(entity: MimeEntity, depth: number): string {
  if (depth > MAX_DEPTH) return '';
  const { mime, params } = contentType(entity);
  // Attachments are files, not message text, whatever their type (and mostly base64).
  if (/^\s*attachment\b/i.test(entity.headers.get('content-disposition') ?? '')) return '';

  if (mime.startsWith('multipart/')) {
    const boundary = params.get('boundary');
    if (!boundary) return plainOrHtml(entity.body); // broken header: best effort
    const parts = splitMultipart(entity.body, boundary).map((p) => parseEntity(p));
    if (mime === 'multipart/alternative') {
      // The same message in several forms: take one, preferring plain text over HTML.
      const plain = parts.find((p) => contentType(p).mime === 'text/plain');
      const texts = (plain ? [plain] : parts).map((p) => entityText(p, depth + 1));
      return texts.find((t) => t.trim()) ?? '';
    }
    return parts.map((p) => entityText(p, depth + 1)).join('\n'); // mixed, related, …: all text parts
  }
  if (mime === 'message/rfc822') return entityText(parseEntity(entity.body), depth + 1); // a forwarded message's body
  if (mime === 'text/html') return htmlToText(decodeBody(entity, params.get('charset')));
  if (mime.startsWith('text/')) return plainOrHtml(decodeBody(entity, params.get('charset')));
  return ''; // images, applications, …: not text
}

/** Plain text, unless it is really HTML without the content type saying so. */
function plainOrHtml(text: string): string {
  return looksLikeHtml(text) ? htmlToText(text) : text;
}

function collapse(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}
