// The Hono app: middleware, one sub-app per resource, and the single error mapping.
//
//   request id → services (registry, metrics, request counts, shutdown gate) → auth → body limit → routes
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { chat } from './chat.js';
import { completions } from './completions.js';
import type { AppEnv } from './env.js';
import { notFound, onError } from './errors.js';
import { health } from './health.js';
import type { Metrics } from './metrics.js';
import { apiKeyAuth } from './middleware/auth.js';
import { limitBody } from './middleware/body-limit.js';
import { services } from './middleware/services.js';
import { models } from './models.js';
import type { ModelRegistry } from './registry.js';
import { tokenize } from './tokenize.js';

export const DEFAULT_MAX_BODY_BYTES = 1 << 20; // 1 MiB: ~200k tokens of text, far past any context window

export interface AppOptions {
  models: ModelRegistry;
  metrics: Metrics;
  /** Bearer keys; empty = no auth. /health is always open (orchestrators probe it without keys). */
  apiKeys?: string[];
  maxBodyBytes?: number;
  draining?: () => boolean;
}

export function createApp(o: AppOptions): Hono<AppEnv> {
  const draining = o.draining ?? (() => false);
  return new Hono<AppEnv>()
    .use(requestId())
    .use(services({ models: o.models, metrics: o.metrics, draining }))
    .use(apiKeyAuth(o.apiKeys ?? [], { open: ['/health'] }))
    .use(limitBody(o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES))
    .route('/v1', models)
    .route('/v1', completions)
    .route('/v1', chat)
    .route('/', tokenize)
    .route('/', health(draining))
    .onError(onError)
    .notFound(notFound);
}
