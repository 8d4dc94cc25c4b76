// Bearer-token auth against a fixed key list (SCRATCHGPT_API_KEYS). Keys are compared as SHA-256
// digests with timingSafeEqual: equal-length inputs, so neither a key's content nor its length
// leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { apiError } from '../errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether `path` is one of `open`: exact paths, or '/prefix/*' for everything under a prefix. */
export function isOpenPath(open: readonly string[], path: string): boolean {
  return open.some((p) => (p.endsWith('/*') ? path.startsWith(p.slice(0, -1)) : p === path));
}

/**
 * @example app.use(apiKeyAuth(['sk-1', 'sk-2'], { open: ['/health', '/console/*'] }))
 * No keys: everything is open (a local server).
 */
export function apiKeyAuth(keys: readonly string[], { open = [] as string[] } = {}): MiddlewareHandler {
  const digests = keys.map(digest);
  return async function apiKeyAuth(c, next) {
    if (digests.length === 0 || isOpenPath(open, c.req.path)) return next();
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!m) {
      throw apiError(401, "You didn't provide an API key. Provide it in an Authorization header: 'Authorization: Bearer YOUR_KEY'.", {
        code: 'missing_api_key',
      });
    }
    const given = digest(m[1]!);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(given, d) || ok; // no early exit: every key is compared
    if (!ok) throw apiError(401, 'Incorrect API key provided.', { code: 'invalid_api_key' });
    await next();
  };
}
