// The Hono app: middleware, one sub-app per resource, and the single error mapping.
//
//   request id → access log → services (registry, metrics, fine-tuning, request counts, shutdown gate)
//   → Host/Origin guard → CORS (--cors-origins) → auth
//   → body limit (uploads to /v1/files have their own, larger one) → routes, /openapi.json and /docs
import { Hono } from 'hono';
import { except } from 'hono/combine';
import { requestId } from 'hono/request-id';
import { DEFAULT_MAX_FILE_BYTES, type FineTuning } from '../jobs/service.js';
import { batches } from './batches.js';
import { chat } from './chat.js';
import { classifications } from './classifications.js';
import { completions } from './completions.js';
import { embeddings } from './embeddings.js';
import { webConsole } from './console.js';
import type { AppEnv } from './env.js';
import { notFound, onError } from './errors.js';
import { files } from './files.js';
import { fineTuning } from './fine-tuning.js';
import { health } from './health.js';
import type { Metrics } from './metrics.js';
import { accessLog, type AccessLog } from './middleware/access-log.js';
import { apiKeyAuth } from './middleware/auth.js';
import { limitBody } from './middleware/body-limit.js';
import { corsFor, hostGuard } from './middleware/host-guard.js';
import { services } from './middleware/services.js';
import { models } from './models.js';
import { openapi } from './openapi.js';
import type { ModelRegistry } from './registry.js';
import { tokenize } from './tokenize.js';

export const DEFAULT_MAX_BODY_BYTES = 1 << 20; // 1 MiB: ~200k tokens of text, far past any context window

/**
 * Paths answered without an API key ('/x/*': everything under /x): /health for orchestrators, and
 * the browser pages, which hold no data themselves (the console and the docs ask for a key to call the API).
 */
export const OPEN_PATHS = ['/health', '/openapi.json', '/docs', '/docs/*', '/', '/console/*'];

export interface AppOptions {
  models: ModelRegistry;
  metrics: Metrics;
  /** Bearer keys; empty = no auth. OPEN_PATHS are always open (orchestrators probe /health without keys). */
  apiKeys?: string[];
  /** Host names answered without keys besides localhost, IP addresses and `boundHost` ('*': any); see middleware/host-guard.ts. */
  allowedHosts?: string[];
  /** Origins allowed cross-site requests (and CORS headers); '*': any. */
  corsOrigins?: string[];
  /** The address the server is bound to. */
  boundHost?: string;
  maxBodyBytes?: number;
  draining?: () => boolean;
  /** Files, fine-tuning jobs and finetuned models; without it those routes answer 404. */
  finetuning?: FineTuning;
  /** One line per request (middleware/access-log.ts): true = to stderr; default off. */
  accessLog?: AccessLog;
  /** The web console at / (default on). */
  console?: boolean;
}

export function createApp(o: AppOptions): Hono<AppEnv> {
  const draining = o.draining ?? (() => false);
  const app = new Hono<AppEnv>()
    .use(requestId())
    .use(accessLog(o.accessLog ?? false))
    .use(services({ models: o.models, metrics: o.metrics, finetuning: o.finetuning, draining }))
    .use(hostGuard({ keys: (o.apiKeys ?? []).length > 0, allowedHosts: o.allowedHosts, corsOrigins: o.corsOrigins, boundHost: o.boundHost, open: ['/health'] }))
    .use(corsFor(o.corsOrigins ?? [])) // before auth: preflights carry no key
    .use(apiKeyAuth(o.apiKeys ?? [], { open: OPEN_PATHS }))
    .use(except('/v1/files', limitBody(o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)))
    .route('/v1', models)
    .route('/v1', completions)
    .route('/v1', chat)
    .route('/v1', classifications)
    .route('/v1', embeddings)
    .route('/v1', files(o.finetuning?.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES))
    .route('/v1', fineTuning)
    .route('/v1', batches)
    .route('/', tokenize)
    .route('/', health(draining));
  app.route('/', openapi(app)); // reads app.routes at the first request: routes mounted below are seen too
  if (o.console !== false) app.route('/', webConsole);
  return app.onError(onError).notFound(notFound);
}
