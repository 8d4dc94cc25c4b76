// What the store needs of a database: statements with `?` parameters, transactions, a schema
// version brought up to date once, and notifications between the processes that share it. Two
// engines implement it: SQLite (sqlite-db.ts, the embedded default: one process) and PostgreSQL
// (postgres-db.ts: replicas and training workers on several machines).

export type Raw = Record<string, unknown>;

/** One schema version: the statements that bring the previous one to it. */
export interface Migration {
  to: number;
  sql: string;
}

export interface Db {
  readonly engine: 'sqlite' | 'postgres';
  /** Rows of a query. */
  all(sql: string, args?: unknown[]): Promise<Raw[]>;
  /** Rows changed by a statement. */
  run(sql: string, args?: unknown[]): Promise<number>;
  /**
   * Runs `fn` in one transaction on a handle bound to it (every statement inside goes through that
   * handle); commits when it resolves, rolls back when it throws. Nested calls join the outer one.
   */
  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T>;
  /**
   * Tells every process on this database (this one included) `payload` on `channel`; inside a
   * transaction, only once it commits.
   */
  notify(channel: string, payload: string): Promise<void>;
  /** Calls `fn` for each notification on `channel`, and with '' after a lost connection is back (anything may have changed meanwhile). */
  listen(channel: string, fn: (payload: string) => void): Promise<void>;
  /** The SQL expression for the database's clock in unix milliseconds (leases use one clock, not each machine's). */
  readonly nowMs: string;
  /** Appended to a SELECT of one row to lock it for the transaction ('' where the whole database is locked anyway). */
  readonly forUpdate: string;
  /** The column that orders files and models by insertion. */
  readonly insertionOrder: string;
  /** Brings the schema to the last version of `steps` (once, whoever else starts at the same time); returns the version it found. */
  migrate(steps: Migration[]): Promise<number>;
  close(): Promise<void>;
}

/** The database cannot be used as it is; the message says what to do. */
export class StoreError extends Error {}

/** The database does not answer now (down, restarting, unreachable): worth trying again later. */
export class StoreUnavailable extends Error {}
