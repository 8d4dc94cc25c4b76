// How the batch runner (src/jobs/batch-runner.ts) runs a line: as a POST to this server's own Hono
// app, in process (app.request: no socket), so a line gets exactly what the HTTP route gives a
// client — its validation, limits, errors and any route added later — without a second copy of
// the handlers. And when it may: only while the line's model has a free slot and no request waits.
import type { Hono } from 'hono';
import type { BatchDispatch } from '../jobs/batch-runner.js';
import type { AppEnv } from './env.js';
import type { ModelRegistry } from './registry.js';

/** `apiKeys`: the server's keys (a line passes auth with the first, as the client that uploaded it did). */
export function batchDispatch(app: Hono<AppEnv>, models: ModelRegistry, apiKeys: readonly string[]): BatchDispatch {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(apiKeys.length ? { authorization: `Bearer ${apiKeys[0]}` } : {}) };
  return {
    request: async (url, body, signal) => app.request(url, { method: 'POST', headers, body: JSON.stringify(body), signal }),
    busy(id) {
      // Not loaded or not a language model (a checkpoint asleep, a classifier): the route answers at once.
      const m = models.list().find((x) => x.id === id);
      return m?.kind === 'generator' && m.state === 'ready' && m.outstanding >= m.opts.slots;
    },
  };
}
