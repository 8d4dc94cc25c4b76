// HTML → plain text for classification: drop markup, keep the words. Inline tags are removed
// without a space because spam splits words with them ("V<b></b>iagra", "Fr<font>ee</font>");
// block tags become a space so separate paragraphs or cells do not run together.

const BLOCK_TAGS = new Set([
  'address', 'article', 'blockquote', 'body', 'br', 'center', 'dd', 'div', 'dl', 'dt', 'form', 'h1', 'h2', 'h3', 'h4',
  'h5', 'h6', 'hr', 'html', 'img', 'input', 'li', 'ol', 'option', 'p', 'pre', 'section', 'select', 'table', 'tbody',
  'td', 'textarea', 'tfoot', 'th', 'thead', 'title', 'tr', 'ul',
]);

// The entities seen in mail, not the full HTML5 list of 2,000+; unknown ones are dropped.
const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', copy: '©', reg: '®', trade: '™', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', bull: '•', middot: '·', euro: '€',
  pound: '£', yen: '¥', cent: '¢', sect: '§', deg: '°', times: '×', divide: '÷', laquo: '«', raquo: '»',
  iexcl: '¡', iquest: '¿', eacute: 'é', egrave: 'è', aacute: 'á', agrave: 'à', ccedil: 'ç', ntilde: 'ñ',
  ouml: 'ö', uuml: 'ü', auml: 'ä', szlig: 'ß',
};

/** Heuristic for bodies that are HTML without saying so (common in spam). */
export function looksLikeHtml(text: string): boolean {
  return /<\s*(html|body|head|table|div|p|br|font|a\s)[\s>/]/i.test(text);
}

export function htmlToText(html: string): string {
  const noMarkup = html
    .replace(/<!--[\s\S]*?(-->|$)/g, ' ')
    .replace(/<(script|style|head)\b[\s\S]*?(<\/\1\s*>|$)/gi, ' ') // code and metadata, not message text
    // A tag needs a name right after '<' (or '</', '<!'), so "a < b > c" in sloppy HTML survives.
    .replace(/<(?:!|\/?([a-zA-Z][a-zA-Z0-9]*))[^>]*>/g, (_, name: string | undefined) =>
      name !== undefined && BLOCK_TAGS.has(name.toLowerCase()) ? ' ' : '',
    );
  return decodeEntities(noMarkup);
}

export function decodeEntities(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);?/g, (match, ref: string) => {
    if (ref.startsWith('#')) {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      // Invalid code points and NUL/controls become a space rather than breaking the text.
      return code > 0x1f && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : ' ';
    }
    const named = NAMED_ENTITIES[ref.toLowerCase()];
    if (named !== undefined) return named;
    return match.endsWith(';') ? '' : match; // "&foo;" is an entity we do not know; "AT&T" is text
  });
}
