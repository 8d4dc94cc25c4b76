// The Hono environment shared by every route: typed variables set once per request by `services`.
import type { RequestIdVariables } from 'hono/request-id';
import type { Metrics } from './metrics.js';
import type { ModelRegistry } from './registry.js';

export interface AppEnv {
  Variables: RequestIdVariables & {
    models: ModelRegistry;
    metrics: Metrics;
  };
}
