// Just enough of MIME (RFC 2045–2047) to get the readable text out of a raw email: header
// parsing with unfolding, content types and their parameters, multipart splitting, base64 and
// quoted-printable bodies, charsets, and encoded words ("=?utf-8?B?…?=") in the Subject.
// Spam deliberately uses every one of these, so skipping any would leave encoded gibberish.

export interface MimeEntity {
  /** Lower-cased header name → unfolded value, first occurrence wins. */
  headers: Map<string, string>;
  body: string;
}

export interface ContentType {
  /** Lower-cased "type/subtype"; text/plain when the header is missing (RFC 2045 default). */
  mime: string;
  /** Lower-cased parameter names → values with quotes removed. */
  params: Map<string, string>;
}

const HEADER_LINE = /^[!-9;-~]+:/; // field name = printable ASCII except ':' (RFC 5322)

/** Headers end at the first blank line; a line that is not a header also ends them (robustness). */
export function parseEntity(raw: string, topLevel = false): MimeEntity {
  const lines = raw.split(/\r?\n/);
  let i = 0;
  // A whole message may start with an mbox separator line ("From user@host date"), not a header.
  if (topLevel && lines[0]?.startsWith('From ')) i = 1;
  const headers = new Map<string, string>();
  let name: string | undefined;
  let value = '';
  const flush = (): void => {
    if (name !== undefined && !headers.has(name)) headers.set(name, value.trim());
    name = undefined;
  };
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') {
      i++; // the blank separator line belongs to neither part
      break;
    }
    if (/^[ \t]/.test(line) && name !== undefined) value += ' ' + line.trim(); // folded continuation
    else if (HEADER_LINE.test(line)) {
      flush();
      const colon = line.indexOf(':');
      name = line.slice(0, colon).trim().toLowerCase();
      value = line.slice(colon + 1);
    } else break; // not a header: the body starts here
  }
  flush();
  return { headers, body: lines.slice(i).join('\n') };
}

export function contentType(entity: MimeEntity): ContentType {
  const raw = entity.headers.get('content-type');
  const params = new Map<string, string>();
  if (raw === undefined) return { mime: 'text/plain', params };
  const [type = '', ...rest] = splitParams(raw);
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    params.set(p.slice(0, eq).trim().toLowerCase(), unquote(p.slice(eq + 1).trim()));
  }
  return { mime: type.trim().toLowerCase() || 'text/plain', params };
}

/** Split on ';' outside double quotes (a boundary may contain ';'). */
function splitParams(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of s) {
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s;
}

/** Body parts between "--boundary" lines; preamble and epilogue (before/after) are dropped. */
export function splitMultipart(body: string, boundary: string): string[] {
  const parts: string[] = [];
  let current: string[] | undefined;
  for (const line of body.split('\n')) {
    const l = line.replace(/\s+$/, ''); // transports add trailing spaces after the delimiter
    if (l === `--${boundary}--`) break;
    if (l === `--${boundary}`) {
      if (current) parts.push(current.join('\n'));
      current = [];
    } else current?.push(line);
  }
  if (current) parts.push(current.join('\n')); // missing close delimiter: keep the last part anyway
  return parts;
}

/** The body as text: undo Content-Transfer-Encoding, then decode the charset. */
export function decodeBody(entity: MimeEntity, charset: string | undefined): string {
  const cte = (entity.headers.get('content-transfer-encoding') ?? '').trim().toLowerCase();
  if (cte === 'base64') return decodeCharset(Buffer.from(entity.body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'), charset);
  if (cte === 'quoted-printable') return decodeCharset(quotedPrintableBytes(entity.body), charset);
  return entity.body; // 7bit / 8bit / binary: already characters
}

export function quotedPrintableBytes(s: string, underscoreIsSpace = false): Uint8Array {
  const bytes: number[] = [];
  const text = s.replace(/=[ \t]*\r?\n/g, ''); // soft line breaks
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === '_' && underscoreIsSpace) bytes.push(0x20);
    else {
      const code = c.charCodeAt(0);
      if (code < 0x80) bytes.push(code);
      else bytes.push(...Buffer.from(c, 'utf8')); // a literal non-ASCII character: keep it
    }
  }
  return Uint8Array.from(bytes);
}

/**
 * Bytes → text in the declared charset. Missing or "us-ascii" labels are often wrong in practice
 * (8-bit text sent as ASCII), so those try UTF-8 first and fall back to Windows-1252; unknown
 * labels also fall back to Windows-1252, which maps every byte to some character.
 */
export function decodeCharset(bytes: Uint8Array, charset: string | undefined): string {
  const label = (charset ?? '').trim().toLowerCase();
  if (label === '' || label === 'us-ascii' || label === 'ascii') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return decodeWindows1252(bytes);
    }
  }
  let decoder: InstanceType<typeof TextDecoder>;
  try {
    decoder = new TextDecoder(label);
  } catch {
    return decodeWindows1252(bytes);
  }
  // WHATWG maps iso-8859-1/latin1 to windows-1252 too; decode those ourselves (see below).
  return decoder.encoding === 'windows-1252' ? decodeWindows1252(bytes) : decoder.decode(bytes);
}

// Node 20's TextDecoder('windows-1252') decodes as ISO-8859-1 (0x93 → U+0093 instead of '“'),
// so the 0x80–0x9F block, where the two differ, is mapped here. 0 = byte unassigned (kept as is).
const CP1252_80_9F = [
  0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
  0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
];

export function decodeWindows1252(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += String.fromCharCode(b >= 0x80 && b <= 0x9f ? CP1252_80_9F[b - 0x80] || b : b);
  return out;
}

/** RFC 2047 encoded words, e.g. "=?iso-8859-1?Q?Caf=E9?=" → "Café". */
export function decodeEncodedWords(value: string): string {
  // Whitespace between two adjacent encoded words is not part of the text (RFC 2047 §6.2).
  const joined = value.replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)/g, '$1');
  return joined.replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (_, charset: string, enc: string, text: string) => {
    const cs = charset.split('*')[0]; // RFC 2231 language suffix: "utf-8*en"
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : quotedPrintableBytes(text, true);
    return decodeCharset(bytes, cs);
  });
}
