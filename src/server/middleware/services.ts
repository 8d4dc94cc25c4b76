// Puts the model registry, metrics and fine-tuning service on the context (c.var.models, …), counts every
// response by route and status, and refuses new requests (503) once shutdown has begun.
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { FineTuning } from '../../jobs/service.js';
import type { AppEnv } from '../env.js';
import { apiError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { ModelRegistry } from '../registry.js';

export interface Services {
  models: ModelRegistry;
  metrics: Metrics;
  finetuning?: FineTuning;
  /** True once the server is shutting down. */
  draining: () => boolean;
}

/** @example app.use(services({ models, metrics, draining: () => false })) */
export function services(s: Services): MiddlewareHandler<AppEnv> {
  return async function services(c, next) {
    c.set('models', s.models);
    c.set('metrics', s.metrics);
    c.set('finetuning', s.finetuning);
    if (s.draining() && c.req.path !== '/health') throw apiError(503, 'The server is shutting down.', { code: 'server_shutting_down' });
    await next(); // errors below were already turned into responses by onError
    // The matched pattern ('/v1/models/:id'), not the path: label values must stay few.
    const route = routePath(c, -1);
    s.metrics.requests.inc({ method: c.req.method, route: route === '/*' ? 'unmatched' : route, status: String(c.res.status) });
  };
}
