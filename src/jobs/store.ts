// The fine-tuning service's durable state, the same tables and queries on two engines (db.ts):
// SQLite in the data directory (the default; one process owns it) or PostgreSQL (replicas and
// training workers share it). Written only from main threads (a training thread posts messages;
// it never opens the database). Every state change is one transaction, so a crash (even kill -9)
// leaves the rows as they were before or after it, never half-way.
//
// Schema version 3 (SQLite: user_version; PostgreSQL: scratchgpt_migrations). Version 1 lacked
// `batches`, version 2 the lease columns; opening adds them, keeping every row. On PostgreSQL,
// files and models also have a `seq` (insertion order, SQLite's rowid), and INTEGER is BIGINT.
//
//   files            uploaded datasets and batch inputs, validated at upload; batch results
//     id TEXT PRIMARY KEY          'file-' + 24 base62
//     bytes INTEGER, filename TEXT, purpose TEXT ('fine-tune' | 'batch' | 'batch_output'), created_at INTEGER (unix s)
//     status TEXT                  'uploading' (row written before the file, so a crash leaves
//                                  proof of what to remove) → 'processed'; 'deleting' (row kept
//                                  until the file is gone). Only 'processed' files are visible.
//     path TEXT                    relative to the data dir: 'files/<id>'
//     format TEXT                  chat | prompt_completion | alpaca | classification (fine-tune); jsonl (batch, batch_output)
//     records INTEGER              number of records (examples)
//     labels TEXT                  JSON array of the sorted labels (classification files), else NULL
//   jobs             fine-tuning jobs; seq orders them (lists, cursors)
//     seq INTEGER PRIMARY KEY, id TEXT UNIQUE ('ftjob-' + 24 base62)
//     status TEXT                  validating_files | queued | running | succeeded | failed | cancelled
//     model TEXT (base model id), fine_tuned_model TEXT (set on success)
//     training_file TEXT, validation_file TEXT
//     hyperparameters TEXT         JSON {n_epochs, batch_size, learning_rate_multiplier}, resolved
//     method TEXT                  JSON: the job's `method` object, resolved (see fine-tuning.ts)
//     seed INTEGER, suffix TEXT, metadata TEXT (JSON)
//     error TEXT                   JSON {code, message, param} when failed
//     created_at, started_at, finished_at, estimated_finish INTEGER (unix s), trained_tokens INTEGER
//   job_events       the job's log: (job_id, seq) with seq 1, 2, … per job
//     created_at INTEGER, level TEXT (info | warn | error), type TEXT (message | metrics),
//     message TEXT, data TEXT (JSON, metrics: {step, total_steps, epoch, train_loss, valid_loss, …})
//   job_checkpoints  one row per checkpoint the trainer wrote: (job_id, step)
//     epoch INTEGER, created_at INTEGER, metrics TEXT (JSON), dir TEXT (relative to the data dir)
//   models           finetuned models served by this server
//     id TEXT PRIMARY KEY ('ft:…'), job_id TEXT, dir TEXT (relative: 'models/<folder>'),
//     created_at INTEGER, deleted INTEGER (0 | 1; a deleted model's folder is removed)
//   jobs and batches also: lease_owner TEXT, lease_expires INTEGER (unix ms, the database's clock):
//                    the process running it, until when (claimJob, claimBatch, renewLease)
//   batches          Batch API batches; seq orders them (lists, cursors, which runs first)
//     seq INTEGER PRIMARY KEY, id TEXT UNIQUE ('batch_' + 24 base62)
//     status TEXT                  validating | in_progress | finalizing | completed | failed |
//                                  expired | cancelling | cancelled
//     endpoint TEXT, input_file_id TEXT, completion_window TEXT ('24h'), metadata TEXT (JSON)
//     errors TEXT                  JSON [{code, message, param, line}] when validation failed
//     total, completed, failed INTEGER   request counts (completed/failed follow the output parts)
//     input_tokens, output_tokens INTEGER   usage summed over the successful lines
//     result_files TEXT            JSON {output, error}: file ids chosen once finalizing starts
//                                  (null: that part is empty), so a restart reuses them
//     output_file_id, error_file_id TEXT   set when those files exist (terminal states)
//     created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at,
//     cancelling_at, cancelled_at INTEGER (unix s)
import path from 'node:path';
import type { Db, Migration, Raw } from './db.js';
import { PostgresDb } from './postgres-db.js';
import { SqliteDb } from './sqlite-db.js';

export { StoreError, StoreUnavailable } from './db.js';
export { storeFailure } from './sqlite-db.js';

export type JobStatus = 'validating_files' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TERMINAL: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];
const TERMINAL_SQL = TERMINAL.map((s) => `'${s}'`).join(', ');

export interface FileRow {
  id: string;
  bytes: number;
  filename: string;
  purpose: string;
  created_at: number;
  status: string;
  path: string;
  format: string;
  records: number;
  labels: string[] | null;
}

export interface Hyperparameters {
  n_epochs: number;
  batch_size: number;
  learning_rate_multiplier: number;
}

export interface JobError {
  code: string;
  message: string;
  param: string | null;
}

export interface JobRow {
  seq: number;
  id: string;
  status: JobStatus;
  model: string;
  fine_tuned_model: string | null;
  training_file: string;
  validation_file: string | null;
  hyperparameters: Hyperparameters;
  method: Record<string, unknown>;
  seed: number;
  suffix: string | null;
  metadata: Record<string, string> | null;
  error: JobError | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  trained_tokens: number | null;
  estimated_finish: number | null;
}

export type BatchStatus = 'validating' | 'in_progress' | 'finalizing' | 'completed' | 'failed' | 'expired' | 'cancelling' | 'cancelled';
export const BATCH_TERMINAL: readonly BatchStatus[] = ['completed', 'failed', 'expired', 'cancelled'];
const BATCH_TERMINAL_SQL = BATCH_TERMINAL.map((s) => `'${s}'`).join(', ');

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export interface BatchRow {
  seq: number;
  id: string;
  status: BatchStatus;
  endpoint: string;
  input_file_id: string;
  completion_window: string;
  metadata: Record<string, string> | null;
  errors: BatchError[] | null;
  total: number;
  completed: number;
  failed: number;
  input_tokens: number;
  output_tokens: number;
  result_files: { output: string | null; error: string | null } | null;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
}

/** The batch columns kept as JSON text. */
const BATCH_JSON = ['errors', 'result_files'];

type BatchUpdate = Partial<Omit<BatchRow, 'seq' | 'id' | 'endpoint' | 'input_file_id' | 'completion_window' | 'metadata' | 'created_at' | 'expires_at'>>;

export interface EventRow {
  job_id: string;
  seq: number;
  created_at: number;
  level: 'info' | 'warn' | 'error';
  type: 'message' | 'metrics';
  message: string;
  data: Record<string, unknown> | null;
}

export interface CheckpointRow {
  job_id: string;
  step: number;
  epoch: number;
  created_at: number;
  metrics: Record<string, number>;
  dir: string | null;
}

export interface ModelRow {
  id: string;
  job_id: string;
  dir: string;
  created_at: number;
  deleted: boolean;
}

const SQLITE_V2 = `
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY, bytes INTEGER NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,
  created_at INTEGER NOT NULL, status TEXT NOT NULL, path TEXT NOT NULL, format TEXT NOT NULL,
  records INTEGER NOT NULL, labels TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
  model TEXT NOT NULL, fine_tuned_model TEXT, training_file TEXT NOT NULL, validation_file TEXT,
  hyperparameters TEXT NOT NULL, method TEXT NOT NULL, seed INTEGER NOT NULL, suffix TEXT,
  metadata TEXT, error TEXT, created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
  trained_tokens INTEGER, estimated_finish INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS job_events (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at INTEGER NOT NULL, level TEXT NOT NULL,
  type TEXT NOT NULL, message TEXT NOT NULL, data TEXT, PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS job_checkpoints (
  job_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, created_at INTEGER NOT NULL,
  metrics TEXT NOT NULL, dir TEXT, PRIMARY KEY (job_id, step)
);
CREATE TABLE IF NOT EXISTS models (
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL, dir TEXT NOT NULL, created_at INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
  endpoint TEXT NOT NULL, input_file_id TEXT NOT NULL, completion_window TEXT NOT NULL, metadata TEXT,
  errors TEXT, total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0, result_files TEXT, output_file_id TEXT, error_file_id TEXT,
  created_at INTEGER NOT NULL, in_progress_at INTEGER, expires_at INTEGER NOT NULL,
  finalizing_at INTEGER, completed_at INTEGER, failed_at INTEGER, expired_at INTEGER,
  cancelling_at INTEGER, cancelled_at INTEGER
);
CREATE INDEX IF NOT EXISTS batches_status ON batches(status);
`;


// Version 3: who holds a job's or a batch's lease (a worker's or replica's id) and until when
// (unix ms, the database's clock).
const SQLITE_V3 = `
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires INTEGER;
ALTER TABLE batches ADD COLUMN lease_owner TEXT;
ALTER TABLE batches ADD COLUMN lease_expires INTEGER;
`;

// PostgreSQL starts at version 3. BIGINT where SQLite has INTEGER (SQLite's are 64-bit), and
// DOUBLE PRECISION for a checkpoint's epoch (a mid-epoch one is fractional: SQLite keeps the REAL);
// files and models get the seq column SQLite's rowid stands for.
const POSTGRES_V3 = `
CREATE TABLE files (
  seq BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE, id TEXT PRIMARY KEY, bytes BIGINT NOT NULL,
  filename TEXT NOT NULL, purpose TEXT NOT NULL, created_at BIGINT NOT NULL, status TEXT NOT NULL,
  path TEXT NOT NULL, format TEXT NOT NULL, records BIGINT NOT NULL, labels TEXT
);
CREATE TABLE jobs (
  seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
  model TEXT NOT NULL, fine_tuned_model TEXT, training_file TEXT NOT NULL, validation_file TEXT,
  hyperparameters TEXT NOT NULL, method TEXT NOT NULL, seed BIGINT NOT NULL, suffix TEXT,
  metadata TEXT, error TEXT, created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT,
  trained_tokens BIGINT, estimated_finish BIGINT, lease_owner TEXT, lease_expires BIGINT
);
CREATE INDEX jobs_status ON jobs(status);
CREATE TABLE job_events (
  job_id TEXT NOT NULL, seq BIGINT NOT NULL, created_at BIGINT NOT NULL, level TEXT NOT NULL,
  type TEXT NOT NULL, message TEXT NOT NULL, data TEXT, PRIMARY KEY (job_id, seq)
);
CREATE TABLE job_checkpoints (
  job_id TEXT NOT NULL, step BIGINT NOT NULL, epoch DOUBLE PRECISION NOT NULL, created_at BIGINT NOT NULL,
  metrics TEXT NOT NULL, dir TEXT, PRIMARY KEY (job_id, step)
);
CREATE TABLE models (
  seq BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE, id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
  dir TEXT NOT NULL, created_at BIGINT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE batches (
  seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
  endpoint TEXT NOT NULL, input_file_id TEXT NOT NULL, completion_window TEXT NOT NULL, metadata TEXT,
  errors TEXT, total BIGINT NOT NULL DEFAULT 0, completed BIGINT NOT NULL DEFAULT 0,
  failed BIGINT NOT NULL DEFAULT 0, input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0, result_files TEXT, output_file_id TEXT, error_file_id TEXT,
  created_at BIGINT NOT NULL, in_progress_at BIGINT, expires_at BIGINT NOT NULL,
  finalizing_at BIGINT, completed_at BIGINT, failed_at BIGINT, expired_at BIGINT,
  cancelling_at BIGINT, cancelled_at BIGINT, lease_owner TEXT, lease_expires BIGINT
);
CREATE INDEX batches_status ON batches(status);
`;

// Every SQLite version so far only added tables (CREATE … IF NOT EXISTS) or columns.
const SQLITE_MIGRATIONS: Migration[] = [
  { to: 2, sql: SQLITE_V2 },
  { to: 3, sql: SQLITE_V3 },
];
const POSTGRES_MIGRATIONS: Migration[] = [{ to: 3, sql: POSTGRES_V3 }];

/** The schema version this code writes; older stores are brought up to it on opening. */
export const SCHEMA_VERSION = 3;

/** Notification channels: a job was queued or cancelled (payload: its id); a finetuned model was added or deleted (payload: its id). */
export const JOBS_CHANNEL = 'scratchgpt_jobs';
export const MODELS_CHANNEL = 'scratchgpt_models';
const now = () => Math.floor(Date.now() / 1000);
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(s: unknown): T | null => (typeof s === 'string' ? (JSON.parse(s) as T) : null);

/** A row without the columns that are the store's own business (insertion order, leases). */
function own(r: Raw): Raw {
  const { seq: _seq, lease_owner: _owner, lease_expires: _expires, ...rest } = r;
  return rest;
}

function fileRow(r: Raw): FileRow {
  return { ...(own(r) as unknown as FileRow), labels: parse<string[]>(r.labels) };
}

function modelRow(r: Raw): ModelRow {
  return { ...(own(r) as unknown as ModelRow), deleted: r.deleted === 1 };
}

function jobRow(r: Raw): JobRow {
  const { lease_owner: _owner, lease_expires: _expires, ...rest } = r;
  return {
    ...(rest as unknown as JobRow),
    hyperparameters: parse<Hyperparameters>(r.hyperparameters)!,
    method: parse<Record<string, unknown>>(r.method)!,
    metadata: parse<Record<string, string>>(r.metadata),
    error: parse<JobError>(r.error),
  };
}

function batchRow(r: Raw): BatchRow {
  const { lease_owner: _owner, lease_expires: _expires, ...rest } = r;
  return {
    ...(rest as unknown as BatchRow),
    metadata: parse<Record<string, string>>(r.metadata),
    errors: parse<BatchError[]>(r.errors),
    result_files: parse<BatchRow['result_files']>(r.result_files),
  };
}

function eventRow(r: Raw): EventRow {
  return { ...(r as unknown as EventRow), data: parse<Record<string, unknown>>(r.data) };
}

function checkpointRow(r: Raw): CheckpointRow {
  return { ...(r as unknown as CheckpointRow), metrics: parse<Record<string, number>>(r.metrics)! };
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

export class JobStore {
  private constructor(
    private readonly db: Db,
    /** The SQLite file (undefined on PostgreSQL). */
    readonly file: string | undefined,
  ) {}

  /**
   * Opens the store: PostgreSQL at `databaseUrl`, else `<dataDir>/scratchgpt.db` (`create` allows
   * making a new one where none exists). The schema is brought up to date first, once.
   */
  static async open(o: { dataDir: string; create?: boolean; databaseUrl?: string; log?: (line: string) => void }): Promise<JobStore> {
    if (o.databaseUrl) {
      const db = await PostgresDb.open(o.databaseUrl, o.log ?? ((l) => console.error(`scratchgpt store: ${l}`)));
      try {
        await db.migrate(POSTGRES_MIGRATIONS);
      } catch (e) {
        await db.close();
        throw e;
      }
      return new JobStore(db, undefined);
    }
    const file = path.join(o.dataDir, 'scratchgpt.db');
    const db = new SqliteDb(file, { create: o.create });
    await db.migrate(SQLITE_MIGRATIONS);
    // One process owns the file, so every lease in it is a dead process's.
    await db.run('UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner IS NOT NULL');
    await db.run('UPDATE batches SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner IS NOT NULL');
    return new JobStore(db, file);
  }

  get engine(): Db['engine'] {
    return this.db.engine;
  }

  close(): Promise<void> {
    return this.db.close();
  }

  /** Runs `fn` in one transaction; every call inside goes through `tx`. */
  transaction<T>(fn: (tx: JobStore) => Promise<T>): Promise<T> {
    return this.db.transaction((db) => fn(new JobStore(db, this.file)));
  }

  /** Tells every process on this database; inside a transaction, once it commits. */
  notify(channel: string, payload: string): Promise<void> {
    return this.db.notify(channel, payload);
  }

  listen(channel: string, fn: (payload: string) => void): Promise<void> {
    return this.db.listen(channel, fn);
  }

  /** Throws when the database does not answer. */
  async ping(): Promise<void> {
    await this.db.all('SELECT 1 AS one');
  }

  private async one(sql: string, args: unknown[]): Promise<Raw | undefined> {
    return (await this.db.all(sql, args))[0];
  }

  // ─── files ───

  /** Records an upload before its bytes are written ('uploading': invisible until markFileProcessed). */
  async insertFile(f: Omit<FileRow, 'created_at' | 'status'>): Promise<FileRow> {
    const row: FileRow = { ...f, created_at: now(), status: 'uploading' };
    await this.db.run('INSERT INTO files (id, bytes, filename, purpose, created_at, status, path, format, records, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
      row.id,
      row.bytes,
      row.filename,
      row.purpose,
      row.created_at,
      row.status,
      row.path,
      row.format,
      row.records,
      json(row.labels),
    ]);
    return row;
  }

  async markFileProcessed(id: string): Promise<FileRow> {
    await this.db.run(`UPDATE files SET status = 'processed' WHERE id = ?`, [id]);
    return (await this.getFile(id))!;
  }

  /** Hides a file before its bytes are removed; the row goes with deleteFile once they are. */
  async markFileDeleting(id: string): Promise<void> {
    await this.db.run(`UPDATE files SET status = 'deleting' WHERE id = ?`, [id]);
  }

  /** A stored ('processed') file. */
  async getFile(id: string): Promise<FileRow | undefined> {
    const r = await this.one(`SELECT * FROM files WHERE id = ? AND status = 'processed'`, [id]);
    return r && fileRow(r);
  }

  /** The ids of every file row, in whatever state (what the start-up sweep may keep). */
  async fileRowIds(): Promise<Set<string>> {
    return new Set((await this.db.all('SELECT id FROM files')).map((r) => r.id as string));
  }

  /**
   * Uploads and deletes a crash cut short: their rows say what to remove. `olderThan` (unix s)
   * leaves alone those another process sharing the database may still be doing.
   */
  async unsettledFiles(olderThan = Number.MAX_SAFE_INTEGER): Promise<{ id: string; status: string }[]> {
    return (await this.db.all(`SELECT id, status FROM files WHERE status != 'processed' AND created_at < ?`, [olderThan])) as { id: string; status: string }[];
  }

  /** Files newest first (or oldest first), after the cursor `after` (a file id). */
  async listFiles(o: { after?: string; limit: number; order: 'asc' | 'desc'; purpose?: string }): Promise<Page<FileRow>> {
    const cmp = o.order === 'desc' ? '<' : '>';
    const by = this.db.insertionOrder;
    const where: string[] = [`status = 'processed'`];
    const args: unknown[] = [];
    if (o.purpose) {
      where.push('purpose = ?');
      args.push(o.purpose);
    }
    if (o.after) {
      where.push(`${by} ${cmp} (SELECT ${by} FROM files WHERE id = ?)`);
      args.push(o.after);
    }
    const sql = `SELECT * FROM files WHERE ${where.join(' AND ')} ORDER BY ${by} ${o.order.toUpperCase()} LIMIT ?`;
    const rows = (await this.db.all(sql, [...args, o.limit + 1])).map(fileRow);
    return { data: rows.slice(0, o.limit), has_more: rows.length > o.limit };
  }

  async deleteFile(id: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM files WHERE id = ?', [id])) > 0;
  }

  /** Jobs not yet finished that read this file (it must outlive them: a resumed job reads it again). */
  async jobsUsingFile(id: string): Promise<string[]> {
    const rows = await this.db.all(`SELECT id FROM jobs WHERE (training_file = ? OR validation_file = ?) AND status NOT IN (${TERMINAL_SQL})`, [id, id]);
    return rows.map((r) => r.id as string);
  }

  // ─── jobs ───

  async insertJob(
    j: Omit<JobRow, 'seq' | 'created_at' | 'started_at' | 'finished_at' | 'trained_tokens' | 'estimated_finish' | 'error' | 'fine_tuned_model'>,
  ): Promise<JobRow> {
    await this.db.run(
      `INSERT INTO jobs (id, status, model, training_file, validation_file, hyperparameters, method, seed, suffix, metadata, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [j.id, j.status, j.model, j.training_file, j.validation_file, json(j.hyperparameters), json(j.method), j.seed, j.suffix, json(j.metadata), now()],
    );
    return (await this.getJob(j.id))!;
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    const r = await this.one('SELECT * FROM jobs WHERE id = ?', [id]);
    return r && jobRow(r);
  }

  /** A job, its row locked until the transaction ends (PostgreSQL), for a change that depends on its state. */
  async lockJob(id: string): Promise<JobRow | undefined> {
    const r = await this.one(`SELECT * FROM jobs WHERE id = ?${this.db.forUpdate}`, [id]);
    return r && jobRow(r);
  }

  /** Jobs newest first, after the cursor `after` (a job id). */
  async listJobs(o: { after?: string; limit: number }): Promise<Page<JobRow>> {
    const rows = o.after
      ? await this.db.all('SELECT * FROM jobs WHERE seq < (SELECT seq FROM jobs WHERE id = ?) ORDER BY seq DESC LIMIT ?', [o.after, o.limit + 1])
      : await this.db.all('SELECT * FROM jobs ORDER BY seq DESC LIMIT ?', [o.limit + 1]);
    return { data: rows.slice(0, o.limit).map(jobRow), has_more: rows.length > o.limit };
  }

  /** Jobs in these states, oldest first. */
  async jobsIn(...statuses: JobStatus[]): Promise<JobRow[]> {
    const rows = await this.db.all(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`, statuses);
    return rows.map(jobRow);
  }

  async updateJob(
    id: string,
    fields: Partial<Pick<JobRow, 'status' | 'fine_tuned_model' | 'error' | 'started_at' | 'finished_at' | 'trained_tokens' | 'estimated_finish'>>,
  ): Promise<void> {
    await this.set('jobs', id, fields, ['error']);
  }

  /** Updates a job only if it is still in state `from`; whether it was (another process may have moved it first). */
  async moveJob(id: string, from: JobStatus, fields: Parameters<JobStore['updateJob']>[1]): Promise<boolean> {
    return this.set('jobs', id, fields, ['error'], from);
  }

  /** Sets `fields` (those named in `jsonColumns` as JSON) on row `id`, only while its status is `from` when given; whether a row changed. */
  private async set(table: 'jobs' | 'batches', id: string, fields: object, jsonColumns: string[], from?: string): Promise<boolean> {
    const entries = Object.entries(fields);
    if (!entries.length) return false;
    const values = entries.map(([k, v]) => (jsonColumns.includes(k) ? json(v) : v));
    const only = from === undefined ? '' : ' AND status = ?';
    const sql = `UPDATE ${table} SET ${entries.map(([k]) => `${k} = ?`).join(', ')} WHERE id = ?${only}`;
    return (await this.db.run(sql, [...values, id, ...(from === undefined ? [] : [from])])) > 0;
  }

  /** Jobs not yet finished that start from this model. */
  async jobsUsingModel(model: string): Promise<string[]> {
    const rows = await this.db.all(`SELECT id FROM jobs WHERE model = ? AND status NOT IN (${TERMINAL_SQL})`, [model]);
    return rows.map((r) => r.id as string);
  }

  // ─── leases: which process runs a job or a batch ───

  /**
   * Takes the lease of the oldest job that needs a runner and has none alive (a running job whose
   * runner died first, then queued ones): `owner` holds it for `ms`. Undefined when there is none.
   * On PostgreSQL, SKIP LOCKED lets claimers pass over a row another is taking instead of waiting.
   */
  claimJob(owner: string, ms: number): Promise<JobRow | undefined> {
    return this.claim('jobs', `status IN ('running', 'queued')`, `CASE status WHEN 'running' THEN 0 ELSE 1 END, seq`, owner, ms).then((r) => r && jobRow(r));
  }

  /** Takes the lease of the oldest batch to run, finish or cancel (validated) that has none alive (see claimJob); or of batch `id` only. */
  claimBatch(owner: string, ms: number, id?: string): Promise<BatchRow | undefined> {
    const needed = `status IN ('in_progress', 'finalizing', 'cancelling')${id === undefined ? '' : ' AND id = ?'}`;
    return this.claim('batches', needed, 'seq', owner, ms, id === undefined ? [] : [id]).then((r) => r && batchRow(r));
  }

  private async claim(table: 'jobs' | 'batches', needed: string, order: string, owner: string, ms: number, args: unknown[] = []): Promise<Raw | undefined> {
    const skip = this.db.engine === 'postgres' ? ' FOR UPDATE SKIP LOCKED' : '';
    const now = this.db.nowMs;
    return this.one(
      `UPDATE ${table} SET lease_owner = ?, lease_expires = ${now} + ? WHERE id = (
         SELECT id FROM ${table} WHERE ${needed} AND (lease_owner IS NULL OR lease_expires < ${now}) ORDER BY ${order} LIMIT 1${skip}
       ) RETURNING *`,
      [owner, ms, ...args],
    );
  }

  /**
   * Extends `owner`'s lease on a job or batch by `ms`; returns its status, or undefined when the
   * lease is no longer `owner`'s (it expired and another took it): the owner must stop at once.
   */
  async renewLease(table: 'jobs' | 'batches', id: string, owner: string, ms: number): Promise<string | undefined> {
    const r = await this.one(`UPDATE ${table} SET lease_expires = ${this.db.nowMs} + ? WHERE id = ? AND lease_owner = ? RETURNING status`, [ms, id, owner]);
    return r?.status as string | undefined;
  }

  /** Gives a lease up (the owner is done with the row, or stops and leaves it to another). */
  async releaseLease(table: 'jobs' | 'batches', id: string, owner: string): Promise<void> {
    await this.db.run(`UPDATE ${table} SET lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?`, [id, owner]);
  }

  /** Whether `owner` still holds the lease; in a transaction, locks the row until it ends (so a final update cannot race a takeover). */
  async holdsLease(table: 'jobs' | 'batches', id: string, owner: string): Promise<boolean> {
    return (await this.one(`SELECT lease_owner FROM ${table} WHERE id = ?${this.db.forUpdate}`, [id]))?.lease_owner === owner;
  }

  // ─── events ───

  async addEvent(jobId: string, e: { level?: EventRow['level']; type?: EventRow['type']; message: string; data?: Record<string, unknown> | null }): Promise<void> {
    // The job's row lock orders writers (a runner and a cancel on two machines) so the numbers never collide.
    await this.transaction(async (tx) => {
      await tx.db.all(`SELECT id FROM jobs WHERE id = ?${tx.db.forUpdate}`, [jobId]);
      await tx.db.run(
        `INSERT INTO job_events (job_id, seq, created_at, level, type, message, data)
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ? FROM job_events WHERE job_id = ?`,
        [jobId, now(), e.level ?? 'info', e.type ?? 'message', e.message, json(e.data), jobId],
      );
    });
  }

  /** A job's events newest first, before the event numbered `before` (the `after` cursor). */
  async listEvents(jobId: string, o: { before?: number; limit: number }): Promise<Page<EventRow>> {
    const rows = await this.db.all('SELECT * FROM job_events WHERE job_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?', [
      jobId,
      o.before ?? Number.MAX_SAFE_INTEGER,
      o.limit + 1,
    ]);
    return { data: rows.slice(0, o.limit).map(eventRow), has_more: rows.length > o.limit };
  }

  /** The highest step a job's metrics events reached (-1 without any): a resumed run does not log those steps again. */
  async lastMetricsStep(jobId: string): Promise<number> {
    const rows = await this.db.all(`SELECT data FROM job_events WHERE job_id = ? AND type = 'metrics' ORDER BY seq DESC LIMIT 1`, [jobId]);
    return parse<{ step?: number }>(rows[0]?.data)?.step ?? -1;
  }

  // ─── checkpoints ───

  async addCheckpoint(c: Omit<CheckpointRow, 'created_at'>): Promise<void> {
    // A resumed job can write a checkpoint for a step again: the newer one wins.
    await this.db.run(
      `INSERT INTO job_checkpoints (job_id, step, epoch, created_at, metrics, dir) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id, step) DO UPDATE SET epoch = excluded.epoch, created_at = excluded.created_at, metrics = excluded.metrics, dir = excluded.dir`,
      [c.job_id, c.step, c.epoch, now(), json(c.metrics), c.dir],
    );
  }

  /** A job's checkpoints newest (highest step) first, before step `before`. */
  async listCheckpoints(jobId: string, o: { before?: number; limit: number }): Promise<Page<CheckpointRow>> {
    const rows = await this.db.all('SELECT * FROM job_checkpoints WHERE job_id = ? AND step < ? ORDER BY step DESC LIMIT ?', [
      jobId,
      o.before ?? Number.MAX_SAFE_INTEGER,
      o.limit + 1,
    ]);
    return { data: rows.slice(0, o.limit).map(checkpointRow), has_more: rows.length > o.limit };
  }

  // ─── models ───

  async insertModel(m: { id: string; job_id: string; dir: string }): Promise<void> {
    await this.db.run(
      `INSERT INTO models (id, job_id, dir, created_at, deleted) VALUES (?, ?, ?, ?, 0)
       ON CONFLICT (id) DO UPDATE SET job_id = excluded.job_id, dir = excluded.dir, created_at = excluded.created_at, deleted = 0`,
      [m.id, m.job_id, m.dir, now()],
    );
  }

  async getModel(id: string): Promise<ModelRow | undefined> {
    const r = await this.one('SELECT * FROM models WHERE id = ?', [id]);
    return r && modelRow(r);
  }

  /** Models in creation order; `deleted` selects the live ones (false) or the deleted ones (true). */
  async listModels(deleted: boolean): Promise<ModelRow[]> {
    const rows = await this.db.all(`SELECT * FROM models WHERE deleted = ? ORDER BY created_at, ${this.db.insertionOrder}`, [deleted ? 1 : 0]);
    return rows.map(modelRow);
  }

  async markModelDeleted(id: string): Promise<void> {
    await this.db.run('UPDATE models SET deleted = 1 WHERE id = ?', [id]);
  }

  // ─── batches ───

  async insertBatch(
    b: Pick<BatchRow, 'id' | 'endpoint' | 'input_file_id' | 'completion_window' | 'metadata'> & { window_seconds: number },
  ): Promise<BatchRow> {
    const created = now();
    await this.db.run(
      `INSERT INTO batches (id, status, endpoint, input_file_id, completion_window, metadata, created_at, expires_at)
       VALUES (?, 'validating', ?, ?, ?, ?, ?, ?)`,
      [b.id, b.endpoint, b.input_file_id, b.completion_window, json(b.metadata), created, created + b.window_seconds],
    );
    return (await this.getBatch(b.id))!;
  }

  async getBatch(id: string): Promise<BatchRow | undefined> {
    const r = await this.one('SELECT * FROM batches WHERE id = ?', [id]);
    return r && batchRow(r);
  }

  /** Batches newest first, after the cursor `after` (a batch id). */
  async listBatches(o: { after?: string; limit: number }): Promise<Page<BatchRow>> {
    const rows = o.after
      ? await this.db.all('SELECT * FROM batches WHERE seq < (SELECT seq FROM batches WHERE id = ?) ORDER BY seq DESC LIMIT ?', [o.after, o.limit + 1])
      : await this.db.all('SELECT * FROM batches ORDER BY seq DESC LIMIT ?', [o.limit + 1]);
    return { data: rows.slice(0, o.limit).map(batchRow), has_more: rows.length > o.limit };
  }

  /** Batches in these states, oldest first. */
  async batchesIn(...statuses: BatchStatus[]): Promise<BatchRow[]> {
    const rows = await this.db.all(`SELECT * FROM batches WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`, statuses);
    return rows.map(batchRow);
  }

  async updateBatch(id: string, fields: BatchUpdate): Promise<void> {
    await this.set('batches', id, fields, BATCH_JSON);
  }

  /** Updates a batch only if it is still in state `from`; whether it was (another process may have moved it first). */
  async moveBatch(id: string, from: BatchStatus, fields: BatchUpdate): Promise<boolean> {
    return this.set('batches', id, fields, BATCH_JSON, from);
  }

  /** Batches not yet finished that read this input file (it must outlive them: a resumed batch reads it again). */
  async batchesUsingFile(id: string): Promise<string[]> {
    const rows = await this.db.all(`SELECT id FROM batches WHERE input_file_id = ? AND status NOT IN (${BATCH_TERMINAL_SQL})`, [id]);
    return rows.map((r) => r.id as string);
  }
}
