// GET /v1/models and /v1/models/:id: every served model (base models: id = folder name or Hub id;
// finetuned: 'ft:…', listed also while one published by another replica's worker waits to load
// here at its first request; a job's checkpoints, 'ft:…:ckpt-step-N', are found by id but not listed,
// as they are listed per job at /v1/fine_tuning/jobs/{id}/checkpoints). DELETE /v1/models/:id deletes a finetuned model. Ids contain ':', so the
// routes take the rest of the path ({.+}).
import { Hono } from 'hono';
import { POOLINGS } from '../model/embedding.js';
import type { AppEnv } from './env.js';
import { apiError, modelNotFound } from './errors.js';
import { service } from './files.js';
import { doc, pathParam } from './openapi.js';
import type { ModelInfo } from './registry.js';

function describe(m: ModelInfo, finetuned: boolean) {
  // max_model_len is vLLM's extra field; OpenAI clients ignore it. embedding_pooling: the values
  // /v1/embeddings' `pooling` takes with a language model, the first its default.
  return {
    id: m.id,
    object: 'model' as const,
    created: m.created,
    owned_by: finetuned ? 'user' : 'scratchgpt',
    max_model_len: m.config.contextLength,
    ...(m.kind === 'classifier' ? { task: 'classification' as const, labels: m.labels } : { embedding_pooling: [...POOLINGS] }),
  };
}

const MODEL_ID = pathParam('id', "The model id (finetuned: 'ft:…'); a Hub id's '/' may be percent-encoded");

export const models = new Hono<AppEnv>()
  .get('/models', doc('Models', 'List the served models'), (c) => {
    return c.json({ object: 'list' as const, data: c.var.models.listed().map((m) => describe(m, c.var.models.isFinetuned(m.id))) });
  })
  .get('/models/:id{.+}', doc('Models', 'Describe a model', { parameters: [MODEL_ID] }), (c) => {
    const id = c.req.param('id');
    const m = c.var.models.info(id); // describing a checkpoint does not start it
    if (!m) throw modelNotFound(id);
    return c.json(describe(m, c.var.models.isFinetuned(id)));
  })
  .delete('/models/:id{.+}', doc('Models', 'Delete a finetuned model', { parameters: [MODEL_ID] }), async (c) => {
    const id = c.req.param('id');
    const ft = c.var.finetuning && service(c); // service(): a 503 when the data folder is gone
    const row = await ft?.store.getModel(id);
    if (!row || row.deleted) {
      if (c.var.models.has(id)) {
        throw apiError(403, `The model '${id}' is a base model served from a folder; only finetuned models can be deleted.`, { param: 'model', code: 'model_not_deletable' });
      }
      throw modelNotFound(id);
    }
    const users = await ft!.store.jobsUsingModel(id);
    if (users.length) {
      throw apiError(409, `The model '${id}' is the base of fine-tuning job ${users.join(', ')}, which has not finished; cancel it or wait for it to end first.`, {
        param: 'model',
        code: 'model_in_use',
      });
    }
    await ft!.deleteModel(id);
    return c.json({ id, object: 'model' as const, deleted: true });
  });
