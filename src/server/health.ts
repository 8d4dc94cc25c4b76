// GET /health (503 while models load, after shutdown begins or when the data folder is gone, else 200) and GET /metrics
// (Prometheus text format).
import { Hono } from 'hono';
import type { AppEnv } from './env.js';
import { doc } from './openapi.js';

export function health(draining: () => boolean) {
  return new Hono<AppEnv>()
    .get('/health', doc('Operations', 'Whether the server is ready (503 while models load or shutting down)', { security: [] }), (c) => {
      const storage = c.var.finetuning?.storageProblem();
      const state = draining() ? 'shutting_down' : storage ? 'failed' : c.var.models.state;
      const models = Object.fromEntries(c.var.models.list().map((m) => [m.id, m.state]));
      return c.json({ status: state === 'ready' ? 'ok' : state, models, ...(storage ? { storage } : {}) }, state === 'ready' ? 200 : 503);
    })
    .get('/metrics', doc('Operations', 'Prometheus metrics', { responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': {} } } } }), (c) => c.text(c.var.metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }));
}
