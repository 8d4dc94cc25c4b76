// POST /v1/classifications: a finetuned classifier's label and class probabilities for each input.
//   {model, input: string | string[]} → {object: "list", model, data: [{index, label, probabilities}]}
// The model runs in its own worker thread (ClassifierWorker); inputs longer than the context
// window keep their first tokens, as in training.
import { Hono } from 'hono';
import { z } from 'zod';
import type { AppEnv } from './env.js';
import { apiError, requireReady, serverOverloaded } from './errors.js';
import { OverloadedError } from './model-worker.js';
import { doc } from './openapi.js';
import { json } from './validate.js';

export const MAX_CLASSIFY_INPUTS = 2048;

const classifyRequest = z.strictObject({
  model: z.string(),
  input: z.union([z.string(), z.array(z.string()).min(1).max(MAX_CLASSIFY_INPUTS)], {
    error: `must be a string or an array of 1 to ${MAX_CLASSIFY_INPUTS} strings`,
  }),
  user: z.string().optional(),
});

export const classifications = new Hono<AppEnv>().post('/classifications', doc('Classifications', 'Label texts with a finetuned classifier'), json(classifyRequest), async (c) => {
  const b = c.req.valid('json');
  const model = c.var.models.classifier(b.model);
  requireReady(model);
  const texts = typeof b.input === 'string' ? [b.input] : b.input;
  let results;
  try {
    results = await model.classify(texts);
  } catch (e) {
    if (e instanceof OverloadedError) throw serverOverloaded();
    throw apiError(500, `Classification failed: ${(e as Error).message}`);
  }
  return c.json({ object: 'list' as const, model: model.id, data: results.map((r, index) => ({ index, label: r.label, probabilities: r.probabilities })) });
});
