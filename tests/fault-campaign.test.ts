// Fault campaign: the server (`node bin/scratchgpt.js serve`, a child process) is killed with
// SIGKILL at named points of its durable paths (src/faults/crash-point.ts: SCRATCHGPT_CRASH_AT), one
// point per server lifetime: during uploads, while a job validates, starts, trains and checkpoints,
// at every step of publishing its model and checkpoints, during a cancel, a model delete and a file
// delete. Each kill is followed by a start without the variable on the same data folder, which
// must bring everything back to a consistent state:
//
//   - every listed file downloads with the bytes that were uploaded; an upload that never got its
//     answer is not listed (and left nothing behind);
//   - every job ends: succeeded (resumed if need be) with its model, its checkpoints and its
//     trained tokens, or cancelled when a cancel was sent;
//   - every listed model answers a completion, and so does each new job's newest kept checkpoint;
//   - files/, jobs/ and models/ hold exactly what the store accounts for, and no temporary or
//     trash entry survives a start;
//   - no job event is duplicated (see checkEvents for what that means precisely).
//
// The kill points are reached by the traffic itself, never by timing: the server dies exactly
// there, and the test waits on its exit.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEPT_CHECKPOINTS, PUBLISH_AFTER_STOP, RESUMED } from '../src/jobs/runner.js';
import { startChildServer, type ChildServer } from './helpers/child-server.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
// 16 records, batch 4: 4 steps per epoch, 2 epochs; a checkpoint every 2 steps (4 and 8 are epoch ends)
const JOB = { n_epochs: 2, batch_size: 4, checkpoint_every: 2 };
const TOTAL_STEPS = 8;
const CHECKPOINT_STEPS = [2, 4, 6, 8];

let tmp: string;
let dataDir: string;
let modelDir: string;
let child: ChildProcess | undefined;
let log = '';

type Server = ChildServer;

async function serve(crashAt?: string): Promise<Server> {
  const env = { ...process.env };
  delete env.SCRATCHGPT_CRASH_AT;
  if (crashAt) env.SCRATCHGPT_CRASH_AT = crashAt;
  log += `\n--- serve${crashAt ? ` (SCRATCHGPT_CRASH_AT=${crashAt})` : ''}\n`;
  const args = ['--model', modelDir, '--data-dir', dataDir, '--port', '0', '--threads', '1', '--finetune-threads', '1', '--slots', '2'];
  const s = await startChildServer(args, { env, onLog: (text) => (log += text) });
  child = s.child;
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jsonl = (records: unknown[]) => Buffer.from(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const alpaca = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ instruction: `Repeat after me: ${tag} ${i}`, input: '', output: `${i} ${i} ${i}` }));

async function api<T = Record<string, unknown>>(s: Server, method: string, p: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(`${s.url}${p}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as T };
}

async function ok<T = Record<string, unknown>>(s: Server, method: string, p: string, body?: unknown): Promise<T> {
  const r = await api<T>(s, method, p, body);
  if (r.status !== 200) throw new Error(`${method} ${p}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

// ── what the traffic did, as the clients saw it ──
const sent = new Map<string, Buffer>(); // every upload tried: filename → bytes
const uploaded = new Map<string, string>(); // uploads answered 200: id → filename
const lostUploads = new Set<string>(); // filenames of uploads the server died under
const deletedFiles = new Set<string>();
const cancelRequested = new Set<string>();
const deletedModels = new Set<string>();
const checkedJobs = new Set<string>();
let trainingFile = '';

async function upload(s: Server, filename: string, bytes: Buffer): Promise<string> {
  sent.set(filename, bytes);
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', new Blob([new Uint8Array(bytes)]), filename);
  const r = await fetch(`${s.url}/v1/files`, { method: 'POST', body: form });
  const body = (await r.json()) as { id: string };
  if (r.status !== 200) throw new Error(`upload ${filename}: HTTP ${r.status} ${JSON.stringify(body)}`);
  uploaded.set(body.id, filename);
  return body.id;
}

async function createJob(s: Server, suffix: string, epochs = JOB.n_epochs): Promise<string> {
  const job = await ok<{ id: string }>(s, 'POST', '/v1/fine_tuning/jobs', {
    model: 'tiny',
    training_file: trainingFile,
    suffix,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: epochs, batch_size: JOB.batch_size } }, scratchgpt: { checkpoint_every_steps: JOB.checkpoint_every } },
  });
  return job.id;
}

async function untilTerminal(s: Server, id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const job = await ok(s, 'GET', `/v1/fine_tuning/jobs/${id}`);
    if (TERMINAL.includes(job.status as string)) return job;
    await sleep(25);
  }
}

/** A fetch that failed because the server is gone (not an assertion or an HTTP error). */
const connectionLost = (e: unknown) => e instanceof TypeError && /fetch failed|terminated|socket/i.test(`${e.message} ${(e as { cause?: Error }).cause?.message ?? ''}`);

/**
 * One kill: a server with the crash point set, `drive` sending traffic until the server dies
 * under it (every request then fails), and the check that it died by that SIGKILL.
 */
async function crashAt(point: string, drive: (s: Server) => Promise<unknown>): Promise<void> {
  const s = await serve(point);
  try {
    await drive(s);
  } catch (e) {
    if (!connectionLost(e)) {
      s.child.kill('SIGKILL');
      throw e;
    }
    const exit = await s.exited;
    expect(exit.signal, `${point}: the server should die by SIGKILL\n${log}`).toBe('SIGKILL');
    return;
  }
  s.child.kill('SIGKILL');
  await s.exited;
  throw new Error(`${point}: the traffic ended and the server was still running: the crash point was never reached\n${log}`);
}

async function completes(s: Server, model: string): Promise<void> {
  for (;;) {
    const r = await api<{ usage?: { completion_tokens: number }; error?: unknown }>(s, 'POST', '/v1/completions', { model, prompt: 'Repeat after me: 3', max_tokens: 2, temperature: 0 });
    if (r.status === 503) {
      await sleep(50); // a checkpoint served on demand is loading
      continue;
    }
    expect([model, r.status, r.body.usage?.completion_tokens]).toEqual([model, 200, 2]);
    return;
  }
}

/** The start after a kill: everything ends and every invariant holds; then it is killed too (a quiet one). */
async function recover(point: string): Promise<void> {
  const s = await serve();
  const jobs = (await ok<{ data: { id: string }[] }>(s, 'GET', '/v1/fine_tuning/jobs?limit=1000')).data;
  for (const j of jobs) {
    const job = await untilTerminal(s, j.id);
    const expected = cancelRequested.has(j.id) ? 'cancelled' : 'succeeded';
    expect([point, j.id, job.status, job.error], log).toEqual([point, j.id, expected, null]);
    if (expected === 'succeeded') {
      expect(job.fine_tuned_model).toMatch(new RegExp(`^ft:tiny:[^:]+:${j.id}$`));
      expect([point, j.id, job.trained_tokens]).toEqual([point, j.id, expect.any(Number)]);
      expect(job.trained_tokens).toBeGreaterThan(0);
    }
  }

  // files: listed = answered uploads not deleted; each with its bytes
  const files = (await ok<{ data: { id: string; filename: string; bytes: number }[] }>(s, 'GET', '/v1/files')).data;
  const live = [...uploaded.keys()].filter((id) => !deletedFiles.has(id));
  expect([point, files.map((f) => f.id).sort()]).toEqual([point, live.sort()]);
  for (const f of files) {
    expect(lostUploads.has(f.filename)).toBe(false);
    const content = Buffer.from(await (await fetch(`${s.url}/v1/files/${f.id}/content`)).arrayBuffer());
    expect([point, f.filename, content.equals(sent.get(f.filename)!)]).toEqual([point, f.filename, true]);
  }

  // models: the base and every succeeded job's model not deleted, each answering
  const finished = await Promise.all(jobs.map((j) => ok<{ id: string; status: string; fine_tuned_model: string | null }>(s, 'GET', `/v1/fine_tuning/jobs/${j.id}`)));
  const finetuned = finished.filter((j) => j.status === 'succeeded').map((j) => j.fine_tuned_model!).reverse();
  const listed = (await ok<{ data: { id: string }[] }>(s, 'GET', '/v1/models')).data.map((m) => m.id);
  expect([point, [...listed].sort()]).toEqual([point, ['tiny', ...finetuned.filter((m) => !deletedModels.has(m))].sort()]);
  for (const m of listed) await completes(s, m);
  if (/^publish\.(checkpoint-moved|committed)/.test(point)) {
    // the newest kept checkpoint of the job (each one's folder is checked in checkStore; loading every one would be slow)
    for (const j of finished.filter((j) => j.status === 'succeeded' && !checkedJobs.has(j.id))) await completes(s, `${j.fine_tuned_model}:ckpt-step-${TOTAL_STEPS}`);
  }

  // Keep the next starts quick: only the newest finetuned model stays (a model delete, without a
  // crash; it takes the model's checkpoints with it).
  for (const j of finished.filter((j) => j.status === 'succeeded').slice(1)) {
    if (deletedModels.has(j.fine_tuned_model!)) continue;
    await ok(s, 'DELETE', `/v1/models/${encodeURIComponent(j.fine_tuned_model!)}`);
    deletedModels.add(j.fine_tuned_model!);
  }
  s.child.kill('SIGKILL');
  await s.exited;
  checkStore(point);
  for (const j of finished) checkedJobs.add(j.id);
}

interface EventRow {
  seq: number;
  type: string;
  message: string;
  data: string | null;
}

/**
 * The data folder against the store (read directly: the server is stopped), and each job's event
 * log. No entry without its row, no row without its entry, no temporary or trash leftovers.
 */
function checkStore(point: string): void {
  const db = new Database(path.join(dataDir, 'scratchgpt.db'));
  try {
    const fileRows = db.prepare('SELECT id, path, status FROM files').all() as { id: string; path: string; status: string }[];
    expect([point, fileRows.filter((f) => f.status !== 'processed')]).toEqual([point, []]); // a start settles cut-short uploads and deletes
    const jobRows = db.prepare('SELECT id, status, fine_tuned_model FROM jobs').all() as { id: string; status: string; fine_tuned_model: string | null }[];
    const modelRows = db.prepare('SELECT id, dir, deleted FROM models').all() as { id: string; dir: string; deleted: number }[];
    expect([point, 'files/', fs.readdirSync(path.join(dataDir, 'files')).sort()]).toEqual([point, 'files/', fileRows.map((f) => path.basename(f.path)).sort()]);
    const unfinished = jobRows.filter((j) => !TERMINAL.includes(j.status)).map((j) => j.id);
    expect([point, 'jobs/', fs.readdirSync(path.join(dataDir, 'jobs')).filter((n) => !unfinished.includes(n))]).toEqual([point, 'jobs/', []]);
    const liveModels = modelRows.filter((m) => !m.deleted);
    expect([point, 'models/', fs.readdirSync(path.join(dataDir, 'models')).sort()]).toEqual([point, 'models/', liveModels.map((m) => path.basename(m.dir)).sort()]);
    for (const m of liveModels) expect([point, m.id, fs.existsSync(path.join(dataDir, m.dir, 'config.json'))]).toEqual([point, m.id, true]);
    const leftovers: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (/\.tmp-|^\.trash-|\.replaced-|\.old-/.test(e.name)) leftovers.push(path.relative(dataDir, path.join(dir, e.name)));
        if (e.isDirectory()) walk(path.join(dir, e.name));
      }
    };
    walk(dataDir);
    expect([point, leftovers]).toEqual([point, []]);

    for (const job of jobRows) {
      const events = db.prepare('SELECT seq, type, message, data FROM job_events WHERE job_id = ? ORDER BY seq').all(job.id) as EventRow[];
      const checkpoints = (db.prepare('SELECT step FROM job_checkpoints WHERE job_id = ? ORDER BY step').all(job.id) as { step: number }[]).map((c) => c.step);
      checkEvents(`${point}: job ${job.id} (${job.status})`, job, events, checkpoints);
      if (job.status === 'succeeded') {
        // every checkpoint the trainer wrote is recorded, and the newest ones are kept as models
        expect([point, job.id, checkpoints]).toEqual([point, job.id, CHECKPOINT_STEPS]);
        const kept = CHECKPOINT_STEPS.slice(-KEPT_CHECKPOINTS).map((n) => `${job.fine_tuned_model}:ckpt-step-${n}`);
        const ids = new Set(modelRows.map((m) => m.id));
        expect([point, job.id, [job.fine_tuned_model, ...kept].filter((id) => !ids.has(id!))]).toEqual([point, job.id, []]);
      }
    }
  } finally {
    db.close();
  }
}

/**
 * What "no duplicate events" means, from how runner.ts writes them:
 *   - seq runs 1..n without a gap (each event is appended inside its transaction);
 *   - the messages written with a state change (created, validating, validated, started, model
 *     created, completed, cancelled, failed) appear at most once: a state change is one
 *     transaction, so a crash either wrote it with its message or neither;
 *   - a succeeded job has each of created → validating → validated → started → model created →
 *     completed exactly once, in this order, and nothing after 'completed'; a cancelled job has
 *     'cancelled' exactly once, last;
 *   - the log splits into runs at each RESUMED or PUBLISH_AFTER_STOP event; within a run the
 *     metrics steps are consecutive (0 only first, then +1 each), and no step is logged twice in
 *     the whole log (a resumed run redoes the steps after its checkpoint but logs only those not
 *     logged before); a checkpoint event comes after its step's metrics event (in its run, or an
 *     earlier one when the resumed run redid that step), at most once per run and step, except one
 *     whose row a crash cut off, which the restart records before the run's first step (once); a
 *     run that only publishes (training had finished) has no metrics;
 *   - checkpoint events and checkpoint rows name the same steps (one transaction writes both).
 */
function checkEvents(where: string, job: { status: string }, events: EventRow[], checkpointRows: number[]): void {
  expect([where, events.map((e) => e.seq)]).toEqual([where, events.map((_, i) => i + 1)]);
  const once = [/^Created fine-tuning job: /, /^Validating training file: /, /^Files validated, moving job to queued state$/, /^Fine-tuning job started$/, /^New fine-tuned model created: /, /^The job has successfully completed$/, /^Fine-tuning job cancelled$/, /^Fine-tuning job failed: /];
  const at = (re: RegExp) => events.map((e, i) => (re.test(e.message) ? i : -1)).filter((i) => i >= 0);
  for (const re of once) expect([where, String(re), at(re).length <= 1]).toEqual([where, String(re), true]);
  if (job.status === 'succeeded') {
    const order = [0, 1, 2, 3, 4, 5].map((k) => at(once[k]!)[0] ?? -1);
    expect([where, order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!))]).toEqual([where, true]);
    expect([where, order[5]]).toEqual([where, events.length - 1]);
  }
  if (job.status === 'cancelled') expect([where, at(once[6]!)]).toEqual([where, [events.length - 1]]);

  const runs: EventRow[][] = [[]];
  for (const e of events) {
    if (e.message.startsWith(RESUMED) || e.message === PUBLISH_AFTER_STOP) runs.push([]);
    runs.at(-1)!.push(e);
  }
  const stepOf = (e: EventRow) => (JSON.parse(e.data!) as { step: number }).step;
  const checkpointEvents: number[] = [];
  const logged = new Set<number>();
  for (const run of runs) {
    const steps: number[] = [];
    const checkpointed = new Set<number>();
    for (const e of run) {
      if (e.type === 'metrics') {
        const step = stepOf(e);
        if (steps.length) expect([where, 'metrics step', step]).toEqual([where, 'metrics step', steps.at(-1)! + 1]);
        expect([where, 'metrics step logged before', step, logged.has(step)]).toEqual([where, 'metrics step logged before', step, false]);
        steps.push(step);
      } else if (/^Checkpoint created at step /.test(e.message)) {
        const step = stepOf(e);
        // recorded at a restart: a checkpoint whose row the crash cut off, logged before the run's first step
        const recovered = run !== runs[0] && steps.length === 0 && !checkpointEvents.includes(step);
        expect([where, 'checkpoint', step, steps.includes(step) || logged.has(step) || recovered, checkpointed.has(step)]).toEqual([where, 'checkpoint', step, true, false]);
        checkpointed.add(step);
        checkpointEvents.push(step);
      }
    }
    for (const step of steps) logged.add(step);
    if (run[0]?.message === PUBLISH_AFTER_STOP) expect([where, 'publishing only', steps]).toEqual([where, 'publishing only', []]);
  }
  expect([where, [...new Set(checkpointEvents)].sort((a, b) => a - b)]).toEqual([where, checkpointRows]);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fault-campaign-'));
  dataDir = path.join(tmp, 'data');
  modelDir = path.join(tmp, 'tiny');
  saveCheckpoint(modelDir, cfg, randomInit(cfg, 7));
});

afterAll(() => {
  child?.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A job that runs until the server dies somewhere in its life. */
const jobUntilDeath = (suffix: string) => async (s: Server) => untilTerminal(s, await createJob(s, suffix));

async function deleteNewestModel(s: Server): Promise<void> {
  const model = (await ok<{ data: { id: string }[] }>(s, 'GET', '/v1/models')).data.at(-1)!.id;
  expect(model).toMatch(/^ft:/);
  deletedModels.add(model);
  await ok(s, 'DELETE', `/v1/models/${encodeURIComponent(model)}`);
}

/** Every path under the data folder, relative to it ('/'-separated). */
function tree(dir = dataDir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = path.relative(dataDir, path.join(dir, e.name));
    return e.isDirectory() ? [rel, ...tree(path.join(dir, e.name))] : [rel];
  });
}

const some = (re: RegExp) => (paths: string[]) => paths.some((p) => re.test(p));

interface KillPoint {
  point: string;
  drive: (s: Server) => Promise<unknown>;
  /** What the data folder shows right after the kill: proof that it came at the intended step. */
  left?: (paths: string[]) => boolean;
}

/** Kill points, in order; each gets its own server lifetime and a recovery start. */
const campaign: KillPoint[] = [
  {
    point: 'atomic-write.before-rename:2', // the first upload (the training file) is stored; the second dies before its rename
    drive: async (s) => {
      trainingFile = await upload(s, 'train.jsonl', jsonl(alpaca(16, 'train')));
      lostUploads.add('lost-1.jsonl');
      await upload(s, 'lost-1.jsonl', jsonl(alpaca(4, 'lost 1')));
    },
    left: some(/^files\/file-\w+\.tmp-/),
  },
  {
    point: 'upload.stored', // renamed into files/, not yet marked processed
    drive: async (s) => {
      lostUploads.add('lost-2.jsonl');
      await upload(s, 'lost-2.jsonl', jsonl(alpaca(4, 'lost 2')));
    },
    left: (paths) => paths.filter((p) => /^files\/file-\w{24}$/.test(p)).length === 2,
  },
  { point: 'job.validating', drive: jobUntilDeath('validating') },
  { point: 'job.started', drive: jobUntilDeath('started') },
  { point: 'job.metrics:3', drive: jobUntilDeath('metrics') },
  { point: 'checkpoint.tmp-written:2', drive: jobUntilDeath('ckpt-tmp'), left: some(/\/work\/checkpoints\/\.tmp-step-000004-/) }, // in the training worker thread
  { point: 'checkpoint.before-row:1', drive: jobUntilDeath('ckpt-row-1'), left: some(/\/work\/checkpoints\/step-000002\/checkpoint\.json$/) },
  // the last checkpoint (step 8): the resumed run has no step left to train
  { point: 'checkpoint.before-row:4', drive: jobUntilDeath('ckpt-row-4'), left: some(/\/work\/checkpoints\/step-000008\/checkpoint\.json$/) },
  { point: 'output.tmp-written', drive: jobUntilDeath('output-tmp'), left: some(/^jobs\/ftjob-\w+\/out\.tmp-[^/]+\/config\.json$/) },
  { point: 'publish.done-received', drive: jobUntilDeath('done'), left: (paths) => some(/^jobs\/ftjob-\w+\/out\/config\.json$/)(paths) && !some(/result\.json$/)(paths) },
  { point: 'publish.result-written', drive: jobUntilDeath('result'), left: some(/^jobs\/ftjob-\w+\/result\.json$/) },
  { point: 'publish.moved', drive: jobUntilDeath('moved'), left: some(/^models\/ft_tiny_moved_ftjob-\w+\/config\.json$/) },
  { point: 'publish.loaded', drive: jobUntilDeath('loaded'), left: (paths) => some(/^models\/ft_tiny_loaded_ftjob-\w+\/config\.json$/)(paths) && !some(/^models\/ft_tiny_loaded_ftjob-\w+_ckpt-step-/)(paths) },
  { point: 'publish.checkpoint-moved:1', drive: jobUntilDeath('kept-1'), left: some(/^models\/ft_tiny_kept-1_ftjob-\w+_ckpt-step-8\/config\.json$/) },
  { point: 'publish.checkpoint-moved:3', drive: jobUntilDeath('kept-3'), left: some(/^models\/ft_tiny_kept-3_ftjob-\w+_ckpt-step-4\/config\.json$/) },
  { point: 'publish.committed', drive: jobUntilDeath('committed'), left: some(/^jobs\/ftjob-\w+\/work$/) },
  { point: 'model-delete.marked', drive: deleteNewestModel, left: some(/^models\/ft_tiny_committed_ftjob-\w+\/config\.json$/) }, // rows marked deleted, folders still there
  { point: 'remove-dir.renamed', drive: jobUntilDeath('cleanup'), left: some(/^jobs\/\.trash-ftjob-/) }, // the finished job's folder
  { point: 'remove-dir.renamed', drive: deleteNewestModel, left: some(/^models\/\.trash-ft_tiny_cleanup_/) }, // the model's folder
  {
    point: 'job.cancelled', // a running job, just marked cancelled
    drive: async (s) => {
      const id = await createJob(s, 'cancel', 200);
      while (!(await ok<{ data: { type: string }[] }>(s, 'GET', `/v1/fine_tuning/jobs/${id}/events`)).data.some((e) => e.type === 'metrics')) await sleep(25);
      cancelRequested.add(id);
      await ok(s, 'POST', `/v1/fine_tuning/jobs/${id}/cancel`);
    },
    left: some(/^jobs\/ftjob-\w+\/work$/),
  },
  {
    point: 'file-delete.marked', // hidden, its bytes still there
    drive: async (s) => {
      const id = await upload(s, 'doomed.jsonl', jsonl(alpaca(4, 'doomed')));
      deletedFiles.add(id);
      await ok(s, 'DELETE', `/v1/files/${id}`);
    },
    left: (paths) => paths.includes(`files/${[...deletedFiles].at(-1)}`),
  },
];

// One test per kill point, in order (each starts from the state the previous one recovered to).
describe(`the server recovers from SIGKILL at each of ${campaign.length} points`, () => {
  for (const [i, { point, drive, left }] of campaign.entries()) {
    it(`${i + 1}. ${point}`, async () => {
      await crashAt(point, drive);
      if (left) expect([point, 'left after the kill', left(tree())]).toEqual([point, 'left after the kill', true]);
      await recover(point);
    }, 120_000);
  }
});
