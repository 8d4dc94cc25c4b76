// OpenAI's fine-tuning jobs API:
//   POST /v1/fine_tuning/jobs · GET /v1/fine_tuning/jobs · GET /v1/fine_tuning/jobs/{id}
//   POST /v1/fine_tuning/jobs/{id}/cancel · GET …/{id}/events · GET …/{id}/checkpoints
// Requests are checked against the files and the base model here, so a job that is created can
// run; the runner (src/jobs/runner.ts) takes it from there.
import { Hono } from 'hono';
import { z } from 'zod';
import { CHECKPOINT_ID, checkpointId, checkpointModelId, cursorSeq, EVENT_ID, eventId, FILE_ID, fineTunedModelId, JOB_ID, newJobId } from '../jobs/ids.js';
import type { ScratchSettings } from '../jobs/runner.js';
import type { FineTuning } from '../jobs/service.js';
import { JOBS_CHANNEL, TERMINAL, type CheckpointRow, type EventRow, type FileRow, type JobRow } from '../jobs/store.js';
import { FINETUNE_DEFAULTS as D } from '../train/finetune-defaults.js';
import type { AppEnv } from './env.js';
import { apiError, badRequest, modelNotFound } from './errors.js';
import { service } from './files.js';
import { doc, pathParam } from './openapi.js';
import type { ModelRegistry } from './registry.js';
import { json, query } from './validate.js';

const auto = <T extends z.ZodType>(t: T) => z.union([z.literal('auto'), t]);
const hyperparameters = z.strictObject({
  n_epochs: auto(z.number().int().min(1).max(1000)).optional(),
  batch_size: auto(z.number().int().min(1).max(4096)).optional(),
  learning_rate_multiplier: auto(z.number().positive().max(1000)).optional(),
});

/** Our own settings, under method.scratchgpt (OpenAI clients pass them through as extra fields). */
const scratchgpt = z.strictObject({
  task: z.enum(['instruction', 'classification']).optional(),
  method: z.enum(['full', 'last_blocks', 'lora']).optional(),
  last_blocks: z.number().int().min(1).optional(),
  lora_rank: z.number().int().min(1).max(1024).optional(),
  lora_alpha: z.number().positive().max(1e6).optional(),
  mask_prompt: z.boolean().optional(),
  max_length: z.number().int().min(2).optional(),
  weight_decay: z.number().min(0).max(10).optional(),
  checkpoint_every_steps: z.number().int().min(1).optional(),
});

export const createJobRequest = z.strictObject({
  model: z.string().min(1),
  training_file: z.string().min(1),
  validation_file: z.string().min(1).nullish(),
  hyperparameters: hyperparameters.optional(),
  suffix: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-"' })
    .nullish(),
  seed: z.number().int().min(0).max(2 ** 31 - 1).nullish(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
  integrations: z.array(z.unknown()).nullish(),
  method: z
    .strictObject({
      type: z.enum(['supervised', 'dpo', 'reinforcement']),
      supervised: z.strictObject({ hyperparameters: hyperparameters.optional() }).optional(),
      dpo: z.unknown().optional(),
      reinforcement: z.unknown().optional(),
      scratchgpt: scratchgpt.optional(),
    })
    .optional(),
});

type CreateJob = z.infer<typeof createJobRequest>;

const pageQuery = z.object({
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(20),
});

const jobNotFound = (id: string) => apiError(404, `Could not find fine-tuning job: ${id}`, { param: 'fine_tuning_job_id', code: 'fine_tuning_job_not_found' });

/** A page's `after` cursor as the sequence number to list before, or the 400 naming it (`noun`: what the cursor should be). */
function pageBefore(ids: RegExp, after: string | undefined, job: JobRow, noun: string): number | undefined {
  if (after === undefined) return undefined;
  const seq = cursorSeq(ids, after, job.id);
  if (seq === undefined) throw badRequest(`Invalid 'after': '${after}' is not ${noun} of job ${job.id}.`, 'after');
  return seq;
}

async function findJob(ft: FineTuning, id: string): Promise<JobRow> {
  const j = JOB_ID.test(id) ? await ft.store.getJob(id) : undefined;
  if (!j) throw jobNotFound(id);
  return j;
}

export function jobObject(j: JobRow) {
  return {
    object: 'fine_tuning.job' as const,
    id: j.id,
    model: j.model,
    created_at: j.created_at,
    finished_at: j.finished_at,
    fine_tuned_model: j.fine_tuned_model,
    organization_id: 'org-scratchgpt',
    result_files: [] as string[],
    status: j.status,
    validation_file: j.validation_file,
    training_file: j.training_file,
    hyperparameters: j.hyperparameters,
    trained_tokens: j.trained_tokens,
    error: j.error,
    seed: j.seed,
    estimated_finish: j.estimated_finish,
    integrations: [] as unknown[],
    metadata: j.metadata,
    method: j.method,
    user_provided_suffix: j.suffix,
  };
}

function eventObject(e: EventRow) {
  return { object: 'fine_tuning.job.event' as const, id: eventId(e.job_id, e.seq), created_at: e.created_at, level: e.level, message: e.message, data: e.data ?? {}, type: e.type };
}

function checkpointObject(job: JobRow, c: CheckpointRow) {
  return {
    object: 'fine_tuning.job.checkpoint' as const,
    id: checkpointId(job.id, c.step),
    created_at: c.created_at,
    fine_tuned_model_checkpoint: checkpointModelId(fineTunedModelId(job.model, job.suffix, job.id), c.step),
    fine_tuning_job_id: job.id,
    metrics: c.metrics,
    step_number: c.step,
  };
}

function list<T extends { id: string }>(data: T[], has_more: boolean) {
  return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more };
}

/** A file named in the request: it must exist and hold fine-tuning data. */
async function requestFile(ft: FineTuning, id: string, param: 'training_file' | 'validation_file'): Promise<FileRow> {
  const f = FILE_ID.test(id) ? await ft.store.getFile(id) : undefined;
  if (!f) throw badRequest(`Invalid ${param}: no file with id '${id}' (upload it with POST /v1/files first).`, param, 'file_not_found');
  if (f.purpose !== 'fine-tune') throw badRequest(`Invalid ${param}: file ${id} has purpose '${f.purpose}', not 'fine-tune'.`, param, 'invalid_file_purpose');
  return f;
}

/** The request, checked against the files and the base model, as the row to store. */
async function resolveJob(ft: FineTuning, models: ModelRegistry, b: CreateJob) {
  if (b.integrations?.length) throw badRequest('Integrations (Weights & Biases) are not supported by this server.', 'integrations');
  const m = b.method;
  if (m && m.type !== 'supervised') throw badRequest(`Only supervised fine-tuning is supported; method.type '${m.type}' is not.`, 'method.type');
  if (m && (m.dpo !== undefined || m.reinforcement !== undefined)) throw badRequest("Only 'method.supervised' settings apply to supervised fine-tuning.", m.dpo !== undefined ? 'method.dpo' : 'method.reinforcement');
  if (b.hyperparameters && m?.supervised?.hyperparameters) {
    throw badRequest("Give hyperparameters in 'method.supervised.hyperparameters' or in the deprecated top-level 'hyperparameters', not both.", 'hyperparameters');
  }
  const hp = m?.supervised?.hyperparameters ?? b.hyperparameters ?? {};
  const s = m?.scratchgpt ?? {};
  const sParam = (k: string) => `method.scratchgpt.${k}`;

  const base = models.info(b.model);
  if (!base) throw modelNotFound(b.model);
  if (base.kind === 'classifier') throw badRequest(`The model '${b.model}' is a classifier; fine-tune a language model instead.`, 'model', 'invalid_base_model');

  const train = await requestFile(ft, b.training_file, 'training_file');
  const valid = b.validation_file ? await requestFile(ft, b.validation_file, 'validation_file') : undefined;
  const isClassification = (f: FileRow) => f.format === 'classification';
  const task = s.task ?? (isClassification(train) ? 'classification' : 'instruction');
  const kind = (f: FileRow) => (isClassification(f) ? 'classification records ({"text", "label"})' : `instruction records (${f.format})`);
  for (const [f, param] of [[train, 'training_file'], [valid, 'validation_file']] as const) {
    if (f && isClassification(f) !== (task === 'classification')) {
      throw badRequest(`Invalid ${param}: file ${f.id} holds ${kind(f)}, which a '${task}' job cannot train on.`, param, 'invalid_file_format');
    }
  }
  const labels = task === 'classification' ? train.labels! : undefined;
  if (labels && labels.length < 2) throw badRequest(`Invalid training_file: a classifier needs at least 2 distinct labels; file ${train.id} has only '${labels[0]}'.`, 'training_file', 'invalid_file_format');
  if (labels && valid) {
    const unknown = valid.labels!.filter((l) => !labels.includes(l));
    if (unknown.length) throw badRequest(`Invalid validation_file: labels ${unknown.map((l) => `'${l}'`).join(', ')} do not occur in the training file.`, 'validation_file', 'invalid_file_format');
  }

  const method = s.method ?? D.method[task];
  const only = (key: keyof typeof s, wanted: string) => {
    if (s[key] !== undefined && method !== wanted) throw badRequest(`'${key}' only applies to method '${wanted}', not '${method}'.`, sParam(key));
  };
  only('last_blocks', 'last_blocks');
  only('lora_rank', 'lora');
  only('lora_alpha', 'lora');
  if (s.mask_prompt !== undefined && task !== 'instruction') throw badRequest("'mask_prompt' only applies to instruction tasks.", sParam('mask_prompt'));
  const { nLayer, contextLength } = base.config;
  if (s.last_blocks !== undefined && s.last_blocks > nLayer) throw badRequest(`'last_blocks' is ${s.last_blocks}, but '${b.model}' has ${nLayer} blocks.`, sParam('last_blocks'));
  if (s.max_length !== undefined && s.max_length > contextLength) {
    throw badRequest(`'max_length' is ${s.max_length}, more than the ${contextLength}-token context of '${b.model}'.`, sParam('max_length'));
  }

  // "auto" and absent are the shared defaults (src/train/finetune-defaults.ts).
  const n_epochs = hp.n_epochs === undefined || hp.n_epochs === 'auto' ? D.epochs[task] : hp.n_epochs;
  // A batch larger than the data would only be padding: at most one batch of every record.
  const batch_size = Math.min(hp.batch_size === undefined || hp.batch_size === 'auto' ? D.batchSize : hp.batch_size, train.records);
  const learning_rate_multiplier = hp.learning_rate_multiplier === undefined || hp.learning_rate_multiplier === 'auto' ? 1 : hp.learning_rate_multiplier;
  const settings: ScratchSettings = {
    task,
    method,
    ...(method === 'last_blocks' ? { last_blocks: s.last_blocks ?? D.lastBlocks } : {}),
    ...(method === 'lora' ? { lora_rank: s.lora_rank ?? D.lora.rank, lora_alpha: s.lora_alpha ?? D.lora.alpha } : {}),
    ...(task === 'instruction' ? { mask_prompt: s.mask_prompt ?? D.maskPrompt } : {}),
    ...(s.max_length !== undefined ? { max_length: s.max_length } : {}),
    weight_decay: s.weight_decay ?? D.weightDecay,
    // The multiplier scales the method's default rate, as OpenAI's scales its base model's.
    learning_rate: D.lr[method] * learning_rate_multiplier,
    ...(s.checkpoint_every_steps !== undefined ? { checkpoint_every_steps: s.checkpoint_every_steps } : {}),
    ...(labels ? { labels } : {}),
  };
  const resolved = { n_epochs, batch_size, learning_rate_multiplier };
  return {
    model: b.model,
    training_file: train.id,
    validation_file: valid?.id ?? null,
    hyperparameters: resolved,
    method: { type: 'supervised', supervised: { hyperparameters: resolved }, scratchgpt: settings },
    seed: b.seed ?? Math.floor(Math.random() * 2 ** 31), // OpenAI's: one drawn per job, returned in the job
    suffix: b.suffix ?? null,
    metadata: b.metadata ?? null,
  };
}

const JOB_ID_PARAM = pathParam('id', 'The fine-tuning job id (ftjob-…)');

export const fineTuning = new Hono<AppEnv>()
  .post('/fine_tuning/jobs', doc('Fine-tuning', 'Create a fine-tuning job'), json(createJobRequest), async (c) => {
    const ft = service(c);
    const row = await resolveJob(ft, c.var.models, c.req.valid('json'));
    const id = newJobId();
    const job = await ft.store.transaction(async (tx) => {
      const j = await tx.insertJob({ id, status: 'validating_files', ...row });
      await tx.addEvent(id, { message: `Created fine-tuning job: ${id}` });
      await tx.addEvent(id, { message: `Validating training file: ${row.training_file}${row.validation_file ? ` and validation file: ${row.validation_file}` : ''}` });
      await tx.notify(JOBS_CHANNEL, id); // every runner sharing the store looks for work
      return j;
    });
    return c.json(jobObject(job));
  })
  .get('/fine_tuning/jobs', doc('Fine-tuning', 'List fine-tuning jobs'), query(pageQuery.extend({ metadata: z.unknown().optional() })), async (c) => {
    const q = c.req.valid('query');
    const page = await service(c).store.listJobs(q);
    return c.json(list(page.data.map(jobObject), page.has_more));
  })
  .get('/fine_tuning/jobs/:id', doc('Fine-tuning', 'Describe a fine-tuning job', { parameters: [JOB_ID_PARAM] }), async (c) => c.json(jobObject(await findJob(service(c), c.req.param('id')))))
  .post('/fine_tuning/jobs/:id/cancel', doc('Fine-tuning', 'Cancel a fine-tuning job', { parameters: [JOB_ID_PARAM] }), async (c) => {
    const ft = service(c);
    const job = await findJob(ft, c.req.param('id'));
    if (TERMINAL.includes(job.status)) {
      throw badRequest(`Job ${job.id} has already ${job.status === 'cancelled' ? 'been cancelled' : job.status}: only a job that has not finished can be cancelled.`, 'fine_tuning_job_id', 'job_not_cancellable');
    }
    return c.json(jobObject(await ft.runner.cancel(job.id)));
  })
  .get('/fine_tuning/jobs/:id/events', doc('Fine-tuning', "List a job's events", { parameters: [JOB_ID_PARAM] }), query(pageQuery), async (c) => {
    const ft = service(c);
    const job = await findJob(ft, c.req.param('id'));
    const q = c.req.valid('query');
    const page = await ft.store.listEvents(job.id, { before: pageBefore(EVENT_ID, q.after, job, 'an event'), limit: q.limit });
    return c.json(list(page.data.map(eventObject), page.has_more));
  })
  .get('/fine_tuning/jobs/:id/checkpoints', doc('Fine-tuning', "List a job's checkpoints", { parameters: [JOB_ID_PARAM] }), query(pageQuery), async (c) => {
    const ft = service(c);
    const job = await findJob(ft, c.req.param('id'));
    const q = c.req.valid('query');
    const page = await ft.store.listCheckpoints(job.id, { before: pageBefore(CHECKPOINT_ID, q.after, job, 'a checkpoint'), limit: q.limit });
    return c.json(list(page.data.map((cp) => checkpointObject(job, cp)), page.has_more));
  });
