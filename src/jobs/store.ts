// The fine-tuning service's durable state: one SQLite database (better-sqlite3, WAL) in the data
// directory, written only from the HTTP thread (the training worker posts messages; it never opens
// the database). Every state change is one transaction, so a crash (even kill -9) leaves the rows
// as they were before or after it, never half-way.
//
// Schema (user_version 2; version 1 lacked `batches`, which opening adds, keeping every row):
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
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

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

const SCHEMA = `
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

/** The schema version this code writes; older stores are brought up to it on opening. */
const SCHEMA_VERSION = 2;

const now = () => Math.floor(Date.now() / 1000);
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(s: unknown): T | null => (typeof s === 'string' ? (JSON.parse(s) as T) : null);

type Raw = Record<string, unknown>;

function fileRow(r: Raw): FileRow {
  return { ...(r as unknown as FileRow), labels: parse<string[]>(r.labels) };
}

function jobRow(r: Raw): JobRow {
  return {
    ...(r as unknown as JobRow),
    hyperparameters: parse<Hyperparameters>(r.hyperparameters)!,
    method: parse<Record<string, unknown>>(r.method)!,
    metadata: parse<Record<string, string>>(r.metadata),
    error: parse<JobError>(r.error),
  };
}

function batchRow(r: Raw): BatchRow {
  return {
    ...(r as unknown as BatchRow),
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

/** The store cannot be opened as it is; the message says what to do. */
export class StoreError extends Error {}

const RECOVER =
  'refusing to start, since that would treat every stored file, job and model as unknown. Restore scratchgpt.db from a backup, or move the data folder away to start afresh';

/** What an SQLite or file-system error on opening means, in words. */
export function storeFailure(e: unknown): string {
  const code = (e as { code?: string }).code ?? '';
  const message = (e as Error).message;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return `it is not a readable SQLite database (${message}). Restore it from a backup`;
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_CANTOPEN' || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return `the data folder is not writable (${code}: ${message}); scratchgpt needs to write there (check the mount and the permissions, or pick another --data-dir)`;
  }
  return message;
}

export class JobStore {
  readonly db: Database.Database;
  /** `<dataDir>/scratchgpt.db` */
  readonly file: string;

  /**
   * Opens `<dataDir>/scratchgpt.db`; `create` allows making a new one where none exists. A file
   * that is there but empty or not a database is an error, never silently a fresh store: the
   * files and models beside it would look like leftovers.
   */
  constructor(
    readonly dataDir: string,
    { create = true } = {},
  ) {
    const file = (this.file = path.join(dataDir, 'scratchgpt.db'));
    const existed = fs.existsSync(file);
    if (!existed && !create) throw new StoreError(`${file} is missing, but the data folder holds files, jobs or models: ${RECOVER}`);
    if (existed && fs.statSync(file).size === 0) throw new StoreError(`${file} is empty (0 bytes): ${RECOVER}`);
    try {
      this.db = new Database(file);
    } catch (e) {
      throw new StoreError(`cannot open ${file}: ${storeFailure(e)}`);
    }
    // One server per data folder: two would both resume the same running job. The exclusive lock
    // is SQLite's own (an fcntl lock), so the OS drops it when the process dies, kill -9 included.
    try {
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('busy_timeout = 0');
      this.db.pragma('journal_mode = WAL');
      this.db.exec('BEGIN IMMEDIATE; COMMIT');
      if (existed && (this.db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'files'`).get() as { n: number }).n === 0) {
        throw new StoreError(`${file} holds no scratchgpt tables: ${RECOVER}`);
      }
    } catch (e) {
      this.db.close();
      if (e instanceof StoreError) throw e;
      if ((e as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw new StoreError(`the data folder ${dataDir} is in use by another scratchgpt server`);
      throw new StoreError(`cannot open ${file}: ${storeFailure(e)}`);
    }
    // FULL: a committed transaction survives power loss too, not only a killed process. Writes
    // are a few per training step, so the fsyncs cost nothing measurable.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      this.db.close();
      throw new StoreError(`${file} has schema version ${version}; this scratchgpt knows version ${SCHEMA_VERSION} (a newer scratchgpt wrote it)`);
    }
    // Every version so far only added tables: CREATE … IF NOT EXISTS is the whole migration, in
    // one transaction with the new version number so a crash leaves the old version or the new.
    this.transaction(() => {
      this.db.exec(SCHEMA);
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ─── files ───

  /** Records an upload before its bytes are written ('uploading': invisible until markFileProcessed). */
  insertFile(f: Omit<FileRow, 'created_at' | 'status'>): FileRow {
    const row: FileRow = { ...f, created_at: now(), status: 'uploading' };
    this.db
      .prepare('INSERT INTO files (id, bytes, filename, purpose, created_at, status, path, format, records, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(row.id, row.bytes, row.filename, row.purpose, row.created_at, row.status, row.path, row.format, row.records, json(row.labels));
    return row;
  }

  markFileProcessed(id: string): FileRow {
    this.db.prepare(`UPDATE files SET status = 'processed' WHERE id = ?`).run(id);
    return this.getFile(id)!;
  }

  /** Hides a file before its bytes are removed; the row goes with deleteFile once they are. */
  markFileDeleting(id: string): void {
    this.db.prepare(`UPDATE files SET status = 'deleting' WHERE id = ?`).run(id);
  }

  /** A stored ('processed') file. */
  getFile(id: string): FileRow | undefined {
    const r = this.db.prepare(`SELECT * FROM files WHERE id = ? AND status = 'processed'`).get(id) as Raw | undefined;
    return r && fileRow(r);
  }

  /** Whether any row, in whatever state, names this file id. */
  hasFileRow(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM files WHERE id = ?').get(id) !== undefined;
  }

  /** Uploads and deletes a crash cut short: their rows say what to remove. */
  unsettledFiles(): { id: string; status: string }[] {
    return this.db.prepare(`SELECT id, status FROM files WHERE status != 'processed'`).all() as { id: string; status: string }[];
  }

  /** Files newest first (or oldest first), after the cursor `after` (a file id). */
  listFiles(o: { after?: string; limit: number; order: 'asc' | 'desc'; purpose?: string }): Page<FileRow> {
    const cmp = o.order === 'desc' ? '<' : '>';
    const where: string[] = [`status = 'processed'`];
    const args: unknown[] = [];
    if (o.purpose) {
      where.push('purpose = ?');
      args.push(o.purpose);
    }
    if (o.after) {
      where.push(`rowid ${cmp} (SELECT rowid FROM files WHERE id = ?)`);
      args.push(o.after);
    }
    const sql = `SELECT * FROM files WHERE ${where.join(' AND ')} ORDER BY rowid ${o.order.toUpperCase()} LIMIT ?`;
    const rows = (this.db.prepare(sql).all(...args, o.limit + 1) as Raw[]).map(fileRow);
    return { data: rows.slice(0, o.limit), has_more: rows.length > o.limit };
  }

  deleteFile(id: string): boolean {
    return this.db.prepare('DELETE FROM files WHERE id = ?').run(id).changes > 0;
  }

  /** Jobs not yet finished that read this file (it must outlive them: a resumed job reads it again). */
  jobsUsingFile(id: string): string[] {
    const rows = this.db
      .prepare(`SELECT id FROM jobs WHERE (training_file = ? OR validation_file = ?) AND status NOT IN (${TERMINAL_SQL})`)
      .all(id, id) as { id: string }[];
    return rows.map((r) => r.id);
  }

  // ─── jobs ───

  insertJob(j: Omit<JobRow, 'seq' | 'created_at' | 'started_at' | 'finished_at' | 'trained_tokens' | 'estimated_finish' | 'error' | 'fine_tuned_model'>): JobRow {
    const created = now();
    this.db
      .prepare(
        `INSERT INTO jobs (id, status, model, training_file, validation_file, hyperparameters, method, seed, suffix, metadata, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(j.id, j.status, j.model, j.training_file, j.validation_file, json(j.hyperparameters), json(j.method), j.seed, j.suffix, json(j.metadata), created);
    return this.getJob(j.id)!;
  }

  getJob(id: string): JobRow | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Raw | undefined;
    return r && jobRow(r);
  }

  /** Jobs newest first, after the cursor `after` (a job id). */
  listJobs(o: { after?: string; limit: number }): Page<JobRow> {
    const rows = (
      o.after
        ? this.db.prepare('SELECT * FROM jobs WHERE seq < (SELECT seq FROM jobs WHERE id = ?) ORDER BY seq DESC LIMIT ?').all(o.after, o.limit + 1)
        : this.db.prepare('SELECT * FROM jobs ORDER BY seq DESC LIMIT ?').all(o.limit + 1)
    ) as Raw[];
    return { data: rows.slice(0, o.limit).map(jobRow), has_more: rows.length > o.limit };
  }

  /** Jobs in these states, oldest first. */
  jobsIn(...statuses: JobStatus[]): JobRow[] {
    const rows = this.db.prepare(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`).all(...statuses) as Raw[];
    return rows.map(jobRow);
  }

  updateJob(id: string, fields: Partial<Pick<JobRow, 'status' | 'fine_tuned_model' | 'error' | 'started_at' | 'finished_at' | 'trained_tokens' | 'estimated_finish'>>): void {
    const cols = Object.keys(fields) as (keyof typeof fields)[];
    if (!cols.length) return;
    const values = cols.map((k) => (k === 'error' ? json(fields[k]) : fields[k]));
    this.db.prepare(`UPDATE jobs SET ${cols.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`).run(...values, id);
  }

  /** Jobs not yet finished that start from this model. */
  jobsUsingModel(model: string): string[] {
    const rows = this.db.prepare(`SELECT id FROM jobs WHERE model = ? AND status NOT IN (${TERMINAL_SQL})`).all(model) as { id: string }[];
    return rows.map((r) => r.id);
  }

  // ─── events ───

  addEvent(jobId: string, e: { level?: EventRow['level']; type?: EventRow['type']; message: string; data?: Record<string, unknown> | null }): void {
    this.db
      .prepare(
        `INSERT INTO job_events (job_id, seq, created_at, level, type, message, data)
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ? FROM job_events WHERE job_id = ?`,
      )
      .run(jobId, now(), e.level ?? 'info', e.type ?? 'message', e.message, json(e.data), jobId);
  }

  /** A job's events newest first, before the event numbered `before` (the `after` cursor). */
  listEvents(jobId: string, o: { before?: number; limit: number }): Page<EventRow> {
    const rows = this.db
      .prepare('SELECT * FROM job_events WHERE job_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?')
      .all(jobId, o.before ?? Number.MAX_SAFE_INTEGER, o.limit + 1) as Raw[];
    return { data: rows.slice(0, o.limit).map(eventRow), has_more: rows.length > o.limit };
  }

  // ─── checkpoints ───

  addCheckpoint(c: Omit<CheckpointRow, 'created_at'>): void {
    // A resumed job can write a checkpoint for a step again: the newer one wins.
    this.db
      .prepare('INSERT OR REPLACE INTO job_checkpoints (job_id, step, epoch, created_at, metrics, dir) VALUES (?, ?, ?, ?, ?, ?)')
      .run(c.job_id, c.step, c.epoch, now(), json(c.metrics), c.dir);
  }

  /** A job's checkpoints newest (highest step) first, before step `before`. */
  listCheckpoints(jobId: string, o: { before?: number; limit: number }): Page<CheckpointRow> {
    const rows = this.db
      .prepare('SELECT * FROM job_checkpoints WHERE job_id = ? AND step < ? ORDER BY step DESC LIMIT ?')
      .all(jobId, o.before ?? Number.MAX_SAFE_INTEGER, o.limit + 1) as Raw[];
    return { data: rows.slice(0, o.limit).map(checkpointRow), has_more: rows.length > o.limit };
  }

  // ─── models ───

  insertModel(m: { id: string; job_id: string; dir: string }): void {
    this.db.prepare('INSERT OR REPLACE INTO models (id, job_id, dir, created_at, deleted) VALUES (?, ?, ?, ?, 0)').run(m.id, m.job_id, m.dir, now());
  }

  getModel(id: string): ModelRow | undefined {
    const r = this.db.prepare('SELECT * FROM models WHERE id = ?').get(id) as Raw | undefined;
    return r && { ...(r as unknown as ModelRow), deleted: r.deleted === 1 };
  }

  /** Models in creation order; `deleted` selects the live ones (false) or the deleted ones (true). */
  listModels(deleted: boolean): ModelRow[] {
    const rows = this.db.prepare('SELECT * FROM models WHERE deleted = ? ORDER BY created_at, rowid').all(deleted ? 1 : 0) as Raw[];
    return rows.map((r) => ({ ...(r as unknown as ModelRow), deleted }));
  }

  markModelDeleted(id: string): void {
    this.db.prepare('UPDATE models SET deleted = 1 WHERE id = ?').run(id);
  }

  // ─── batches ───

  insertBatch(b: Pick<BatchRow, 'id' | 'endpoint' | 'input_file_id' | 'completion_window' | 'metadata'> & { window_seconds: number }): BatchRow {
    const created = now();
    this.db
      .prepare(
        `INSERT INTO batches (id, status, endpoint, input_file_id, completion_window, metadata, created_at, expires_at)
         VALUES (?, 'validating', ?, ?, ?, ?, ?, ?)`,
      )
      .run(b.id, b.endpoint, b.input_file_id, b.completion_window, json(b.metadata), created, created + b.window_seconds);
    return this.getBatch(b.id)!;
  }

  getBatch(id: string): BatchRow | undefined {
    const r = this.db.prepare('SELECT * FROM batches WHERE id = ?').get(id) as Raw | undefined;
    return r && batchRow(r);
  }

  /** Batches newest first, after the cursor `after` (a batch id). */
  listBatches(o: { after?: string; limit: number }): Page<BatchRow> {
    const rows = (
      o.after
        ? this.db.prepare('SELECT * FROM batches WHERE seq < (SELECT seq FROM batches WHERE id = ?) ORDER BY seq DESC LIMIT ?').all(o.after, o.limit + 1)
        : this.db.prepare('SELECT * FROM batches ORDER BY seq DESC LIMIT ?').all(o.limit + 1)
    ) as Raw[];
    return { data: rows.slice(0, o.limit).map(batchRow), has_more: rows.length > o.limit };
  }

  /** Batches in these states, oldest first. */
  batchesIn(...statuses: BatchStatus[]): BatchRow[] {
    const rows = this.db.prepare(`SELECT * FROM batches WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`).all(...statuses) as Raw[];
    return rows.map(batchRow);
  }

  updateBatch(id: string, fields: BatchUpdate): void {
    const cols = Object.keys(fields) as (keyof BatchUpdate)[];
    if (!cols.length) return;
    const values = cols.map((k) => (k === 'errors' || k === 'result_files' ? json(fields[k]) : fields[k]));
    this.db.prepare(`UPDATE batches SET ${cols.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`).run(...values, id);
  }

  /** Batches not yet finished that read this input file (it must outlive them: a resumed batch reads it again). */
  batchesUsingFile(id: string): string[] {
    const rows = this.db.prepare(`SELECT id FROM batches WHERE input_file_id = ? AND status NOT IN (${BATCH_TERMINAL_SQL})`).all(id) as { id: string }[];
    return rows.map((r) => r.id);
  }
}
