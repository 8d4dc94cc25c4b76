// PostgreSQL through `pg`: the database that replicas and training workers on several machines
// share. Statements run on a pool; a transaction holds one connection; notifications are
// PostgreSQL's NOTIFY, heard on one more connection that LISTENs and comes back when it drops.
import os from 'node:os';
import pg from 'pg';
import { StoreError, StoreUnavailable, type Db, type Migration, type Raw } from './db.js';

/** Every process that migrates takes this advisory lock first, so one migrates and the others wait and find it done. */
const MIGRATION_LOCK = 0x5c7a7c6;
const INT8_OID = 20;
const RECONNECT_MS = 1000;

/** `?` placeholders (the store's SQL, shared with SQLite) as PostgreSQL's `$1, $2, …`. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

/**
 * The error as a StoreUnavailable when it says the database cannot be reached (no connection, a
 * dropped one, a server shutting down or refusing connections), else as it is. A pooled query's
 * connect errors carry no SQLSTATE of their own, so a missing code on a non-query error counts too.
 */
function unavailable(e: unknown): unknown {
  const code = (e as { code?: string }).code;
  const network = code === undefined ? !(e instanceof pg.DatabaseError) : /^(E[A-Z]+|08...|57P0[123]|55000|53300)$/.test(code);
  return network ? new StoreUnavailable(`cannot reach the database: ${(e as Error).message}`) : e;
}

// Counts, ids and unix times are BIGINT; they all fit a double, so they come back as numbers.
const types = { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format as 'text')) };

class Handle implements Db {
  readonly engine = 'postgres';
  readonly nowMs = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;
  readonly forUpdate = ' FOR UPDATE';
  readonly insertionOrder = 'seq';

  constructor(
    protected readonly client: pg.Pool | pg.PoolClient,
    private readonly listener: Listener,
    private readonly inTransaction: boolean,
  ) {}

  private async query(sql: string, args: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.client.query(sql, args);
    } catch (e) {
      throw unavailable(e);
    }
  }

  async all(sql: string, args: unknown[] = []): Promise<Raw[]> {
    return (await this.query(numbered(sql), args)).rows as Raw[];
  }

  async run(sql: string, args: unknown[] = []): Promise<number> {
    return (await this.query(numbered(sql), args)).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    let client: pg.PoolClient;
    try {
      client = await (this.client as pg.Pool).connect();
    } catch (e) {
      throw new StoreUnavailable(`cannot reach the database: ${(e as Error).message}`);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(new Handle(client, this.listener, true));
      await client.query('COMMIT');
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  async notify(channel: string, payload: string): Promise<void> {
    await this.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  listen(channel: string, fn: (payload: string) => void): Promise<void> {
    return this.listener.add(channel, fn);
  }

  migrate(_steps: Migration[]): Promise<number> {
    return Promise.reject(new Error('migrate on the database, not inside a transaction'));
  }

  close(): Promise<void> {
    return Promise.reject(new Error('close the database, not a transaction'));
  }
}

/** One connection that LISTENs on every channel asked for, reconnecting (and saying so with '') when it drops. */
class Listener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly channels = new Map<string, ((payload: string) => void)[]>();
  private closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly log: (line: string) => void,
  ) {}

  async add(channel: string, fn: (payload: string) => void): Promise<void> {
    const fns = this.channels.get(channel);
    if (fns) return void fns.push(fn);
    this.channels.set(channel, [fn]);
    await (this.connecting ??= this.connect());
    await this.client?.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    client.on('notification', (n) => {
      for (const fn of this.channels.get(n.channel) ?? []) fn(n.payload ?? '');
    });
    const lost = (e?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      this.connecting = undefined;
      if (this.closed) return;
      this.log(`the LISTEN connection to PostgreSQL dropped${e ? ` (${e.message})` : ''}; reconnecting`);
      setTimeout(() => void this.reconnect(), RECONNECT_MS).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    this.client = client;
    for (const channel of this.channels.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await (this.connecting ??= this.connect());
      this.log('the LISTEN connection to PostgreSQL is back');
      for (const fns of this.channels.values()) for (const fn of fns) fn('');
    } catch (e) {
      this.connecting = undefined;
      setTimeout(() => void this.reconnect(), RECONNECT_MS).unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

export class PostgresDb extends Handle {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly listening: Listener,
    private readonly url: string,
  ) {
    super(pool, listening, false);
  }

  /** Connects (and proves the connection works), so a wrong URL stops the start with a clear message. */
  static async open(url: string, log: (line: string) => void): Promise<PostgresDb> {
    const config = { connectionString: url, types, application_name: `scratchgpt ${os.hostname()}:${process.pid}` };
    const pool = new pg.Pool(config);
    // An idle connection that breaks (a database restart) is dropped by the pool; the next query opens a new one.
    pool.on('error', (e) => log(`a PostgreSQL connection failed: ${e.message}`));
    try {
      await pool.query('SELECT 1');
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new StoreError(`cannot use the database ${redact(url)}: ${(e as Error).message}`);
    }
    return new PostgresDb(pool, new Listener(config, log), url);
  }

  async migrate(steps: Migration[]): Promise<number> {
    return this.transaction(async (tx) => {
      await tx.all('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
      await tx.run(
        `CREATE TABLE IF NOT EXISTS scratchgpt_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_by TEXT NOT NULL)`,
      );
      const version = Number((await tx.all('SELECT COALESCE(MAX(version), 0) AS v FROM scratchgpt_migrations'))[0]!.v);
      const last = steps[steps.length - 1]!.to;
      if (version > last) throw new StoreError(`the database ${redact(this.url)} has schema version ${version}; this scratchgpt knows version ${last} (a newer scratchgpt wrote it)`);
      for (const s of steps) {
        if (s.to <= version) continue;
        await tx.run(s.sql);
        await tx.run('INSERT INTO scratchgpt_migrations (version, applied_by) VALUES (?, ?)', [s.to, `${os.hostname()}:${process.pid}`]);
      }
      return version;
    });
  }

  async close(): Promise<void> {
    await this.listening.close();
    await this.pool.end();
  }
}
