// The Batch API end to end on 127.0.0.1, in process, through the official `openai` client: a
// batch's results equal the same requests made directly, a request the route refuses goes to the
// error file, a malformed input file fails the batch line by line, cancel keeps what finished, and
// lists page. Then the runner alone, with a dispatch of the test's own: a line waits while
// interactive work fills its model's slots; and a store from before batches opens with its rows.
// (Restarts and kill -9: batches-restart.test.ts.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FineTuning } from '../src/jobs/service.js';
import Database from 'better-sqlite3';
import { JobStore } from '../src/jobs/store.js';
import type { ServedModels } from '../src/jobs/served-models.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { startServer, type RunningServer } from '../src/server/server.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, chatTemplate: 'alpaca' };

let tmp: string;
let dataDir: string;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'batches-test-'));
  dataDir = path.join(tmp, 'data');
  const tinyDir = path.join(tmp, 'tiny');
  saveCheckpoint(tinyDir, cfg, randomInit(cfg, 3));
  server = await startServer({ modelDirs: [tinyDir], port: 0, slots: 2, queue: 8, threads: 1, dataDir });
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await server?.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Line {
  custom_id: string;
  method: string;
  url: string;
  body: Record<string, unknown>;
}

interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string | null; body: any } | null;
  error: { code: string; message: string } | null;
}

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const completionLine = (id: string, body: Record<string, unknown>): Line => ({ custom_id: id, method: 'POST', url: '/v1/completions', body: { model: 'tiny', ...body } });

async function upload(content: string) {
  return client.files.create({ file: await toFile(Buffer.from(content), 'requests.jsonl'), purpose: 'batch' });
}

/** Polls until the batch ends, however long that takes (the test's own timeout bounds it). */
async function finished(id: string): Promise<OpenAI.Batches.Batch> {
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return b;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function lines(fileId: string | null | undefined): Promise<OutputLine[]> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as OutputLine);
}

/** A response without what differs between two runs of the same request (ids, times, and how much of the prompt the prefix cache had). */
const stable = (body: any) => ({ ...body, id: undefined, created: undefined, usage: { ...body.usage, prompt_tokens_details: undefined } });

describe('batches through the openai client', () => {
  it('runs completions like direct requests, and a refused line goes to the error file', async () => {
    const good = [0, 1, 2].map((i) => completionLine(`good-${i}`, { prompt: `Count with me: ${i},`, max_tokens: 8, temperature: 0, logprobs: 2 }));
    const refused = completionLine('bad-param', { prompt: 'x', max_tokens: 4, frobnicate: true });
    const unknown = completionLine('bad-model', { model: 'nope', prompt: 'x', max_tokens: 4 });
    const input = await upload(jsonl([good[0], refused, good[1], unknown, good[2]]));
    expect(input).toMatchObject({ purpose: 'batch', status: 'processed' });

    const created = await client.batches.create({ input_file_id: input.id, endpoint: '/v1/completions', completion_window: '24h', metadata: { run: 'one' } });
    expect(created).toMatchObject({ object: 'batch', endpoint: '/v1/completions', input_file_id: input.id, completion_window: '24h', metadata: { run: 'one' } });
    expect(created.id).toMatch(/^batch_[A-Za-z0-9]{24}$/);
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    const done = await finished(created.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 5, completed: 3, failed: 2 });
    for (const at of [done.in_progress_at, done.finalizing_at, done.completed_at]) expect(at).toBeGreaterThanOrEqual(done.created_at);

    const output = await lines(done.output_file_id);
    expect(output.map((l) => l.custom_id)).toEqual(['good-0', 'good-1', 'good-2']);
    let promptTokens = 0;
    let completionTokens = 0;
    for (const [i, l] of output.entries()) {
      expect(l.id).toMatch(/^batch_req_/);
      expect(l.error).toBeNull();
      expect(l.response!.status_code).toBe(200);
      expect(l.response!.request_id).toEqual(expect.any(String));
      const direct = await client.completions.create(good[i]!.body as unknown as OpenAI.CompletionCreateParamsNonStreaming);
      expect(stable(l.response!.body)).toEqual(stable(direct));
      promptTokens += direct.usage!.prompt_tokens;
      completionTokens += direct.usage!.completion_tokens;
    }
    expect(done.usage).toMatchObject({ input_tokens: promptTokens, output_tokens: completionTokens, total_tokens: promptTokens + completionTokens });

    const errors = await lines(done.error_file_id);
    expect(errors.map((l) => [l.custom_id, l.response!.status_code, l.error])).toEqual([
      ['bad-param', 400, null],
      ['bad-model', 404, null],
    ]);
    expect(errors[0]!.response!.body.error).toMatchObject({ type: 'invalid_request_error' });
    expect(errors[0]!.response!.body.error.message).toMatch(/frobnicate/);
    expect(errors[1]!.response!.body.error.code).toBe('model_not_found');

    for (const id of [done.output_file_id!, done.error_file_id!]) expect(await client.files.retrieve(id)).toMatchObject({ purpose: 'batch_output', status: 'processed' });
    expect(fs.readdirSync(path.join(dataDir, 'batches'))).toEqual([]); // the parts went once they became files
  });

  it('runs chat completions like direct requests (seeded sampling), with no error file when nothing fails', async () => {
    const body = (i: number) => ({ model: 'tiny', messages: [{ role: 'user', content: `Say something about ${i}.` }], max_tokens: 6, temperature: 0.9, seed: 40 + i });
    const input = await upload(jsonl([0, 1].map((i) => ({ custom_id: `chat-${i}`, method: 'POST', url: '/v1/chat/completions', body: body(i) }))));
    const done = await finished((await client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
    expect([done.status, done.request_counts, done.error_file_id]).toEqual(['completed', { total: 2, completed: 2, failed: 0 }, null]);
    const output = await lines(done.output_file_id);
    expect(output.map((l) => l.custom_id)).toEqual(['chat-0', 'chat-1']);
    for (const [i, l] of output.entries()) {
      const direct = await client.chat.completions.create(body(i) as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(stable(l.response!.body)).toEqual(stable(direct));
    }
  });

  it('runs embeddings like direct requests', async () => {
    const body = (i: number) => ({ model: 'tiny', input: [`first text ${i}`, `second text ${i}`] });
    const input = await upload(jsonl([0, 1].map((i) => ({ custom_id: `emb-${i}`, method: 'POST', url: '/v1/embeddings', body: body(i) }))));
    const done = await finished((await client.batches.create({ input_file_id: input.id, endpoint: '/v1/embeddings', completion_window: '24h' })).id);
    expect([done.status, done.request_counts]).toEqual(['completed', { total: 2, completed: 2, failed: 0 }]);
    const output = await lines(done.output_file_id);
    let promptTokens = 0;
    for (const [i, l] of output.entries()) {
      // encoding_format 'float' in both: the client asks for base64 unless told otherwise
      const direct = await client.embeddings.create({ ...body(i), encoding_format: 'float' });
      expect(l.response!.body.data.map((d: { embedding: number[] }) => d.embedding)).toEqual(direct.data.map((d) => d.embedding));
      promptTokens += direct.usage.prompt_tokens;
    }
    expect(done.usage).toMatchObject({ input_tokens: promptTokens, output_tokens: 0 });
  });

  it('fails a malformed input file before running any line, naming each bad line', async () => {
    const ok = completionLine('a', { prompt: 'x', max_tokens: 1 });
    const content = [
      JSON.stringify(ok),
      '{"custom_id": "b", "method": "POST", ',
      JSON.stringify({ ...ok, custom_id: 'a' }),
      JSON.stringify({ ...ok, custom_id: 'c', url: '/v1/chat/completions' }),
      JSON.stringify({ ...ok, custom_id: 'd', method: 'GET' }),
      JSON.stringify({ ...ok, custom_id: undefined }),
      JSON.stringify({ ...ok, custom_id: 'e', body: { ...ok.body, stream: true } }),
      JSON.stringify({ ...ok, custom_id: 'f', url: '/v1/moderations' }),
    ].join('\n');
    const done = await finished((await client.batches.create({ input_file_id: (await upload(content)).id, endpoint: '/v1/completions', completion_window: '24h' })).id);
    expect(done.status).toBe('failed');
    expect(done.failed_at).toEqual(expect.any(Number));
    expect(done.errors!.data!.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, 'invalid_json_line', null],
      [3, 'duplicate_custom_id', 'custom_id'],
      [4, 'mismatched_endpoint', 'url'],
      [5, 'invalid_method', 'method'],
      [6, 'missing_required_parameter', 'custom_id'],
      [7, 'invalid_request', 'body.stream'],
      [8, 'invalid_url', 'url'],
    ]);
    expect([done.request_counts, done.output_file_id, done.error_file_id]).toEqual([{ total: 0, completed: 0, failed: 0 }, null, null]);
  });

  it('refuses a batch it cannot run with a 400 naming the parameter', async () => {
    const ftFile = await client.files.create({ file: await toFile(Buffer.from(jsonl([{ prompt: 'a', completion: 'b' }])), 'train.jsonl'), purpose: 'fine-tune' });
    const input = await upload(jsonl([completionLine('a', { prompt: 'x', max_tokens: 1 })]));
    const post = async (body: Record<string, unknown>) => {
      const r = await fetch(`${server.url}/v1/batches`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ endpoint: '/v1/completions', completion_window: '24h', ...body }) });
      return [r.status, ((await r.json()) as { error: { param: string | null } }).error.param];
    };
    expect(await post({ input_file_id: ftFile.id })).toEqual([400, 'input_file_id']);
    expect(await post({ input_file_id: 'file-AAAAAAAAAAAAAAAAAAAAAAAA' })).toEqual([400, 'input_file_id']);
    expect(await post({ input_file_id: input.id, completion_window: '48h' })).toEqual([400, 'completion_window']);
    expect(await post({ input_file_id: input.id, endpoint: '/v1/moderations' })).toEqual([400, 'endpoint']);
    expect(await post({ input_file_id: input.id, output_expires_after: { anchor: 'created_at', seconds: 3600 } })).toEqual([400, 'output_expires_after']);
    // a fine-tuning job cannot train on a batch input
    const job = await fetch(`${server.url}/v1/fine_tuning/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', training_file: input.id }) });
    expect(job.status).toBe(400);
    await expect(client.batches.retrieve('batch_AAAAAAAAAAAAAAAAAAAAAAAA')).rejects.toMatchObject({ status: 404 });
  });

  it('cancels a running batch: the lines that finished become its files, the rest never run', async () => {
    const input = await upload(jsonl(Array.from({ length: 200 }, (_, i) => completionLine(`n-${i}`, { prompt: `Line ${i}`, max_tokens: 64, temperature: 0 }))));
    const batch = await client.batches.create({ input_file_id: input.id, endpoint: '/v1/completions', completion_window: '24h' });
    let b = batch;
    while (b.request_counts!.completed === 0) b = await client.batches.retrieve(batch.id);
    expect(b.status).toBe('in_progress');
    // its input file must outlive it
    await expect(client.files.delete(input.id)).rejects.toMatchObject({ status: 409 });
    const cancelling = await client.batches.cancel(batch.id);
    expect(['cancelling', 'cancelled']).toContain(cancelling.status);
    expect(cancelling.cancelling_at).toEqual(expect.any(Number));
    const done = await finished(batch.id);
    expect(done.status).toBe('cancelled');
    expect(done.cancelled_at).toEqual(expect.any(Number));
    const { completed, failed, total } = done.request_counts!;
    expect(total).toBe(200);
    expect(completed + failed).toBeLessThan(200);
    const output = await lines(done.output_file_id);
    expect(output.map((l) => l.custom_id)).toEqual(Array.from({ length: completed }, (_, i) => `n-${i}`));
    await expect(client.batches.cancel(batch.id)).rejects.toMatchObject({ status: 409 });
    await client.files.delete(input.id); // finished: no longer held
  });

  it('lists batches newest first, a page at a time', async () => {
    const all = (await client.batches.list({ limit: 100 })).data.map((b) => b.id);
    expect(all.length).toBeGreaterThanOrEqual(4);
    const paged: string[] = [];
    for await (const b of client.batches.list({ limit: 2 })) paged.push(b.id);
    expect(paged).toEqual(all);
    const first = await client.batches.list({ limit: 2 });
    expect([first.data.length, first.has_more]).toEqual([2, true]);
    const next = await client.batches.list({ limit: 2, after: first.data[1]!.id });
    expect(next.data[0]!.id).toBe(all[2]);
  });
});

describe('the batch runner', () => {
  /** The runner's tests send no request to a model: these never serve one. */
  const noModels: ServedModels = {
    info: () => undefined,
    has: () => false,
    isFinetuned: () => false,
    find: () => ({ ready: Promise.resolve() }),
    add: () => ({ ready: Promise.resolve() }),
    addOnDemand: () => {},
    remove: async () => {},
  };

  it('starts a line only while its model has room, so interactive requests go first', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'runner-'));
    const ft = await FineTuning.open(noModels, { dataDir: dir, log: () => {} });
    try {
      const input = await ft.saveFile(new TextEncoder().encode(jsonl([0, 1, 2].map((i) => completionLine(`r-${i}`, { prompt: 'x' })))), { filename: 'in.jsonl', purpose: 'batch', format: 'jsonl', records: 3, labels: null });
      let busy = true;
      const sent: string[] = [];
      let busyChecks = 0;
      ft.batches.attach({
        busy: (model) => {
          expect(model).toBe('tiny');
          busyChecks++;
          return busy;
        },
        request: async (url, body) => {
          expect(busy).toBe(false);
          sent.push(url);
          return Response.json({ ok: (body as { prompt: string }).prompt }, { headers: { 'x-request-id': 'req-1' } });
        },
      });
      const b = await ft.store.insertBatch({ id: 'batch_AAAAAAAAAAAAAAAAAAAAAAAB', endpoint: '/v1/completions', input_file_id: input.id, completion_window: '24h', metadata: null, window_seconds: 3600 });
      ft.batches.kick();
      while (busyChecks < 10) await new Promise((r) => setTimeout(r, 5));
      expect([sent, (await ft.store.getBatch(b.id))!.status]).toEqual([[], 'in_progress']);
      // a batch queued behind the running one is cancelled at once, not when its turn comes
      const queued = await ft.store.insertBatch({ id: 'batch_AAAAAAAAAAAAAAAAAAAAAAAC', endpoint: '/v1/completions', input_file_id: input.id, completion_window: '24h', metadata: null, window_seconds: 3600 });
      ft.batches.kick();
      while ((await ft.store.getBatch(queued.id))!.status === 'validating') await new Promise((r) => setTimeout(r, 5));
      expect(await ft.batches.cancel(queued.id)).toMatchObject({ status: 'cancelled', output_file_id: null, error_file_id: null, total: 3, completed: 0 });
      busy = false;
      while ((await ft.store.getBatch(b.id))!.status !== 'completed') await new Promise((r) => setTimeout(r, 5));
      expect(sent).toEqual(['/v1/completions', '/v1/completions', '/v1/completions']);
      const out = (await ft.store.getBatch(b.id))!;
      expect(new TextDecoder().decode(ft.dirs.readFile(out.output_file_id!)).split('\n').filter(Boolean).map((l) => JSON.parse(l).response.request_id)).toEqual(['req-1', 'req-1', 'req-1']);
    } finally {
      await ft.close();
    }
  });

  it('expires a batch whose window has passed: the lines not run go to the error file as batch_expired', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'expire-'));
    const ft = await FineTuning.open(noModels, { dataDir: dir, log: () => {} });
    try {
      const input = await ft.saveFile(new TextEncoder().encode(jsonl([0, 1, 2].map((i) => completionLine(`r-${i}`, { prompt: 'x' })))), { filename: 'in.jsonl', purpose: 'batch', format: 'jsonl', records: 3, labels: null });
      const sent: string[] = [];
      ft.batches.attach({ busy: () => false, request: async (url) => (sent.push(url), Response.json({})) });
      // A window of 0 s has passed before the first line could start.
      const b = await ft.store.insertBatch({ id: 'batch_AAAAAAAAAAAAAAAAAAAAAAAD', endpoint: '/v1/completions', input_file_id: input.id, completion_window: '24h', metadata: null, window_seconds: 0 });
      ft.batches.kick();
      while (!['expired', 'completed', 'failed'].includes((await ft.store.getBatch(b.id))!.status)) await new Promise((r) => setTimeout(r, 5));
      const done = (await ft.store.getBatch(b.id))!;
      expect(sent).toEqual([]);
      expect(done).toMatchObject({ status: 'expired', output_file_id: null, total: 3, completed: 0, failed: 3 });
      expect(done.expired_at).not.toBeNull();
      const errors = new TextDecoder().decode(ft.dirs.readFile(done.error_file_id!)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { custom_id: string; response: unknown; error: { code: string } });
      expect(errors.map((e) => [e.custom_id, e.response, e.error.code])).toEqual(['r-0', 'r-1', 'r-2'].map((id) => [id, null, 'batch_expired']));
    } finally {
      await ft.close();
    }
  });

  it('opens a version-1 store (before batches) keeping its rows and adding the batches table', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'v1-'));
    const file = path.join(dir, 'scratchgpt.db');
    // A store as version 1 wrote it: every table but batches.
    const v1 = new Database(file);
    v1.exec(`
      CREATE TABLE files (
        id TEXT PRIMARY KEY, bytes INTEGER NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,
        created_at INTEGER NOT NULL, status TEXT NOT NULL, path TEXT NOT NULL, format TEXT NOT NULL,
        records INTEGER NOT NULL, labels TEXT
      );
      CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
        model TEXT NOT NULL, fine_tuned_model TEXT, training_file TEXT NOT NULL, validation_file TEXT,
        hyperparameters TEXT NOT NULL, method TEXT NOT NULL, seed INTEGER NOT NULL, suffix TEXT,
        metadata TEXT, error TEXT, created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
        trained_tokens INTEGER, estimated_finish INTEGER
      );
      CREATE INDEX jobs_status ON jobs(status);
      CREATE TABLE job_events (
        job_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at INTEGER NOT NULL, level TEXT NOT NULL,
        type TEXT NOT NULL, message TEXT NOT NULL, data TEXT, PRIMARY KEY (job_id, seq)
      );
      CREATE TABLE job_checkpoints (
        job_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, created_at INTEGER NOT NULL,
        metrics TEXT NOT NULL, dir TEXT, PRIMARY KEY (job_id, step)
      );
      CREATE TABLE models (
        id TEXT PRIMARY KEY, job_id TEXT NOT NULL, dir TEXT NOT NULL, created_at INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
      );
    `);
    v1.pragma('user_version = 1');
    v1.prepare('INSERT INTO files (id, bytes, filename, purpose, created_at, status, path, format, records, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      'file-AAAAAAAAAAAAAAAAAAAAAAAA', 1, 'a.jsonl', 'fine-tune', 1_700_000_000, 'processed', 'files/file-AAAAAAAAAAAAAAAAAAAAAAAA', 'alpaca', 1, null,
    );
    v1.close();
    const store = await JobStore.open({ dataDir: dir, create: false });
    try {
      expect((await store.getFile('file-AAAAAAAAAAAAAAAAAAAAAAAA'))?.filename).toBe('a.jsonl');
      expect(await store.listBatches({ limit: 10 })).toEqual({ data: [], has_more: false });
    } finally {
      await store.close();
    }
    const reopened = new Database(file, { readonly: true });
    try {
      expect(reopened.pragma('user_version', { simple: true })).toBeGreaterThanOrEqual(2);
    } finally {
      reopened.close();
    }
  });
});
