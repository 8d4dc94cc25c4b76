// OpenAI's error shape, {"error": {message, type, param, code}}, and the one place every failure
// is mapped to it (app.onError). Handlers throw; nothing else builds an error body.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ContextLengthError } from '../model/errors.js';
import { StoreUnavailable } from '../jobs/db.js';

export interface ErrorInfo {
  type?: string;
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An HTTPException that carries OpenAI's error fields in `cause`. */
export function apiError(status: ContentfulStatusCode, message: string, info: ErrorInfo = {}): HTTPException {
  return new HTTPException(status, { message, cause: info });
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): HTTPException =>
  apiError(400, message, { param, code });

/** The model's ContextLengthError as a client sees it: a 400 with OpenAI's code, naming `param`. */
export class ContextLengthExceeded extends ContextLengthError {
  readonly code = 'context_length_exceeded';
  constructor(
    e: ContextLengthError,
    readonly param: string,
  ) {
    super(e.contextLength, e.promptTokens, e.maxTokens);
  }
}

export const modelNotFound = (model: string): HTTPException =>
  apiError(404, `The model '${model}' does not exist.`, { param: 'model', code: 'model_not_found' });

/** The 503 a client sees while a model loads or after it failed to; nothing while it serves. */
export function requireReady(model: { id: string; state: string; failure?: string }): void {
  if (model.state === 'loading') throw apiError(503, `The model '${model.id}' is still loading; retry shortly.`, { code: 'model_loading', headers: { 'Retry-After': '5' } });
  if (model.state === 'failed') throw apiError(503, `The model '${model.id}' is unavailable: ${model.failure}`, { code: 'model_unavailable' });
}

/** The 429 for a model whose queue is full (OverloadedError). */
export const serverOverloaded = (): HTTPException =>
  apiError(429, 'The server is overloaded: too many requests are waiting. Retry after a moment.', { code: 'server_overloaded', headers: { 'Retry-After': '1' } });

/** The default `type` for a status, as OpenAI uses them. */
function typeFor(status: number): string {
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export function errorBody(status: number, message: string, info: ErrorInfo = {}): ErrorBody {
  return { error: { message, type: info.type ?? typeFor(status), param: info.param ?? null, code: info.code ?? null } };
}

/** Hono's onError: every thrown thing becomes the OpenAI error JSON; unknown errors are logged, never echoed. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof HTTPException) {
    const info = (err.cause ?? {}) as ErrorInfo;
    for (const [k, v] of Object.entries(info.headers ?? {})) c.header(k, v);
    // Hono's own exceptions (e.g. the JSON validator's) carry a message and no cause: same mapping.
    return c.json(errorBody(err.status, err.message || 'Request failed', info), err.status as ContentfulStatusCode);
  }
  if (err instanceof ContextLengthExceeded) return c.json(errorBody(400, err.message, { param: err.param, code: err.code }), 400);
  if (err instanceof StoreUnavailable) {
    // PostgreSQL is down or unreachable: files, jobs and batches wait for it; completions go on.
    console.error(`[${c.get('requestId') ?? '-'}] ${c.req.method} ${c.req.path}: ${err.message}`);
    c.header('Retry-After', '5');
    return c.json(errorBody(503, 'The database is unreachable; try again shortly.', { code: 'database_unavailable' }), 503);
  }
  console.error(`[${c.get('requestId') ?? '-'}] ${c.req.method} ${c.req.path}:`, err);
  return c.json(errorBody(500, 'The server had an error while processing your request.'), 500);
}

export function notFound(c: Context): Response {
  return c.json(errorBody(404, `Unknown request URL: ${c.req.method} ${c.req.path}.`, { code: 'unknown_url' }), 404);
}

// Errors Node's HTTP parser raises before any handler runs (the server's 'clientError' event):
// Node's default answer is a bare `HTTP/1.1 400 Bad Request` without a body.
const CLIENT_ERRORS: Record<string, [status: number, message: string | null, code: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request headers too large: at most 16 KiB (node --max-http-header-size).', 'request_header_fields_too_large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Chunk extensions too large.', 'request_too_large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'The request was not received in time.', 'request_timeout'],
  HPE_INVALID_CONTENT_LENGTH: [400, null, 'invalid_content_length'],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, null, 'invalid_content_length'], // with Transfer-Encoding
  HPE_INVALID_TRANSFER_ENCODING: [400, null, 'invalid_transfer_encoding'],
};

/** A whole HTTP/1.1 response with the OpenAI error body for a parser error; the connection closes after it. */
export function rawErrorResponse(err: Error & { code?: string; reason?: string }): string {
  const [status, known, code] = CLIENT_ERRORS[err.code ?? ''] ?? [400, null, 'malformed_request'];
  const message = known ?? `Malformed HTTP request: ${err.reason ?? err.message}.`; // llhttp's reasons are fixed texts
  const body = JSON.stringify(errorBody(status, message, { code }));
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * The server's 'clientError' handler: the OpenAI error shape where an answer can still go out.
 * It cannot when a response has begun on the socket (it would be corrupted) or the client has
 * gone (e.g. closed before sending all of its Content-Length): then the socket is just closed.
 * @example server.on('clientError', onClientError)
 */
export function onClientError(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (socket.writableEnded) return; // answered already: later bytes raise the same error again
  // As Node's default handler: `_httpMessage` is the response in flight on this socket, if any.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) socket.end(rawErrorResponse(err), () => socket.destroy());
  else socket.destroy();
}

/**
 * @hono/node-server's errorHandler: a request it cannot turn into a URL (a malformed Host or
 * request target) gets 400 in the OpenAI shape instead of an empty 400.
 * @example getRequestListener(app.fetch, { errorHandler: requestErrorResponse })
 */
export function requestErrorResponse(err: unknown): Response {
  const bad = err instanceof Error && err.name === 'RequestError';
  const body = bad
    ? errorBody(400, `Malformed HTTP request: ${err.message}.`, { code: 'malformed_request' })
    : errorBody(500, 'The server had an error while processing your request.');
  if (!bad) console.error('request listener:', err);
  return Response.json(body, { status: bad ? 400 : 500 });
}
