// OpenAI's error shape, {"error": {message, type, param, code}}, and the one place every failure
// is mapped to it (app.onError). Handlers throw; nothing else builds an error body.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ContextLengthError, InvalidParameterError } from '../model/errors.js';

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

export const modelNotFound = (model: string): HTTPException =>
  apiError(404, `The model '${model}' does not exist.`, { param: 'model', code: 'model_not_found' });

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
  // The model layer's validation errors, should one slip past a handler's own checks.
  if (err instanceof ContextLengthError) return c.json(errorBody(400, err.message, { param: 'max_tokens', code: err.code }), 400);
  if (err instanceof InvalidParameterError) return c.json(errorBody(400, err.message, { param: err.param, code: err.code }), 400);
  console.error(`[${c.get('requestId') ?? '-'}] ${c.req.method} ${c.req.path}:`, err);
  return c.json(errorBody(500, 'The server had an error while processing your request.'), 500);
}

export function notFound(c: Context): Response {
  return c.json(errorBody(404, `Unknown request URL: ${c.req.method} ${c.req.path}.`, { code: 'unknown_url' }), 404);
}
