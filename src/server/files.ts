// OpenAI's Files API, for fine-tuning datasets and batches:
//   POST /v1/files (multipart: file, purpose=fine-tune|batch) · GET /v1/files · GET /v1/files/{id}
//   GET /v1/files/{id}/content · DELETE /v1/files/{id}
// A fine-tuning upload is parsed (parseDataset) before it is stored: a bad file is a 400 naming the
// line and field, and a stored file is always a valid dataset ('processed'). A batch input only
// has to be UTF-8 text here: its lines are checked against the batch's endpoint when a batch is
// created from it (src/jobs/batch-input.ts). Batch results (purpose 'batch_output') are written by
// the server, never uploaded. Stored atomically (temp file + rename), then recorded.
import type { Context } from 'hono';
import { Hono } from 'hono';
import { z } from 'zod';
import { DatasetError, parseDataset } from '../datasets/index.js';
import { MAX_BATCH_LINES } from '../jobs/batch-input.js';
import { FILE_ID } from '../jobs/ids.js';
import type { FineTuning } from '../jobs/service.js';
import type { FileRow } from '../jobs/store.js';
import type { AppEnv } from './env.js';
import { apiError, badRequest } from './errors.js';
import { limitBody } from './middleware/body-limit.js';
import { doc, pathParam } from './openapi.js';
import { query } from './validate.js';

/** The service, or a 404 saying how to turn it on. */
export function service(c: Context<AppEnv>): FineTuning {
  const ft = c.var.finetuning;
  if (!ft) throw apiError(404, 'Fine-tuning is not enabled on this server: start it with a data folder (scratchgpt serve --data-dir DIR).', { code: 'fine_tuning_disabled' });
  const problem = ft.storageProblem();
  if (problem) throw apiError(503, `Storage is unavailable: ${problem}.`, { code: 'storage_unavailable' });
  return ft;
}

export function fileObject(f: FileRow) {
  return { id: f.id, object: 'file' as const, bytes: f.bytes, created_at: f.created_at, filename: f.filename, purpose: f.purpose, status: f.status, status_details: null, expires_at: null };
}

const fileNotFound = (id: string) => apiError(404, `No such File object: ${id}`, { param: 'file_id', code: 'file_not_found' });

/** The stored file `id`, or a 404 (ids are checked against the id pattern before any lookup). */
export async function findFile(ft: FineTuning, id: string): Promise<FileRow> {
  const f = FILE_ID.test(id) ? await ft.store.getFile(id) : undefined;
  if (!f) throw fileNotFound(id);
  return f;
}

const listQuery = z.object({
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  order: z.enum(['asc', 'desc']).default('desc'),
  purpose: z.string().optional(),
});

/** POST /v1/files's multipart body (parsed by hand below: hono-openapi cannot see it). */
const UPLOAD = {
  required: true,
  content: {
    'multipart/form-data': {
      schema: {
        type: 'object' as const,
        required: ['file', 'purpose'],
        additionalProperties: false,
        properties: {
          file: {
            type: 'string' as const,
            format: 'binary',
            description: 'fine-tune: JSONL of chat, prompt/completion, instruction or {"text", "label"} records; batch: JSONL of {"custom_id", "method", "url", "body"} requests',
          },
          purpose: { type: 'string' as const, enum: ['fine-tune', 'batch'] },
        },
      },
    },
  },
};
const FILE_ID_PARAM = pathParam('id', 'The file id (file-…)');

const MULTIPART_SLACK = 64 * 1024; // boundaries and the other fields, on top of the file itself

/** What a fine-tuning upload records of its dataset, or the 400 naming its first problem. */
function datasetFields(bytes: Uint8Array, filename: string): Pick<FileRow, 'format' | 'records' | 'labels'> {
  try {
    const dataset = parseDataset(bytes, filename);
    return { format: dataset.format, records: dataset.records.length, labels: dataset.format === 'classification' ? dataset.labels : null };
  } catch (e) {
    if (e instanceof DatasetError) throw badRequest(`Invalid file: ${e.message}`, 'file', 'invalid_file');
    throw e;
  }
}

/** What a batch input records (its non-blank lines), or a 400 when it cannot be one. */
function batchInputFields(bytes: Uint8Array): Pick<FileRow, 'format' | 'records' | 'labels'> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badRequest('Invalid file: a batch input must be UTF-8 JSONL text.', 'file', 'invalid_file');
  }
  const records = text.split('\n').filter((l) => l.trim()).length;
  if (!records) throw badRequest('Invalid file: the batch input holds no requests.', 'file', 'invalid_file');
  if (records > MAX_BATCH_LINES) throw badRequest(`Invalid file: ${records} requests; a batch may hold at most ${MAX_BATCH_LINES}.`, 'file', 'invalid_file');
  return { format: 'jsonl', records, labels: null };
}

/**
 * A safe display name: the last path component, at most 255 characters, without control characters
 * or bidi controls (U+202E can make 'gpj.exe' display as 'exe.jpg').
 */
function cleanName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  const clean = base.replace(/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '');
  return Array.from(clean.replace(/\p{Cs}/gu, '\uFFFD')).slice(0, 255).join('') || 'upload.jsonl'; // whole code points, no lone surrogates
}

/**
 * Content-Disposition for a download (RFC 6266): an ASCII fallback name for old clients, and the
 * exact name as UTF-8 in `filename*` (RFC 8187). Header values must be bytes: a raw non-ASCII name is a 500.
 * @example attachment('训练.jsonl') // attachment; filename="__.jsonl"; filename*=UTF-8''%E8%AE%AD%E7%BB%83.jsonl
 */
export function attachment(filename: string): string {
  const fallback = filename.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^\x20-\x7e]|["\\%]/gu, '_');
  if (fallback === filename) return `attachment; filename="${fallback}"`;
  // encodeURIComponent leaves ' ( ) * unescaped; RFC 8187's attr-char does not allow them
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

export function files(maxFileBytes: number) {
  const tooLarge = () =>
    apiError(413, `File too large: the limit is ${maxFileBytes} bytes (scratchgpt serve --max-file-bytes).`, { param: 'file', code: 'request_too_large' });
  return new Hono<AppEnv>()
    .post('/files', doc('Files', 'Upload a dataset for fine-tuning or the requests of a batch', { requestBody: UPLOAD }), limitBody(maxFileBytes + MULTIPART_SLACK, tooLarge), async (c) => {
      const ft = service(c);
      const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'multipart/form-data') throw badRequest(`Content-Type must be multipart/form-data, got '${type || 'none'}'.`);
      let form: Record<string, unknown>;
      try {
        form = await c.req.parseBody({ all: true });
      } catch {
        throw badRequest('The multipart body could not be parsed.');
      }
      for (const key of Object.keys(form)) if (key !== 'file' && key !== 'purpose') throw badRequest(`Unrecognized request argument supplied: ${key}`, key);
      const file = form.file;
      if (!(file instanceof File)) throw badRequest(Array.isArray(file) ? "Give one 'file' per upload." : "Missing 'file': upload it as a multipart file part.", 'file');
      const purpose = form.purpose;
      if (typeof purpose !== 'string') throw badRequest("Missing 'purpose': this server accepts 'fine-tune' and 'batch'.", 'purpose');
      if (purpose !== 'fine-tune' && purpose !== 'batch') throw badRequest(`Invalid 'purpose' '${purpose}': this server stores fine-tuning data ('fine-tune') and batch inputs ('batch').`, 'purpose');
      if (file.size > maxFileBytes) throw tooLarge();
      const filename = cleanName(file.name);
      const bytes = new Uint8Array(await file.arrayBuffer());
      const row = await ft.saveFile(bytes, { filename, purpose, ...(purpose === 'batch' ? batchInputFields(bytes) : datasetFields(bytes, filename)) });
      return c.json(fileObject(row));
    })
    .get('/files', doc('Files', 'List the uploaded files'), query(listQuery), async (c) => {
      const q = c.req.valid('query');
      const page = await service(c).store.listFiles(q);
      const data = page.data.map(fileObject);
      return c.json({ object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.has_more });
    })
    .get('/files/:id', doc('Files', 'Describe a file', { parameters: [FILE_ID_PARAM] }), async (c) => c.json(fileObject(await findFile(service(c), c.req.param('id')))))
    .get('/files/:id/content', doc('Files', "Download a file's content", { parameters: [FILE_ID_PARAM], responses: { 200: { description: 'The file as uploaded', content: { 'application/octet-stream': {} } } } }), async (c) => {
      const ft = service(c);
      const f = await findFile(ft, c.req.param('id'));
      const bytes = await ft.blobs.read(f.id);
      return c.body(bytes, 200, { 'Content-Type': 'application/octet-stream', 'Content-Disposition': attachment(f.filename) });
    })
    .delete('/files/:id', doc('Files', 'Delete a file', { parameters: [FILE_ID_PARAM] }), async (c) => {
      const ft = service(c);
      const f = await findFile(ft, c.req.param('id'));
      const users = await ft.store.jobsUsingFile(f.id);
      const batchUsers = await ft.store.batchesUsingFile(f.id);
      if (users.length || batchUsers.length) {
        const what = users.length ? `fine-tuning job ${users.join(', ')}` : `batch ${batchUsers.join(', ')}`;
        throw apiError(409, `File ${f.id} is used by ${what}, which has not finished; cancel it or wait for it to end first.`, {
          param: 'file_id',
          code: 'file_in_use',
        });
      }
      await ft.deleteFile(f.id);
      return c.json({ id: f.id, object: 'file' as const, deleted: true });
    });
}
