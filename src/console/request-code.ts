// A playground request as code to copy: a curl command and `openai` SDK scripts (Python, Node).
// The key is never embedded: the snippets read SCRATCHGPT_API_KEY from the environment, and a
// server without keys ignores the header, so they run as shown against a local server.

export type CodeKind = 'curl' | 'python' | 'node';

export const CODE_KINDS: { id: CodeKind; label: string }[] = [
  { id: 'curl', label: 'curl' },
  { id: 'python', label: 'Python' },
  { id: 'node', label: 'Node.js' },
];

export interface RequestSpec {
  /** '/v1/chat/completions' or '/v1/completions'. */
  path: string;
  body: Record<string, unknown>;
  /** The server's origin, e.g. location.origin. */
  origin: string;
}

/** POSIX shell single quotes: everything literal, a quote as '\''. */
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function curlCommand({ path, body, origin }: RequestSpec): string {
  return [
    `curl -sS ${shellQuote(origin + path)}`,
    `  -H 'Content-Type: application/json'`,
    `  -H "Authorization: Bearer $SCRATCHGPT_API_KEY"`,
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
  ].join(' \\\n');
}

/** Fields the OpenAI SDKs do not know: Python's client refuses them as keywords (extra_body takes them). */
const EXTRA_FIELDS = new Set(['top_k', 'min_p', 'repetition_penalty', 'ignore_eos']);

/** A JSON value as a Python literal (True, False, None; JSON's string escapes are Python's). */
function pythonLiteral(v: unknown, indent: string): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number' || typeof v === 'string') return JSON.stringify(v);
  const inner = indent + '    ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + pythonLiteral(x, inner)).join(',\n')},\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pythonLiteral(x, inner)}`).join(',\n')},\n${indent}}`;
}

const isChat = (path: string) => path.endsWith('/chat/completions');

export function pythonCode({ path, body, origin }: RequestSpec): string {
  const args: string[] = [];
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (EXTRA_FIELDS.has(k)) extra[k] = v;
    else args.push(`    ${k}=${pythonLiteral(v, '    ')},`);
  }
  if (Object.keys(extra).length) args.push(`    extra_body=${pythonLiteral(extra, '    ')},`);
  const call = isChat(path) ? 'client.chat.completions.create' : 'client.completions.create';
  const out = isChat(path) ? 'response.choices[0].message.content' : 'response.choices[0].text';
  return [
    'import os',
    '',
    'from openai import OpenAI',
    '',
    'client = OpenAI(',
    `    base_url=${JSON.stringify(origin + '/v1')},`,
    '    api_key=os.environ.get("SCRATCHGPT_API_KEY", "none"),',
    ')',
    '',
    `response = ${call}(`,
    ...args,
    ')',
    `print(${out})`,
    '',
  ].join('\n');
}

/** An ES module (node script.mjs); the Node SDK passes fields it does not know through as they are. */
export function nodeCode({ path, body, origin }: RequestSpec): string {
  const call = isChat(path) ? 'client.chat.completions.create' : 'client.completions.create';
  const out = isChat(path) ? 'response.choices[0].message.content' : 'response.choices[0].text';
  return [
    "import OpenAI from 'openai';",
    '',
    `const client = new OpenAI({ baseURL: ${JSON.stringify(origin + '/v1')}, apiKey: process.env.SCRATCHGPT_API_KEY ?? 'none' });`,
    '',
    `const response = await ${call}(${JSON.stringify(body, null, 2)});`,
    `console.log(${out});`,
    '',
  ].join('\n');
}

export function codeFor(kind: CodeKind, spec: RequestSpec): string {
  return kind === 'curl' ? curlCommand(spec) : kind === 'python' ? pythonCode(spec) : nodeCode(spec);
}
