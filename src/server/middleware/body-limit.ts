// Request bodies above `maxBytes` get 413 in the OpenAI error shape (Hono's bodyLimit checks
// Content-Length up front and counts chunked bodies as they stream in).
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { apiError } from '../errors.js';

/** @example app.use(limitBody(1 << 20)) */
export function limitBody(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw apiError(413, `Request body too large: the limit is ${maxBytes} bytes.`, { code: 'request_too_large' });
    },
  });
}
