// A batch's input file: JSONL, one request a line, `{"custom_id", "method": "POST", "url", "body"}`.
// Checked as a whole when the batch leaves 'validating', as OpenAI does: any malformed line (bad
// JSON, no custom_id, a method other than POST, a url that is not the batch's endpoint, a body that
// is not an object or asks to stream, a custom_id seen before) fails the batch before any line
// runs, with one error per line in `errors`. A well-formed line whose request the route refuses
// (an unknown model, a bad parameter) is not malformed: it runs, and its 4xx goes to the error file.
import type { BatchError } from './store.js';

/** The urls a batch line may POST to (and the endpoints a batch may name). */
export const BATCH_ENDPOINTS = ['/v1/completions', '/v1/chat/completions', '/v1/embeddings'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** OpenAI's limit on the requests of one batch. */
export const MAX_BATCH_LINES = 50_000;
/** Errors listed for a bad file; past this, the rest are left out (the first ones say what is wrong). */
const MAX_ERRORS = 100;

export interface BatchLine {
  /** 1-based line number in the file. */
  line: number;
  custom_id: string;
  url: BatchEndpoint;
  body: Record<string, unknown>;
}

export type BatchInput = { ok: true; lines: BatchLine[] } | { ok: false; errors: BatchError[] };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The requests of an input file for a batch to `endpoint`, or every error found (blank lines are skipped). */
export function parseBatchInput(bytes: Uint8Array, endpoint: string): BatchInput {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, errors: [{ code: 'invalid_file', message: 'The input file is not UTF-8 text.', param: null, line: null }] };
  }
  const lines: BatchLine[] = [];
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  const fail = (line: number, code: string, message: string, param: string | null = null) => errors.push({ code, message, param, line });
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    let r: unknown;
    try {
      r = JSON.parse(raw);
    } catch {
      return fail(line, 'invalid_json_line', `Line ${line} is not valid JSON.`);
    }
    if (!isObject(r)) return fail(line, 'invalid_request', `Line ${line} is not a JSON object.`);
    const { custom_id, method, url, body } = r;
    if (typeof custom_id !== 'string' || !custom_id) return fail(line, 'missing_required_parameter', `Line ${line} has no 'custom_id' (a non-empty string).`, 'custom_id');
    if (seen.has(custom_id)) return fail(line, 'duplicate_custom_id', `The custom_id '${custom_id}' on line ${line} is used more than once; each line needs its own.`, 'custom_id');
    seen.add(custom_id);
    if (method !== 'POST') return fail(line, 'invalid_method', `Line ${line}: 'method' must be 'POST'.`, 'method');
    if (typeof url !== 'string' || !(BATCH_ENDPOINTS as readonly string[]).includes(url)) {
      return fail(line, 'invalid_url', `Line ${line}: 'url' must be one of ${BATCH_ENDPOINTS.join(', ')}.`, 'url');
    }
    if (url !== endpoint) return fail(line, 'mismatched_endpoint', `Line ${line}: the url '${url}' is not the batch's endpoint '${endpoint}'.`, 'url');
    if (!isObject(body)) return fail(line, 'invalid_request', `Line ${line}: 'body' must be a JSON object.`, 'body');
    // A batch stores whole responses; a stream would be an event log nobody reads.
    if (body.stream === true) return fail(line, 'invalid_request', `Line ${line}: streaming is not supported in a batch ('body.stream' must not be true).`, 'body.stream');
    lines.push({ line, custom_id, url: url as BatchEndpoint, body });
  });
  if (errors.length) return { ok: false, errors: errors.slice(0, MAX_ERRORS) };
  if (!lines.length) return { ok: false, errors: [{ code: 'empty_file', message: 'The input file holds no requests.', param: null, line: null }] };
  if (lines.length > MAX_BATCH_LINES) {
    return { ok: false, errors: [{ code: 'too_many_requests', message: `The input file holds ${lines.length} requests; a batch may hold at most ${MAX_BATCH_LINES}.`, param: null, line: null }] };
  }
  return { ok: true, lines };
}
