// OpenAI's Batch API:
//   POST /v1/batches · GET /v1/batches · GET /v1/batches/{id} · POST /v1/batches/{id}/cancel
// A batch names an uploaded file (purpose 'batch') of requests to one endpoint; what can be checked
// without reading the file is checked here (a 400), the file's lines when the batch is validated
// (src/jobs/batch-input.ts: a malformed file fails the batch, as OpenAI's does), and the runner
// (src/jobs/batch-runner.ts) takes it from there.
import { Hono } from 'hono';
import { z } from 'zod';
import { BATCH_ENDPOINTS } from '../jobs/batch-input.js';
import { BATCH_ID, FILE_ID, newBatchId } from '../jobs/ids.js';
import type { FineTuning } from '../jobs/service.js';
import { BATCH_TERMINAL, type BatchRow } from '../jobs/store.js';
import type { AppEnv } from './env.js';
import { apiError, badRequest } from './errors.js';
import { service } from './files.js';
import { doc, pathParam } from './openapi.js';
import { json, query } from './validate.js';

/** The only completion window OpenAI offers, and how long it is. */
const WINDOW_SECONDS = { '24h': 24 * 3600 } as const;

export const createBatchRequest = z.strictObject({
  input_file_id: z.string().min(1),
  endpoint: z.enum(BATCH_ENDPOINTS),
  completion_window: z.enum(Object.keys(WINDOW_SECONDS) as ['24h']),
  // OpenAI's metadata limits: 16 pairs, keys up to 64 characters, values up to 512.
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, { error: 'may hold at most 16 key-value pairs' })
    .nullish(),
  // Result files here are kept until deleted; an expiry would be accepted and silently not kept.
  output_expires_after: z.unknown().optional(),
});

const pageQuery = z.object({
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

const batchNotFound = (id: string) => apiError(404, `No batch found with id '${id}'.`, { param: 'batch_id', code: 'batch_not_found' });

async function findBatch(ft: FineTuning, id: string): Promise<BatchRow> {
  const b = BATCH_ID.test(id) ? await ft.store.getBatch(id) : undefined;
  if (!b) throw batchNotFound(id);
  return b;
}

export function batchObject(b: BatchRow) {
  return {
    id: b.id,
    object: 'batch' as const,
    endpoint: b.endpoint,
    errors: b.errors && { object: 'list' as const, data: b.errors },
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    status: b.status,
    output_file_id: b.output_file_id,
    error_file_id: b.error_file_id,
    created_at: b.created_at,
    in_progress_at: b.in_progress_at,
    expires_at: b.expires_at,
    finalizing_at: b.finalizing_at,
    completed_at: b.completed_at,
    failed_at: b.failed_at,
    expired_at: b.expired_at,
    cancelling_at: b.cancelling_at,
    cancelled_at: b.cancelled_at,
    request_counts: { total: b.total, completed: b.completed, failed: b.failed },
    usage: {
      input_tokens: b.input_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: b.output_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: b.input_tokens + b.output_tokens,
    },
    metadata: b.metadata,
  };
}

const BATCH_ID_PARAM = pathParam('id', 'The batch id (batch_…)');

export const batches = new Hono<AppEnv>()
  .post('/batches', doc('Batches', 'Create a batch from an uploaded file of requests'), json(createBatchRequest), async (c) => {
    const ft = service(c);
    const b = c.req.valid('json');
    if (b.output_expires_after !== undefined) throw badRequest("'output_expires_after' is not supported: result files are kept until deleted.", 'output_expires_after');
    const f = FILE_ID.test(b.input_file_id) ? await ft.store.getFile(b.input_file_id) : undefined;
    if (!f) throw badRequest(`Invalid input_file_id: no file with id '${b.input_file_id}' (upload it with POST /v1/files, purpose 'batch').`, 'input_file_id', 'file_not_found');
    if (f.purpose !== 'batch') throw badRequest(`Invalid input_file_id: file ${f.id} has purpose '${f.purpose}', not 'batch'.`, 'input_file_id', 'invalid_file_purpose');
    const row = await ft.store.insertBatch({
      id: newBatchId(),
      endpoint: b.endpoint,
      input_file_id: f.id,
      completion_window: b.completion_window,
      metadata: b.metadata ?? null,
      window_seconds: WINDOW_SECONDS[b.completion_window],
    });
    ft.batches.kick();
    return c.json(batchObject(row));
  })
  .get('/batches', doc('Batches', 'List batches, newest first'), query(pageQuery), async (c) => {
    const q = c.req.valid('query');
    const page = await service(c).store.listBatches(q);
    const data = page.data.map(batchObject);
    return c.json({ object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.has_more });
  })
  .get('/batches/:id', doc('Batches', 'Describe a batch', { parameters: [BATCH_ID_PARAM] }), async (c) => c.json(batchObject(await findBatch(service(c), c.req.param('id')))))
  .post('/batches/:id/cancel', doc('Batches', 'Cancel a batch', { parameters: [BATCH_ID_PARAM] }), async (c) => {
    const ft = service(c);
    const b = await findBatch(ft, c.req.param('id'));
    if (BATCH_TERMINAL.includes(b.status) || b.status === 'finalizing') {
      throw apiError(409, `Batch ${b.id} is ${b.status}: only a batch that is validating or in progress can be cancelled.`, { param: 'batch_id', code: 'batch_not_cancellable' });
    }
    return c.json(batchObject(await ft.batches.cancel(b.id)));
  });
