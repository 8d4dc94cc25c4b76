// The fine-tuning service end to end on 127.0.0.1, in process: the official `openai` client for
// files, jobs, events, checkpoints and the finetuned models; raw fetch for the error cases.
// A tiny random GPT-2 (2 layers of width 32) trains in well under a second per job. The same suite
// runs on each store engine: tests/fine-tuning.test.ts (SQLite) and fine-tuning-postgres.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { freshDatabase } from './helpers/postgres.js';


/** The suite on `engine`'s store (PostgreSQL: a database of its own, dropped after). */
export function fineTuningSuite(engine: 'sqlite' | 'postgres'): void {
  const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

  function tinyModel(dir: string): string {
    saveCheckpoint(dir, cfg, randomInit(cfg, 3));
    return dir;
  }

  const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const alpaca = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ instruction: `Name the number ${i + from}.`, input: '', output: `It is ${i + from}.` }));
  const spam = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? { text: `WIN a prize now ${i}`, label: 'spam' } : { text: `See you at lunch ${i}`, label: 'ham' }));

  let tmp: string;
  let dataDir: string;
  let database: { url: string; drop: () => Promise<void> } | undefined;
  let tinyDir: string;
  let server: RunningServer;
  let client: OpenAI;

  const MAX_FILE_BYTES = 64 * 1024;

  async function start(): Promise<void> {
    server = await startServer({ modelDirs: [tinyDir], port: 0, slots: 2, queue: 8, threads: 1, finetuneThreads: 1, dataDir, databaseUrl: database?.url, maxFileBytes: MAX_FILE_BYTES });
    await server.ready;
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fine-tuning-test-'));
    dataDir = path.join(tmp, 'data');
    if (engine === 'postgres') database = await freshDatabase();
    tinyDir = tinyModel(path.join(tmp, 'tiny'));
    await start();
  });

  afterAll(async () => {
    await server?.shutdown();
    await database?.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function uploadFile(name: string, content: string) {
    return client.files.create({ file: await toFile(Buffer.from(content), name), purpose: 'fine-tune' });
  }

  const TERMINAL = ['succeeded', 'failed', 'cancelled'];

  async function until(check: () => Promise<boolean>, timeoutMs = 40_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function finished(id: string): Promise<OpenAI.FineTuning.FineTuningJob> {
    let job!: OpenAI.FineTuning.FineTuningJob;
    await until(async () => TERMINAL.includes((job = await client.fineTuning.jobs.retrieve(id)).status));
    return job;
  }

  type Method = OpenAI.FineTuning.JobCreateParams.Method;
  const scratch = (settings: Record<string, unknown>, hyperparameters: OpenAI.FineTuning.SupervisedHyperparameters = {}): Method =>
    ({ type: 'supervised', supervised: { hyperparameters }, scratchgpt: settings }) as Method;

  async function raw(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
    const init: RequestInit = { method, headers: { ...(body !== undefined && !(body instanceof FormData) ? { 'content-type': 'application/json' } : {}), ...headers } };
    if (body !== undefined) init.body = body instanceof FormData ? body : JSON.stringify(body);
    const res = await fetch(`${server.url}${url}`, init);
    return { status: res.status, body: (await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown> };
  }

  function form(name: string, content: string, purpose = 'fine-tune'): FormData {
    const f = new FormData();
    f.append('purpose', purpose);
    f.append('file', new Blob([content]), name);
    return f;
  }

  describe('files', () => {
    it('uploads, lists, retrieves, downloads and deletes a dataset (OpenAI shapes)', async () => {
      const content = jsonl(alpaca(4));
      const f = await uploadFile('train.jsonl', content);
      expect(f).toMatchObject({ object: 'file', bytes: Buffer.byteLength(content), filename: 'train.jsonl', purpose: 'fine-tune', status: 'processed' });
      expect(f.id).toMatch(/^file-[A-Za-z0-9]{24}$/);
      expect(typeof f.created_at).toBe('number');
      expect((await client.files.retrieve(f.id)).id).toBe(f.id);
      expect((await client.files.list()).data.map((x) => x.id)).toContain(f.id);
      expect(await (await client.files.content(f.id)).text()).toBe(content);
      expect(fs.readFileSync(path.join(dataDir, 'files', f.id), 'utf8')).toBe(content);
      expect(await client.files.delete(f.id)).toEqual({ id: f.id, object: 'file', deleted: true });
      expect(fs.existsSync(path.join(dataDir, 'files', f.id))).toBe(false);
      await expect(client.files.retrieve(f.id)).rejects.toMatchObject({ status: 404 });
    });

    it('pages the list newest first with after/limit/has_more', async () => {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push((await uploadFile(`p${i}.jsonl`, jsonl(alpaca(2, i)))).id);
      const first = await raw('GET', '/v1/files?limit=2');
      const data = first.body.data as { id: string }[];
      expect(data.map((x) => x.id)).toEqual([ids[2], ids[1]]);
      expect(first.body.has_more).toBe(true);
      const next = await raw('GET', `/v1/files?limit=2&after=${ids[1]}`);
      expect((next.body.data as { id: string }[])[0]!.id).toBe(ids[0]);
      const asc = await raw('GET', `/v1/files?order=asc&after=${ids[0]}`);
      expect((asc.body.data as { id: string }[]).map((x) => x.id)).toEqual([ids[1], ids[2]]);
      for (const id of ids) await client.files.delete(id);
    });

    it('bad datasets are 400s whose message names the line and the field', async () => {
      const cases: [string, string, RegExp][] = [
        ['malformed.jsonl', `${JSON.stringify(alpaca(1)[0])}\n{"instruction": "x", "output": \n`, /line 2: malformed JSON/],
        ['missing.jsonl', jsonl([...alpaca(2), { instruction: 'no output here' }]), /line 3: missing field 'output'/],
        ['empty.jsonl', '', /empty file/],
        ['blank.jsonl', '\n\n  \n', /empty file/],
        ['labels.jsonl', jsonl([{ text: 'a', label: 'spam' }, { text: 'b', label: 1 }]), /line 2: field 'label' is an integer but the first label \(line 1\) is a string/],
        ['label-type.jsonl', jsonl([{ text: 'a', label: 'ham' }, { text: 'b', label: ['spam'] }]), /line 2: field 'label' must be a string or an integer, got an array/],
        ['mixed.jsonl', jsonl([alpaca(1)[0], { text: 'a', label: 'x' }]), /line 2: mixed formats/],
      ];
      for (const [name, content, message] of cases) {
        const r = await raw('POST', '/v1/files', form(name, content));
        expect({ name, status: r.status }).toEqual({ name, status: 400 });
        expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param: 'file', code: 'invalid_file' });
        expect(r.body.error.message).toMatch(message);
        expect(r.body.error.message).toContain(name);
      }
      // the openai client surfaces the same message
      await expect(uploadFile('missing.jsonl', jsonl([{ instruction: 'x' }]))).rejects.toThrow(/line 1: missing field 'output'/);
      expect(fs.readdirSync(path.join(dataDir, 'files')).filter((n) => !n.startsWith('.'))).toEqual([]); // nothing stored
    });

    it('refuses a file over the limit (413), a wrong purpose, a missing file part, and non-multipart bodies', async () => {
      const big = jsonl(alpaca(2)) + jsonl([{ instruction: 'x'.repeat(MAX_FILE_BYTES), input: '', output: 'y' }]);
      const tooBig = await raw('POST', '/v1/files', form('big.jsonl', big));
      expect([tooBig.status, tooBig.body.error.code]).toEqual([413, 'request_too_large']);
      expect(tooBig.body.error.message).toMatch(/limit is 65536 bytes/);
      // just over the file limit, within the multipart slack: still a 413 for the file itself
      const over = await raw('POST', '/v1/files', form('over.jsonl', jsonl([{ instruction: 'x'.repeat(MAX_FILE_BYTES - 30), input: '', output: 'y' }])));
      expect([over.status, over.body.error.param]).toEqual([413, 'file']);
      const purpose = await raw('POST', '/v1/files', form('a.jsonl', jsonl(alpaca(1)), 'assistants'));
      expect([purpose.status, purpose.body.error.param]).toEqual([400, 'purpose']);
      const noFile = new FormData();
      noFile.append('purpose', 'fine-tune');
      const missing = await raw('POST', '/v1/files', noFile);
      expect([missing.status, missing.body.error.param]).toEqual([400, 'file']);
      const json = await raw('POST', '/v1/files', { purpose: 'fine-tune' });
      expect(json.status).toBe(400);
      for (const url of ['/v1/files/file-nope', '/v1/files/..%2F..%2Fscratchgpt.db', '/v1/files/file-AAAAAAAAAAAAAAAAAAAAAAAA/content']) {
        const r = await raw('GET', url);
        expect([url, r.status, r.body.error.code]).toEqual([url, 404, 'file_not_found']);
      }
    });
  });

  describe('fine-tuning jobs', () => {
    let ftModel: string;
    let trainingFile: string;

    it('trains an instruction model: create → events → checkpoints → the model answers completions and chat', async () => {
      trainingFile = (await uploadFile('train.jsonl', jsonl(alpaca(12)))).id;
      const validation = await uploadFile('valid.jsonl', jsonl(alpaca(4, 100)));
      const created = await client.fineTuning.jobs.create({
        model: 'tiny',
        training_file: trainingFile,
        validation_file: validation.id,
        suffix: 'numbers',
        seed: 7,
        method: scratch({ checkpoint_every_steps: 2, mask_prompt: true }, { n_epochs: 2, batch_size: 4, learning_rate_multiplier: 20 }),
      });
      expect(created).toMatchObject({ object: 'fine_tuning.job', model: 'tiny', status: 'validating_files', fine_tuned_model: null, training_file: trainingFile, seed: 7, error: null });
      expect(created.id).toMatch(/^ftjob-[A-Za-z0-9]{24}$/);
      expect(created.hyperparameters).toEqual({ n_epochs: 2, batch_size: 4, learning_rate_multiplier: 20 });

      const job = await finished(created.id);
      expect(job.status).toBe('succeeded');
      ftModel = job.fine_tuned_model!;
      expect(ftModel).toBe(`ft:tiny:numbers:${created.id}`);
      expect(job.trained_tokens).toBeGreaterThan(0);
      expect(job.finished_at).toBeGreaterThanOrEqual(job.created_at);
      expect((job.method as unknown as { scratchgpt: Record<string, unknown> }).scratchgpt).toMatchObject({ task: 'instruction', method: 'full', mask_prompt: true, learning_rate: 5e-5 * 20 });

      const events = (await client.fineTuning.jobs.listEvents(created.id, { limit: 100 })).data;
      expect(events.every((e) => e.object === 'fine_tuning.job.event')).toBe(true);
      const messages = events.map((e) => e.message).reverse(); // the API lists newest first
      expect(messages[0]).toBe(`Created fine-tuning job: ${created.id}`);
      expect(messages).toContain('Fine-tuning job started');
      expect(messages.at(-1)).toBe('The job has successfully completed');
      const metrics = events.filter((e) => e.type === 'metrics');
      expect(metrics.map((e) => (e.data as { step: number }).step).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6]); // 12 / 4 × 2 epochs
      expect(metrics[0]!.data).toMatchObject({ step: 6, total_steps: 6 });
      for (const e of metrics) expect(typeof (e.data as { train_loss: number }).train_loss).toBe('number');
      expect(metrics.some((e) => typeof (e.data as { valid_loss?: number }).valid_loss === 'number')).toBe(true);
      // paging: the second page starts after the first page's last event
      const page = await client.fineTuning.jobs.listEvents(created.id, { limit: 3 });
      expect(page.data).toHaveLength(3);
      expect(page.has_more).toBe(true);
      const next = await client.fineTuning.jobs.listEvents(created.id, { limit: 3, after: page.data[2]!.id });
      expect(next.data[0]!.id).toBe(events[3]!.id);

      const checkpoints = (await client.fineTuning.jobs.checkpoints.list(created.id)).data;
      expect(checkpoints.map((c) => c.step_number)).toEqual([6, 4, 3, 2]); // every 2 steps and each epoch's end, newest first
      // a cursor of the other kind, or of another job, is a 400 naming 'after'
      for (const [url, noun] of [[`/events?after=${checkpoints[0]!.id}`, 'an event'], [`/checkpoints?after=${events[0]!.id}`, 'a checkpoint']] as const) {
        const res = await raw('GET', `/v1/fine_tuning/jobs/${created.id}${url}`);
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({ param: 'after', message: expect.stringContaining(`is not ${noun} of job ${created.id}`) });
      }
      expect(checkpoints[0]).toMatchObject({ object: 'fine_tuning.job.checkpoint', fine_tuning_job_id: created.id, fine_tuned_model_checkpoint: `${ftModel}:ckpt-step-6` });
      expect(checkpoints[0]!.metrics).toMatchObject({ step: 6 });
      expect(typeof checkpoints[0]!.metrics.valid_loss).toBe('number');

      expect((await client.models.list()).data.map((m) => m.id)).toEqual(['tiny', ftModel]);
      expect(await client.models.retrieve(ftModel)).toMatchObject({ id: ftModel, object: 'model', owned_by: 'user' });
      const completion = await client.completions.create({ model: ftModel, prompt: 'Hello', max_tokens: 4, temperature: 0 });
      expect(completion.model).toBe(ftModel);
      expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
      const chat = await client.chat.completions.create({ model: ftModel, messages: [{ role: 'user', content: 'Name the number 3.' }], max_tokens: 4, temperature: 0 });
      expect(chat.choices[0]!.message.role).toBe('assistant');
      // the job folder is gone; the model folder stays, and the newest 3 checkpoints beside it
      expect(fs.existsSync(path.join(dataDir, 'jobs', created.id))).toBe(false);
      const folder = `ft_tiny_numbers_${created.id}`;
      expect(fs.readdirSync(path.join(dataDir, 'models')).sort()).toEqual([folder, ...[3, 4, 6].map((s) => `${folder}_ckpt-step-${s}`)]);
      expect(fs.readdirSync(path.join(dataDir, 'models', `${folder}_ckpt-step-6`)).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer_config.json']); // no training state; the chat files
    });

    it('serves the newest checkpoints on demand under their fine_tuned_model_checkpoint ids', async () => {
      const [newest, older] = (await client.fineTuning.jobs.checkpoints.list(ftModel.split(':').at(-1)!)).data.map((c) => c.fine_tuned_model_checkpoint);
      const ckpt4 = `${ftModel}:ckpt-step-4`;
      expect([newest, older]).toEqual([`${ftModel}:ckpt-step-6`, ckpt4]);
      const request = (model: string) => ({ model, prompt: 'Hello', max_tokens: 3, temperature: 0, logprobs: 0 });
      // the first request starts the model: 503 with Retry-After while it loads, then answers
      const first = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request(ckpt4)) });
      expect([first.status, first.headers.get('retry-after'), ((await first.json()) as { error: { code: string } }).error.code]).toEqual([503, '5', 'model_loading']);
      let answer: { status: number; body: Record<string, unknown> };
      while ((answer = await raw('POST', '/v1/completions', request(ckpt4))).status === 503) await new Promise((r) => setTimeout(r, 50));
      expect(answer.status).toBe(200);
      const lp = (b: Record<string, unknown>) => (b as { choices: { logprobs: { token_logprobs: number[] } }[] }).choices[0]!.logprobs.token_logprobs;
      const final = await raw('POST', '/v1/completions', request(ftModel));
      expect(lp(answer.body)).not.toEqual(lp(final.body)); // step 4's weights, not the final model's
      expect((await client.models.retrieve(ckpt4)).id).toBe(ckpt4);
      expect((await client.models.list()).data.map((m) => m.id)).not.toContain(ckpt4); // listed per job, not in /v1/models
      // older checkpoints are not kept; a kept one can be deleted like any finetuned model
      const gone = await raw('POST', '/v1/completions', request(`${ftModel}:ckpt-step-2`));
      expect([gone.status, gone.body.error.code]).toEqual([404, 'model_not_found']);
      expect((await raw('DELETE', `/v1/models/${ckpt4}`)).body).toMatchObject({ id: ckpt4, deleted: true });
      expect((await raw('POST', '/v1/completions', request(ckpt4))).status).toBe(404);
      expect(fs.existsSync(path.join(dataDir, 'models', `ft_tiny_numbers_${ftModel.split(':').at(-1)}_ckpt-step-4`))).toBe(false);
    });

    it('trains LoRA adapters on chat records, merged into a servable model', async () => {
      const chats = Array.from({ length: 8 }, (_, i) => ({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `Count to ${i}.` }, { role: 'assistant', content: `1 to ${i}.` }] }));
      const file = await uploadFile('chat.jsonl', jsonl(chats));
      const job = await finished(
        (await client.fineTuning.jobs.create({ model: 'tiny', training_file: file.id, suffix: 'lora', method: scratch({ method: 'lora', lora_rank: 4, lora_alpha: 8 }, { n_epochs: 1, batch_size: 4 }) })).id,
      );
      expect([job.status, job.error]).toEqual(['succeeded', null]);
      expect((job.method as unknown as { scratchgpt: Record<string, unknown> }).scratchgpt).toMatchObject({ task: 'instruction', method: 'lora', lora_rank: 4, lora_alpha: 8, learning_rate: 2e-4 });
      const chat = await client.chat.completions.create({ model: job.fine_tuned_model!, messages: [{ role: 'user', content: 'Count to 3.' }], max_tokens: 3, temperature: 0 });
      expect(chat.usage!.completion_tokens).toBeGreaterThan(0);
    });

    it('lists jobs newest first with has_more', async () => {
      const list = await client.fineTuning.jobs.list({ limit: 1 });
      expect(list.data).toHaveLength(1);
      expect(list.data[0]!.object).toBe('fine_tuning.job');
    });

    it('trains a classifier, served at /v1/classifications (and not for generation)', async () => {
      const file = await uploadFile('spam.jsonl', jsonl(spam(16)));
      const created = await client.fineTuning.jobs.create({ model: 'tiny', training_file: file.id, hyperparameters: { n_epochs: 2, batch_size: 4, learning_rate_multiplier: 100 } });
      const job = await finished(created.id);
      expect([job.status, job.error]).toEqual(['succeeded', null]);
      expect((job.method as unknown as { scratchgpt: Record<string, unknown> }).scratchgpt).toMatchObject({ task: 'classification', method: 'last_blocks', last_blocks: 1, labels: ['ham', 'spam'] });
      const id = job.fine_tuned_model!;
      expect(await client.models.retrieve(id)).toMatchObject({ task: 'classification', labels: ['ham', 'spam'] });

      const r = await raw('POST', '/v1/classifications', { model: id, input: ['WIN a prize now', 'See you at lunch'] });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ object: 'list', model: id });
      const data = r.body.data as { index: number; label: string; probabilities: Record<string, number> }[];
      expect(data.map((d) => d.index)).toEqual([0, 1]);
      for (const d of data) {
        expect(['ham', 'spam']).toContain(d.label);
        expect(d.probabilities.ham! + d.probabilities.spam!).toBeCloseTo(1, 5);
      }
      const one = await raw('POST', '/v1/classifications', { model: id, input: 'WIN a prize now' });
      expect((one.body.data as unknown[]).length).toBe(1);

      const generate = await raw('POST', '/v1/completions', { model: id, prompt: 'x' });
      expect([generate.status, generate.body.error.code]).toEqual([400, 'model_not_generative']);
      expect(generate.body.error.message).toMatch(/classifier.*\/v1\/classifications/);
      const chat = await raw('POST', '/v1/chat/completions', { model: id, messages: [{ role: 'user', content: 'x' }] });
      expect(chat.status).toBe(400);
      const onGenerator = await raw('POST', '/v1/classifications', { model: 'tiny', input: 'x' });
      expect([onGenerator.status, onGenerator.body.error.code]).toEqual([400, 'model_not_classifier']);
      const unknown = await raw('POST', '/v1/classifications', { model: 'nope', input: 'x' });
      expect(unknown.status).toBe(404);
      const badInput = await raw('POST', '/v1/classifications', { model: id, input: [] });
      expect([badInput.status, badInput.body.error.param]).toEqual([400, 'input']);
      const ftOfClassifier = await raw('POST', '/v1/fine_tuning/jobs', { model: id, training_file: file.id });
      expect([ftOfClassifier.status, ftOfClassifier.body.error.param]).toEqual([400, 'model']);
    });

    it('cancels a queued job at once and a running one through its signal', async () => {
      const file = await uploadFile('long.jsonl', jsonl(alpaca(64)));
      const running = await client.fineTuning.jobs.create({ model: 'tiny', training_file: file.id, hyperparameters: { n_epochs: 50, batch_size: 2 } });
      const queued = await client.fineTuning.jobs.create({ model: 'tiny', training_file: file.id });
      await until(async () => (await client.fineTuning.jobs.retrieve(running.id)).status === 'running');
      // validated (on PostgreSQL, once the runner hears of it), then it waits: one job trains at a time
      await until(async () => (await client.fineTuning.jobs.retrieve(queued.id)).status !== 'validating_files');
      expect((await client.fineTuning.jobs.retrieve(queued.id)).status).toBe('queued');

      const q = await client.fineTuning.jobs.cancel(queued.id);
      expect([q.status, q.fine_tuned_model]).toEqual(['cancelled', null]);
      // a file in use by an unfinished job cannot be deleted
      const inUse = await raw('DELETE', `/v1/files/${file.id}`);
      expect([inUse.status, inUse.body.error.code]).toEqual([409, 'file_in_use']);

      await until(async () => (await client.fineTuning.jobs.listEvents(running.id)).data.some((e) => e.type === 'metrics' && (e.data as { step: number }).step >= 2));
      const r = await client.fineTuning.jobs.cancel(running.id);
      expect(r.status).toBe('cancelled');
      await until(async () => server.finetuning!.runner.active === undefined);
      const after = await client.fineTuning.jobs.retrieve(running.id);
      expect([after.status, after.fine_tuned_model]).toEqual(['cancelled', null]);
      expect((await client.fineTuning.jobs.listEvents(running.id)).data[0]!.message).toBe('Fine-tuning job cancelled');
      expect(fs.existsSync(path.join(dataDir, 'jobs', running.id))).toBe(false);

      const again = await raw('POST', `/v1/fine_tuning/jobs/${running.id}/cancel`);
      expect([again.status, again.body.error.code]).toEqual([400, 'job_not_cancellable']);
      expect(await client.files.delete(file.id)).toMatchObject({ deleted: true });
    });

    it('refuses bad job requests with 400s and 404s that name the parameter', async () => {
      const spamFile = (await uploadFile('spam2.jsonl', jsonl(spam(4)))).id;
      const cases: [unknown, number, string | null][] = [
        [{ model: 'tiny', training_file: 'file-nope' }, 400, 'training_file'],
        [{ model: 'tiny', training_file: 'file-AAAAAAAAAAAAAAAAAAAAAAAA' }, 400, 'training_file'],
        [{ model: 'gpt-9', training_file: trainingFile }, 404, 'model'],
        [{ model: 'tiny', training_file: trainingFile, validation_file: spamFile }, 400, 'validation_file'],
        [{ model: 'tiny', training_file: spamFile, method: { type: 'supervised', scratchgpt: { task: 'instruction' } } }, 400, 'training_file'],
        [{ model: 'tiny', training_file: trainingFile, method: { type: 'dpo' } }, 400, 'method.type'],
        [{ model: 'tiny', training_file: trainingFile, hyperparameters: { n_epochs: 0 } }, 400, 'hyperparameters.n_epochs'],
        [{ model: 'tiny', training_file: trainingFile, hyperparameters: { batch_size: 'many' } }, 400, 'hyperparameters.batch_size'],
        [{ model: 'tiny', training_file: trainingFile, hyperparameters: { n_epochs: 1 }, method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 2 } } } }, 400, 'hyperparameters'],
        [{ model: 'tiny', training_file: trainingFile, suffix: 'has:colon' }, 400, 'suffix'],
        [{ model: 'tiny', training_file: trainingFile, method: { type: 'supervised', scratchgpt: { method: 'lora', last_blocks: 1 } } }, 400, 'method.scratchgpt.last_blocks'],
        [{ model: 'tiny', training_file: trainingFile, method: { type: 'supervised', scratchgpt: { method: 'last_blocks', last_blocks: 3 } } }, 400, 'method.scratchgpt.last_blocks'],
        [{ model: 'tiny', training_file: trainingFile, method: { type: 'supervised', scratchgpt: { max_length: 4096 } } }, 400, 'method.scratchgpt.max_length'],
        [{ model: 'tiny', training_file: trainingFile, method: { type: 'supervised', scratchgpt: { frobnicate: 1 } } }, 400, 'method.scratchgpt.frobnicate'],
        [{ model: 'tiny' }, 400, 'training_file'],
      ];
      for (const [body, status, param] of cases) {
        const r = await raw('POST', '/v1/fine_tuning/jobs', body);
        expect({ body, status: r.status, param: r.body.error?.param }).toEqual({ body, status, param });
      }
      for (const url of ['/v1/fine_tuning/jobs/ftjob-nope', '/v1/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA/events']) {
        const r = await raw('GET', url);
        expect([r.status, r.body.error.code]).toEqual([404, 'fine_tuning_job_not_found']);
      }
      const cancel = await raw('POST', '/v1/fine_tuning/jobs/ftjob-nope/cancel');
      expect(cancel.status).toBe(404);
      const badLimit = await raw('GET', '/v1/fine_tuning/jobs?limit=0');
      expect([badLimit.status, badLimit.body.error.param]).toEqual([400, 'limit']);
    });

    it('deletes a finetuned model (not a base model); it stops being served at once', async () => {
      const base = await raw('DELETE', '/v1/models/tiny');
      expect([base.status, base.body.error.code]).toEqual([403, 'model_not_deletable']);
      const unknown = await raw('DELETE', '/v1/models/ft:tiny:x:ftjob-AAAAAAAAAAAAAAAAAAAAAAAA');
      expect(unknown.status).toBe(404);

      const file = (await uploadFile('del.jsonl', jsonl(alpaca(4)))).id;
      const job = await finished((await client.fineTuning.jobs.create({ model: 'tiny', training_file: file, suffix: 'doomed', hyperparameters: { n_epochs: 1 } })).id);
      const id = job.fine_tuned_model!;
      const checkpoints = (await client.fineTuning.jobs.checkpoints.list(job.id)).data.map((c) => c.fine_tuned_model_checkpoint);
      expect(checkpoints.length).toBeGreaterThan(0);
      expect((await client.models.retrieve(checkpoints[0]!)).id).toBe(checkpoints[0]);
      // mid-stream: the delete does not wait for the client, and takes the checkpoints with the model
      const stream = await client.completions.create({ model: id, prompt: 'x', max_tokens: 100, stream: true });
      expect(await client.models.delete(id)).toEqual({ id, object: 'model', deleted: true });
      for await (const _ of stream); // ends (finished or cut off) rather than hanging
      for (const ckpt of checkpoints) expect((await raw('POST', '/v1/completions', { model: ckpt, prompt: 'x' })).status).toBe(404);
      expect(fs.readdirSync(path.join(dataDir, 'models')).filter((f) => f.includes(job.id))).toEqual([]);
      expect((await client.models.list()).data.map((m) => m.id)).not.toContain(id);
      const r = await raw('POST', '/v1/completions', { model: id, prompt: 'x' });
      expect([r.status, r.body.error.code]).toEqual([404, 'model_not_found']);
      expect(fs.existsSync(path.join(dataDir, 'models', `ft_tiny_doomed_${job.id}`))).toBe(false);
      expect((await raw('DELETE', `/v1/models/${encodeURIComponent(id)}`)).status).toBe(404);
    });

    it('after a restart, files, jobs, events and finetuned models are all still there and served', async () => {
      const before = {
        files: (await client.files.list()).data.map((f) => f.id),
        jobs: (await client.fineTuning.jobs.list({ limit: 100 })).data.map((j) => [j.id, j.status]),
        models: (await client.models.list()).data.map((m) => m.id),
      };
      await server.shutdown();
      await start();
      expect((await client.files.list()).data.map((f) => f.id)).toEqual(before.files);
      expect((await client.fineTuning.jobs.list({ limit: 100 })).data.map((j) => [j.id, j.status])).toEqual(before.jobs);
      await until(async () => server.models.list().every((m) => m.state === 'ready'));
      expect((await client.models.list()).data.map((m) => m.id)).toEqual(before.models);
      const completion = await client.completions.create({ model: ftModel, prompt: 'Hello', max_tokens: 2, temperature: 0 });
      expect(completion.choices[0]!.text.length).toBeGreaterThan(0);
      // and a kept checkpoint still loads on demand
      const request = { model: `${ftModel}:ckpt-step-6`, prompt: 'Hello', max_tokens: 2, temperature: 0 };
      let status = 0;
      while ((status = (await raw('POST', '/v1/completions', request)).status) === 503) await new Promise((r) => setTimeout(r, 50));
      expect(status).toBe(200);
    });
  });

  describe('the data folder', () => {
    it.runIf(engine === 'sqlite')('serves one server at a time: a second one on the same folder refuses to start', async () => {
      await expect(startServer({ modelDirs: [tinyDir], port: 0, slots: 1, queue: 1, threads: 1, dataDir })).rejects.toThrow(/in use by another scratchgpt server/);
    });

    it.runIf(engine === 'postgres')('a second server on the same database and folder starts beside it and sees the same files and jobs', async () => {
      const replica = await startServer({ modelDirs: [tinyDir], port: 0, slots: 1, queue: 1, threads: 1, dataDir, databaseUrl: database!.url, train: false });
      try {
        const other = new OpenAI({ baseURL: `${replica.url}/v1`, apiKey: 'unused', maxRetries: 0 });
        expect((await other.files.list()).data.map((f) => f.id)).toEqual((await client.files.list()).data.map((f) => f.id));
        expect((await other.fineTuning.jobs.list()).data.map((j) => j.id)).toEqual((await client.fineTuning.jobs.list()).data.map((j) => j.id));
      } finally {
        await replica.shutdown();
      }
    });


    it('without one, the fine-tuning routes answer 404 fine_tuning_disabled', async () => {
      const plain = await startServer({ modelDirs: [tinyDir], port: 0, slots: 1, queue: 1, threads: 1 });
      try {
        for (const url of ['/v1/files', '/v1/fine_tuning/jobs']) {
          const res = await fetch(`${plain.url}${url}`);
          expect(res.status).toBe(404);
          expect(((await res.json()) as { error: { code: string } }).error.code).toBe('fine_tuning_disabled');
        }
      } finally {
        await plain.shutdown();
      }
    });
  });
}
