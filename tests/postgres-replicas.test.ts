// Several real processes on one PostgreSQL database and one shared data folder, as deploy/
// describes: two API replicas that never train (`serve --no-train`) and `scratchgpt worker`s that
// do. What crosses processes is checked through the API, as a client sees it.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESUMED } from '../src/jobs/runner.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { startChildServer, type ChildServer } from './helpers/child-server.js';
import { ADMIN_URL, freshDatabase, postgresMissing } from './helpers/postgres.js';

const pgMissing = await postgresMissing();
const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
/** Short, so that a dead worker's job moves on quickly; long enough for a busy 2-core machine to renew it (every third). */
const LEASE_SECONDS = 3;

interface Proc extends ChildServer {
  name: string;
  client: OpenAI;
  log: () => string;
  /** When each line containing `text` was first seen (Date.now()). */
  seen: (text: string) => number | undefined;
}

let db: { url: string; drop: () => Promise<void> };
let tmp: string;
let modelDir: string;
let dataDir: string;
const procs: Proc[] = [];

async function start(name: string, command: 'serve' | 'worker'): Promise<Proc> {
  let log = '';
  const lines = new Map<string, number>();
  const common = ['--model', modelDir, '--data-dir', dataDir, '--database', db.url, '--port', '0', '--lease-seconds', String(LEASE_SECONDS)];
  const args = command === 'serve' ? [...common, '--no-train', '--threads', '1', '--slots', '2', '--no-access-log'] : [...common, '--finetune-threads', '1'];
  const s = await startChildServer(args, {
    command,
    onLog: (text) => {
      log += text;
      for (const line of text.split('\n')) if (!lines.has(line)) lines.set(line, Date.now());
    },
  });
  const p: Proc = {
    ...s,
    name,
    client: new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 }),
    log: () => log,
    seen: (text) => [...lines].find(([line]) => line.includes(text))?.[1],
  };
  procs.push(p);
  return p;
}

const logs = () => procs.map((p) => `── ${p.name} ──\n${p.log()}`).join('\n');

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; logs:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const alpaca = (n: number) => Array.from({ length: n }, (_, i) => ({ instruction: `Repeat after me: ${i}`, input: '', output: `${i} ${i}` }));

/** A completion from `model` on `p`, once it has loaded there (a model published elsewhere loads at its first request: 503 until then). */
async function answers(p: Proc, model: string): Promise<string> {
  return until(`${model} to answer on ${p.name}`, async () => {
    try {
      const r = await p.client.completions.create({ model, prompt: 'Repeat after me: 3', max_tokens: 3, temperature: 0 });
      return r.choices[0]!.text || ' ';
    } catch (e) {
      if ((e as { status?: number }).status === 503) return undefined;
      throw e;
    }
  });
}

const events = async (c: OpenAI, id: string) => (await c.fineTuning.jobs.listEvents(id, { limit: 1000 })).data.reverse();

describe.skipIf(pgMissing !== undefined)('replicas and training workers on one PostgreSQL', () => {
  let a: Proc;
  let b: Proc;
  let fileId: string;
  let content: string;

  beforeAll(async () => {
    db = await freshDatabase();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'replicas-'));
    modelDir = path.join(tmp, 'tiny');
    dataDir = path.join(tmp, 'data');
    saveCheckpoint(modelDir, cfg, randomInit(cfg, 11));
  });

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await db?.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('two replicas starting together on an empty database migrate it once', async () => {
    [a, b] = await Promise.all([start('A', 'serve'), start('B', 'serve')]);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query('SELECT version, applied_by FROM scratchgpt_migrations');
    await c.end();
    expect(rows.map((r) => r.version)).toEqual([3]);
    expect([a.child.pid, b.child.pid].map((pid) => `:${pid}`).filter((pid) => rows[0].applied_by.endsWith(pid))).toHaveLength(1);
  });

  it('a file uploaded on A, a job created on B, trained by a worker: its model answers on A and B; deleted on A, it is gone from B', async () => {
    await start('W1', 'worker');
    content = jsonl(alpaca(32));
    fileId = (await a.client.files.create({ file: await toFile(Buffer.from(content), 'train.jsonl'), purpose: 'fine-tune' })).id;
    const job = await b.client.fineTuning.jobs.create({ model: 'tiny', training_file: fileId, suffix: 'shared', hyperparameters: { n_epochs: 1, batch_size: 8 } });
    const done = await until('the job to end', async () => {
      const j = await a.client.fineTuning.jobs.retrieve(job.id);
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) && j;
    });
    expect([done.status, done.error]).toEqual(['succeeded', null]);
    expect(procs.find((p) => p.name === 'W1')!.seen(`job ${job.id}: started`)).toBeDefined();
    const model = done.fine_tuned_model!;
    for (const p of [a, b]) await until(`${model} to be listed on ${p.name}`, async () => (await p.client.models.list()).data.some((m) => m.id === model));
    expect(await answers(a, model)).toBe(await answers(b, model)); // the same weights, greedy

    await a.client.models.delete(model);
    await until(`${model} to leave B`, async () => !(await b.client.models.list()).data.some((m) => m.id.startsWith(model)));
    await expect(b.client.completions.create({ model, prompt: 'x', max_tokens: 1 })).rejects.toMatchObject({ status: 404 });
  }, 240_000);

  it('a worker killed with -9 mid-job loses it to another, which resumes from its last checkpoint: no event, file or checkpoint lost or duplicated', async () => {
    const pair = [procs.find((p) => p.name === 'W1')!, await start('W2', 'worker')];
    // 32 examples / batch 2 = 16 steps per epoch, × 8 = 128 steps (long enough to be killed mid-way on a fast machine), a checkpoint every 16
    const job = await a.client.fineTuning.jobs.create({
      model: 'tiny',
      training_file: fileId,
      suffix: 'takeover',
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 8, batch_size: 2 } }, scratchgpt: { checkpoint_every_steps: 16 } } as OpenAI.FineTuning.JobCreateParams.Method,
    });
    await until('a checkpoint and a few steps after it', async () => {
      const ev = await events(a.client, job.id);
      const steps = ev.filter((e) => e.type === 'metrics').map((e) => (e.data as { step: number }).step);
      return ev.some((e) => e.message.startsWith('Checkpoint created')) && Math.max(...steps) >= 19;
    });
    // the one that claimed it dies; the other, idle while the first held the job's lease, takes over
    const victim = pair.find((w) => w.seen(`job ${job.id}: started`) !== undefined)!;
    const taker = pair.find((w) => w !== victim)!;
    expect(taker.seen(`job ${job.id}`)).toBeUndefined();
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const lastCheckpoint = Math.max(...(await a.client.fineTuning.jobs.checkpoints.list(job.id)).data.map((c) => c.step_number));

    const resumedAt = await until('the other worker to resume the job', async () => taker.seen(`job ${job.id}: resumed`));
    const takeoverMs = resumedAt - killedAt;
    console.log(`takeover: ${taker.name} resumed the job ${(takeoverMs / 1000).toFixed(2)} s after ${victim.name} was killed (--lease-seconds ${LEASE_SECONDS})`);
    expect(takeoverMs).toBeGreaterThanOrEqual(0);

    const done = await until('the job to end', async () => {
      const j = await b.client.fineTuning.jobs.retrieve(job.id);
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) && j;
    });
    expect([done.status, done.error]).toEqual(['succeeded', null]);

    const log = await events(b.client, job.id);
    expect(log.map((e) => e.message).filter((m) => m.startsWith(RESUMED))).toHaveLength(1);
    expect(log.find((e) => e.message.startsWith(RESUMED))!.data).toEqual({ resumed_from_step: lastCheckpoint });
    for (const once of ['Fine-tuning job started', 'The job has successfully completed', `New fine-tuned model created: ${done.fine_tuned_model}`]) {
      expect([once, log.filter((e) => e.message === once).length]).toEqual([once, 1]);
    }
    const steps = log.filter((e) => e.type === 'metrics').map((e) => (e.data as { step: number }).step);
    expect(steps).toEqual(Array.from({ length: 129 }, (_, i) => i)); // every step once, in order
    const checkpointEvents = log.filter((e) => e.message.startsWith('Checkpoint created')).map((e) => (e.data as { step: number }).step);
    const checkpointRows = (await a.client.fineTuning.jobs.checkpoints.list(job.id, { limit: 100 })).data.map((c) => c.step_number).sort((x, y) => x - y);
    expect(checkpointEvents).toEqual([16, 32, 48, 64, 80, 96, 112, 128]);
    expect(checkpointRows).toEqual(checkpointEvents.slice(-checkpointRows.length)); // the newest are kept, each once
    expect(await (await b.client.files.content(fileId)).text()).toBe(content);
    expect(await answers(b, done.fine_tuned_model!)).toBeTruthy();
    expect(fs.readdirSync(path.join(dataDir, 'jobs')).filter((n) => !n.startsWith('.'))).toEqual([]);
  }, 240_000);

  it('a cancel on a replica reaches the worker that runs the job', async () => {
    const job = await a.client.fineTuning.jobs.create({ model: 'tiny', training_file: fileId, suffix: 'cancel', hyperparameters: { n_epochs: 50, batch_size: 2 } });
    const runner = await until('a worker to start it', async () => procs.find((p) => p.name.startsWith('W') && p.seen(`job ${job.id}: started`) !== undefined));
    await until('a few steps', async () => (await events(a.client, job.id)).filter((e) => e.type === 'metrics').length >= 3);
    expect((await b.client.fineTuning.jobs.cancel(job.id)).status).toBe('cancelled');
    await until(`${runner.name} to stop it`, async () => runner.seen(`job ${job.id}: cancelled`));
    await until('its folder to go', async () => !fs.existsSync(path.join(dataDir, 'jobs', job.id)));
    const log = await events(a.client, job.id);
    const cancelledAt = log.findIndex((e) => e.message === 'Fine-tuning job cancelled');
    expect([cancelledAt, log.length - 1]).toEqual([log.length - 1, log.length - 1]); // once, last: no step logged after it
    expect((await a.client.fineTuning.jobs.retrieve(job.id)).status).toBe('cancelled');
  }, 240_000);

  it('100 jobs created at once on both replicas each run exactly once', async () => {
    await start('W3', 'worker');
    const workers = procs.filter((p) => p.name.startsWith('W') && p.child.exitCode === null && p.child.signalCode === null);
    expect(workers).toHaveLength(2); // the survivor of the test above, and W3
    const small = (await b.client.files.create({ file: await toFile(Buffer.from(jsonl(alpaca(4))), 'small.jsonl'), purpose: 'fine-tune' })).id;
    const t0 = Date.now();
    const jobs = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).client.fineTuning.jobs.create({ model: 'tiny', training_file: small, suffix: `q${i}`, hyperparameters: { n_epochs: 1, batch_size: 4 } })),
    );
    const ids = jobs.map((j) => j.id);
    await until(
      'all 100 jobs to end',
      async () => {
        const { data } = await a.client.fineTuning.jobs.list({ limit: 100 });
        return data.filter((j) => ids.includes(j.id)).every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.status));
      },
      600_000,
    );
    const seconds = (Date.now() - t0) / 1000;
    console.log(`queue: 100 one-step jobs through 2 workers in ${seconds.toFixed(1)} s (${(100 / seconds).toFixed(2)} jobs/s, training included)`);
    const { data } = await b.client.fineTuning.jobs.list({ limit: 100 });
    expect(data.filter((j) => ids.includes(j.id)).map((j) => j.status)).toEqual(ids.map(() => 'succeeded'));
    for (const id of ids) {
      const ran = workers.filter((w) => w.seen(`job ${id}: started`) !== undefined).length;
      const messages = (await events(a.client, id)).map((e) => e.message);
      expect([id, ran, messages.filter((m) => m === 'Fine-tuning job started').length, messages.filter((m) => m.startsWith(RESUMED)).length]).toEqual([id, 1, 1, 0]);
    }
    // both workers took part (the queue hands jobs to whoever is free)
    for (const w of workers) expect(ids.some((id) => w.seen(`job ${id}: started`) !== undefined)).toBe(true);
  }, 660_000);

  it('while the database refuses connections, its routes answer 503 database_unavailable and completions go on; then all comes back', async () => {
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    const name = new URL(db.url).pathname.slice(1);
    const worker = procs.find((p) => p.name.startsWith('W') && p.child.exitCode === null && p.child.signalCode === null)!;
    try {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
      await expect(a.client.files.list()).rejects.toMatchObject({ status: 503, code: 'database_unavailable' });
      await expect(b.client.fineTuning.jobs.list()).rejects.toMatchObject({ status: 503, code: 'database_unavailable' });
      expect((await fetch(`${worker.url}/health`)).status).toBe(503);
      const r = await a.client.completions.create({ model: 'tiny', prompt: 'Repeat after me', max_tokens: 2, temperature: 0 });
      expect(r.usage!.completion_tokens).toBe(2);
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    for (const p of [a, b]) expect((await p.client.files.list()).data.map((f) => f.id)).toContain(fileId);
    expect((await fetch(`${worker.url}/health`)).status).toBe(200);
    // the LISTEN connections came back too: a job created now is heard and trained
    const job = await a.client.fineTuning.jobs.create({ model: 'tiny', training_file: fileId, suffix: 'after', hyperparameters: { n_epochs: 1, batch_size: 16 } });
    await until('the job after the outage to succeed', async () => (await b.client.fineTuning.jobs.retrieve(job.id)).status === 'succeeded');
  }, 240_000);

  it('a batch whose replica is killed with -9 mid-batch is finished by another, each line exactly once', async () => {
    const c = await start('C', 'serve');
    const LINES = 30;
    const body = (i: number) => ({ model: 'tiny', prompt: `Line ${i}:`, max_tokens: 24, temperature: 0 });
    const lines = Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/completions', body: body(i) }));
    const input = await c.client.files.create({ file: await toFile(Buffer.from(lines.join('\n')), 'in.jsonl'), purpose: 'batch' });
    const batch = await c.client.batches.create({ input_file_id: input.id, endpoint: '/v1/completions', completion_window: '24h' });
    await until('a few lines', async () => (await a.client.batches.retrieve(batch.id)).request_counts!.completed >= 3);
    // the replica that holds the batch's lease (any of A, B, C may have claimed it) dies
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    const owner = (await admin.query('SELECT lease_owner FROM batches WHERE id = $1', [batch.id])).rows[0].lease_owner as string;
    await admin.end();
    const holder = [a, b, c].find((p) => owner.split(':')[1] === String(p.child.pid))!;
    holder.child.kill('SIGKILL');
    await holder.exited;
    const survivor = [a, b, c].find((p) => p !== holder)!;
    const done = await until('the batch to complete on another replica', async () => {
      const r = await survivor.client.batches.retrieve(batch.id);
      return r.status === 'completed' && r;
    });
    expect(done.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
    const output = (await (await survivor.client.files.content(done.output_file_id!)).text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: OpenAI.Completion } });
    expect(output.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: LINES }, (_, i) => `line-${i}`).sort()); // each exactly once
    for (const l of output.slice(0, 5)) {
      const direct = await survivor.client.completions.create(body(Number(l.custom_id.slice('line-'.length))));
      expect([l.response.status_code, l.response.body.choices[0]!.text]).toEqual([200, direct.choices[0]!.text]);
    }
  }, 240_000);
});
