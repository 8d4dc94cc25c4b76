// One line per request, to stderr or a function:
//   POST /v1/chat/completions 200 12.3ms req=3f2a…
// method, path (without the query string), status, duration, and the request id that the client
// got as X-Request-Id. The duration runs until the response headers are ready: a streamed body
// (stream: true) goes on after its line is written.
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.js';

/** On (to stderr), off, or a function that takes each line. */
export type AccessLog = boolean | ((line: string) => void);

const toStderr = (line: string) => void process.stderr.write(`${line}\n`);

/**
 * After requestId(), before everything that can refuse a request (so 401s and 403s are logged too).
 * @example app.use(requestId()).use(accessLog(true))
 */
export function accessLog(log: AccessLog = true): MiddlewareHandler<AppEnv> {
  const write = typeof log === 'function' ? log : log ? toStderr : undefined;
  return async function accessLog(c, next) {
    if (!write) return next();
    const start = performance.now();
    await next(); // errors below were already turned into responses by onError
    // Hono's path is percent-decoded: spaces and control characters are encoded again, so a
    // request cannot split its line or forge another.
    const path = c.req.path.replace(/[\x00-\x20\x7f]/g, (ch) => encodeURIComponent(ch));
    write(`${c.req.method} ${path} ${c.res.status} ${(performance.now() - start).toFixed(1)}ms req=${c.get('requestId')}`);
  };
}
