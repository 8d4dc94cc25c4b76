// The embedded database: `<dataDir>/scratchgpt.db` (better-sqlite3, WAL), owned by one process.
// better-sqlite3 is synchronous, so statements run in call order through one queue; a transaction
// holds the queue until it ends, so no other statement can slip into it while it awaits.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StoreError, type Db, type Migration, type Raw } from './db.js';

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

export class SqliteDb implements Db {
  readonly engine = 'sqlite';
  readonly nowMs = `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
  readonly forUpdate = '';
  readonly insertionOrder = 'rowid';
  private readonly db: Database.Database;
  /** The tail of the statement queue. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly events = new EventEmitter();

  /**
   * Opens `file`; `create` allows making a new one where none exists. A file that is there but
   * empty or not a database is an error, never silently a fresh store: the files and models beside
   * it would look like leftovers.
   */
  constructor(
    readonly file: string,
    { create = true } = {},
  ) {
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
      if ((e as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw new StoreError(`the data folder ${path.dirname(file)} is in use by another scratchgpt server`);
      throw new StoreError(`cannot open ${file}: ${storeFailure(e)}`);
    }
    // FULL: a committed transaction survives power loss too, not only a killed process. Writes
    // are a few per training step, so the fsyncs cost nothing measurable.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
  }

  async migrate(steps: Migration[]): Promise<number> {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    const last = steps[steps.length - 1]!.to;
    if (version > last) {
      this.db.close();
      throw new StoreError(`${this.file} has schema version ${version}; this scratchgpt knows version ${last} (a newer scratchgpt wrote it)`);
    }
    // One transaction with the new version number, so a crash leaves the old version or the new.
    this.db.transaction(() => {
      for (const s of steps) if (s.to > version) this.db.exec(s.sql);
      this.db.pragma(`user_version = ${last}`);
    })();
    return version;
  }

  /** Runs `op` after every statement and transaction queued before it. */
  private enqueue<T>(op: () => T | Promise<T>): Promise<T> {
    const result = this.queue.then(op);
    this.queue = result.catch(() => undefined);
    return result;
  }

  all(sql: string, args: unknown[] = []): Promise<Raw[]> {
    return this.enqueue(() => this.rows(sql, args));
  }

  run(sql: string, args: unknown[] = []): Promise<number> {
    return this.enqueue(() => this.change(sql, args));
  }

  private rows(sql: string, args: unknown[]): Raw[] {
    return this.db.prepare(sql).all(...args) as Raw[];
  }

  private change(sql: string, args: unknown[]): number {
    return this.db.prepare(sql).run(...args).changes;
  }

  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      const pending: [string, string][] = [];
      const tx: Db = {
        engine: this.engine,
        nowMs: this.nowMs,
        forUpdate: this.forUpdate,
        insertionOrder: this.insertionOrder,
        all: async (sql, args = []) => this.rows(sql, args),
        run: async (sql, args = []) => this.change(sql, args),
        transaction: (inner) => inner(tx),
        notify: async (channel, payload) => void pending.push([channel, payload]),
        listen: (channel, f) => this.listen(channel, f),
        migrate: () => Promise.reject(new Error('migrate inside a transaction')),
        close: () => Promise.reject(new Error('close inside a transaction')),
      };
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(tx);
        this.db.exec('COMMIT');
        for (const [channel, payload] of pending) this.events.emit(channel, payload);
        return result;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  /** One process owns the file, so notifications stay in it. */
  async notify(channel: string, payload: string): Promise<void> {
    this.events.emit(channel, payload);
  }

  async listen(channel: string, fn: (payload: string) => void): Promise<void> {
    this.events.on(channel, fn);
  }

  async close(): Promise<void> {
    await this.queue;
    this.events.removeAllListeners();
    if (this.db.open) this.db.close();
  }
}
