// npm run bench:queue — jobs/s of the fine-tuning lease queue itself (no training): N queued jobs,
// then W claimers each loop claim → one transaction (status 'succeeded' + one event) → release the
// lease, until none is left. Variants, each on a fresh database with the N jobs inserted first
// (not timed):
//   skip-locked  PostgreSQL, store.claimJob (UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED))
//   for-update   the baseline: PostgreSQL, the claim a queue without SKIP LOCKED does (a transaction:
//                SELECT … ORDER BY seq LIMIT 1 FOR UPDATE, then UPDATE the lease), through `pg`
//                directly; the rest of the loop is the same store calls, so only the claim differs
//   sqlite       the embedded default, one process, W = 1, store.claimJob
// Claimers are in-process: each has its own JobStore (its own pg Pool) and, for the baseline, its own
// pg.Pool, as separate processes would; one Node event loop drives them all. After each run the
// rows are counted: every job 'succeeded' once, with exactly one event, claimed by one claimer.
// The PostgreSQL server is SCRATCHGPT_TEST_DATABASE_URL (default: the local role tests use).
//
//   --jobs N           queued jobs per run (default 2000)
//   --claimers 1,4,16  the values of W for PostgreSQL (default 1,4,16)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { JobStore, type JobRow, type JobStatus } from '../src/jobs/store.js';
import { jobId, jobRow } from '../tests/helpers/job-rows.js';
import { ADMIN_URL, freshDatabase } from '../tests/helpers/postgres.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '2000' },
    claimers: { type: 'string', default: '1,4,16' },
  },
});
const N = Number(args.jobs);
const WS = args.claimers.split(',').map(Number);
const LEASE_MS = 60_000;
const quiet = () => {};

const job = (n: number) => jobRow(jobId(n));

/** A claim: the id of the job whose lease `owner` now holds, or undefined when none is left. */
type Claim = (owner: string) => Promise<string | undefined>;

/** The baseline's claim: a row lock that waits for whoever holds the first queued row. */
function forUpdateClaim(pool: pg.Pool): Claim {
  return async (owner) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const r = await c.query(`SELECT id FROM jobs WHERE status = 'queued' AND lease_owner IS NULL ORDER BY seq LIMIT 1 FOR UPDATE`);
      const id = r.rows[0]?.id as string | undefined;
      if (id) await c.query(`UPDATE jobs SET lease_owner = $1, lease_expires = (extract(epoch from clock_timestamp()) * 1000)::bigint + $2 WHERE id = $3`, [owner, LEASE_MS, id]);
      await c.query('COMMIT');
      return id;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  };
}

/** One claimer's loop until the queue is empty; the claim latencies (ms) and the ids it finished. */
async function claimer(store: JobStore, claim: Claim, owner: string): Promise<{ lat: number[]; ids: string[] }> {
  const lat: number[] = [];
  const ids: string[] = [];
  for (;;) {
    const t0 = performance.now();
    const id = await claim(owner);
    if (!id) return { lat, ids };
    lat.push(performance.now() - t0);
    await store.transaction(async (tx) => {
      await tx.updateJob(id, { status: 'succeeded', finished_at: Math.floor(Date.now() / 1000) });
      await tx.addEvent(id, { message: 'bench: done' });
    });
    await store.releaseLease('jobs', id, owner);
    ids.push(id);
  }
}

/** Whether every job ended 'succeeded' exactly once: row counts by status, events per job, claims. */
async function exactlyOnce(store: JobStore, ids: string[]): Promise<boolean> {
  const all: JobStatus[] = ['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
  const rows: JobRow[] = await store.jobsIn(...all);
  const succeeded = rows.filter((r) => r.status === 'succeeded').length;
  let oneEvent = true;
  for (const r of rows) if ((await store.listEvents(r.id, { limit: 5 })).data.length !== 1) oneEvent = false;
  return rows.length === N && succeeded === N && oneEvent && ids.length === N && new Set(ids).size === N;
}

interface Result {
  variant: string;
  w: number;
  s: number;
  lat: number[];
  once: boolean;
}

/** One run: N jobs into `stores[0]`, then one claimer per store, timed from the first claim to the last release. */
async function run(variant: string, stores: JobStore[], claims: Claim[]): Promise<Result> {
  await stores[0]!.transaction(async (tx) => {
    for (let n = 0; n < N; n++) await tx.insertJob(job(n));
  });
  const t0 = performance.now();
  const done = await Promise.all(stores.map((s, i) => claimer(s, claims[i]!, `bench-${i}`)));
  const s = (performance.now() - t0) / 1000;
  const ids = done.flatMap((d) => d.ids);
  return { variant, w: stores.length, s, lat: done.flatMap((d) => d.lat), once: await exactlyOnce(stores[0]!, ids) };
}

async function postgresRun(variant: 'skip-locked' | 'for-update', w: number): Promise<Result> {
  const db = await freshDatabase();
  const stores: JobStore[] = [];
  const pools: pg.Pool[] = [];
  try {
    for (let i = 0; i < w; i++) stores.push(await JobStore.open({ dataDir: '', databaseUrl: db.url, log: quiet }));
    const claims: Claim[] = stores.map((s) => {
      if (variant === 'skip-locked') return async (owner) => (await s.claimJob(owner, LEASE_MS))?.id;
      const pool = new pg.Pool({ connectionString: db.url });
      pools.push(pool);
      return forUpdateClaim(pool);
    });
    return await run(variant, stores, claims);
  } finally {
    for (const s of stores) await s.close().catch(() => undefined);
    for (const p of pools) await p.end().catch(() => undefined);
    await db.drop();
  }
}

async function sqliteRun(): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-'));
  const store = await JobStore.open({ dataDir: dir, create: true });
  try {
    return await run('sqlite', [store], [async (owner) => (await store.claimJob(owner, LEASE_MS))?.id]);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const version = (await admin.query('SELECT version()')).rows[0].version as string;
await admin.end();
console.log(`machine: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}`);
console.log(`PostgreSQL: ${version}`);
console.log(`N = ${N} jobs per run; claimers in-process, one JobStore (own pg Pool) each; claim → succeeded + 1 event → release\n`);

const results: Result[] = [];
for (const w of WS) {
  // The baseline first, then SKIP LOCKED, each on a fresh database.
  results.push(await postgresRun('for-update', w));
  results.push(await postgresRun('skip-locked', w));
}
results.push(await sqliteRun());

const rate = (r: Result) => N / r.s;
console.log('variant       W   jobs/s   wall s   claim p50 ms   claim p99 ms   vs FOR UPDATE   each job exactly once');
for (const r of results) {
  const base = results.find((b) => b.variant === 'for-update' && b.w === r.w);
  const ratio = r.variant === 'skip-locked' && base ? `${(rate(r) / rate(base)).toFixed(2)}x` : '-';
  console.log(
    `${r.variant.padEnd(12)} ${String(r.w).padStart(2)} ${rate(r).toFixed(0).padStart(8)} ${r.s.toFixed(2).padStart(8)} ${pct(r.lat, 50).toFixed(2).padStart(14)} ${pct(r.lat, 99).toFixed(2).padStart(14)} ${ratio.padStart(15)}   ${r.once ? 'yes' : 'no'}`,
  );
}
console.log('(vs FOR UPDATE: SKIP LOCKED jobs/s / FOR UPDATE jobs/s at the same W)');
if (results.some((r) => !r.once)) process.exitCode = 1;
