// The Hono environment shared by every route: typed variables set once per request by `services`.
import type { RequestIdVariables } from 'hono/request-id';
import type { FineTuning } from '../jobs/service.js';
import type { Metrics } from './metrics.js';
import type { ModelRegistry } from './registry.js';

export interface AppEnv {
  Variables: RequestIdVariables & {
    models: ModelRegistry;
    metrics: Metrics;
    /** The fine-tuning service (files, jobs, finetuned models); undefined when it is off. */
    finetuning: FineTuning | undefined;
  };
}
