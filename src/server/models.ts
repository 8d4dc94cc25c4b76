// GET /v1/models and /v1/models/:id: every served model, id = its folder name.
import { Hono } from 'hono';
import type { AppEnv } from './env.js';
import type { ModelWorker } from './model-worker.js';

function describe(m: ModelWorker) {
  // max_model_len is vLLM's extra field; OpenAI clients ignore it.
  return { id: m.id, object: 'model' as const, created: m.created, owned_by: 'scratchgpt', max_model_len: m.config.contextLength };
}

export const models = new Hono<AppEnv>()
  .get('/models', (c) => c.json({ object: 'list' as const, data: c.var.models.list().map(describe) }))
  .get('/models/:id{.+}', (c) => c.json(describe(c.var.models.get(c.req.param('id')))));
