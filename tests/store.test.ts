// The store's behaviour, the same tests on both engines: SQLite in a temp folder and PostgreSQL in a
// database of the test's own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobStore, JOBS_CHANNEL } from '../src/jobs/store.js';
import { jobId, jobRow } from './helpers/job-rows.js';
import { freshDatabase, postgresMissing } from './helpers/postgres.js';

const pgMissing = await postgresMissing();

interface Engine {
  open(): Promise<JobStore>;
  cleanup(): Promise<void>;
}

function sqlite(): Engine {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-'));
  return { open: () => JobStore.open({ dataDir: dir }), cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
}

async function postgres(): Promise<Engine & { url: string }> {
  const db = await freshDatabase();
  return { url: db.url, open: () => JobStore.open({ dataDir: '', databaseUrl: db.url, log: () => {} }), cleanup: db.drop };
}

const job = jobRow;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const [name, make, skip] of [
  ['SQLite', async () => sqlite(), undefined],
  ['PostgreSQL', postgres, pgMissing],
] as const) {
  describe.skipIf(skip !== undefined)(`the store on ${name}`, () => {
    let engine: Engine;
    let store: JobStore;
    beforeEach(async () => {
      engine = await make();
      store = await engine.open();
    });
    afterEach(async () => {
      await store.close();
      await engine.cleanup();
    });

    it('keeps files, jobs, events, checkpoints and models, with the API shapes and pages', async () => {
      const f = { bytes: 3, filename: 'a.jsonl', purpose: 'fine-tune', format: 'chat', records: 1, labels: ['x', 'y'] };
      for (const n of [1, 2, 3]) {
        const id = `file-${String(n).padStart(24, '0')}`;
        await store.insertFile({ ...f, id, path: `files/${id}` });
        expect(await store.getFile(id)).toBeUndefined(); // uploading: invisible
        await store.markFileProcessed(id);
      }
      const page = await store.listFiles({ limit: 2, order: 'desc' });
      expect(page.has_more).toBe(true);
      expect(page.data.map((r) => r.id.slice(-1))).toEqual(['3', '2']);
      expect(page.data[0]).toEqual({ ...f, id: page.data[0]!.id, path: `files/${page.data[0]!.id}`, status: 'processed', created_at: expect.any(Number) });
      expect((await store.listFiles({ limit: 5, order: 'asc', after: page.data[1]!.id })).data.map((r) => r.id.slice(-1))).toEqual(['3']);

      const j = await store.insertJob(job(jobId(1)));
      expect(j).toMatchObject({ id: jobId(1), status: 'queued', metadata: { k: 'v' }, error: null, hyperparameters: { n_epochs: 1 } });
      expect(Object.keys(j)).not.toContain('lease_owner');
      await store.transaction(async (tx) => {
        await tx.updateJob(j.id, { status: 'running', error: { code: 'c', message: 'm', param: null } });
        await tx.addEvent(j.id, { message: 'one' });
        await tx.addEvent(j.id, { type: 'metrics', message: 'two', data: { step: 7 } });
      });
      expect((await store.getJob(j.id))!.error).toEqual({ code: 'c', message: 'm', param: null });
      expect((await store.listEvents(j.id, { limit: 10 })).data.map((e) => [e.seq, e.message])).toEqual([
        [2, 'two'],
        [1, 'one'],
      ]);
      expect(await store.lastMetricsStep(j.id)).toBe(7);
      expect(await store.lastMetricsStep(jobId(9))).toBe(-1);

      await store.addCheckpoint({ job_id: j.id, step: 5, epoch: 1, metrics: { step: 5 }, dir: 'a' });
      await store.addCheckpoint({ job_id: j.id, step: 5, epoch: 1, metrics: { step: 5 }, dir: 'b' }); // a resumed run's again
      expect((await store.listCheckpoints(j.id, { limit: 10 })).data.map((c) => c.dir)).toEqual(['b']);

      await store.insertModel({ id: 'ft:a', job_id: j.id, dir: 'models/a' });
      await store.insertModel({ id: 'ft:b', job_id: j.id, dir: 'models/b' });
      await store.markModelDeleted('ft:a');
      expect((await store.listModels(false)).map((m) => m.id)).toEqual(['ft:b']);
      expect(await store.getModel('ft:a')).toEqual({ id: 'ft:a', job_id: j.id, dir: 'models/a', created_at: expect.any(Number), deleted: true });
    });

    it('rolls a failed transaction back whole', async () => {
      await store.insertJob(job(jobId(1)));
      await expect(
        store.transaction(async (tx) => {
          await tx.updateJob(jobId(1), { status: 'failed' });
          await tx.addEvent(jobId(1), { message: 'lost' });
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect((await store.getJob(jobId(1)))!.status).toBe('queued');
      expect((await store.listEvents(jobId(1), { limit: 10 })).data).toEqual([]);
    });

    it('leases: running jobs before queued ones, one owner each, taken over once expired, renewals refused after', async () => {
      await store.insertJob(job(jobId(1)));
      await store.insertJob(job(jobId(2), 'running'));
      await store.insertJob(job(jobId(3), 'succeeded'));
      expect((await store.claimJob('a', 60_000))?.id).toBe(jobId(2));
      expect((await store.claimJob('b', 60_000))?.id).toBe(jobId(1));
      expect(await store.claimJob('c', 60_000)).toBeUndefined();
      expect(await store.renewLease('jobs', jobId(2), 'a', 60_000)).toBe('running');

      await store.releaseLease('jobs', jobId(1), 'b');
      expect((await store.claimJob('c', 50))?.id).toBe(jobId(1));
      await sleep(120); // c's lease runs out (the database's clock)
      expect((await store.claimJob('d', 60_000))?.id).toBe(jobId(1));
      expect(await store.renewLease('jobs', jobId(1), 'c', 60_000)).toBeUndefined();
      expect(await store.holdsLease('jobs', jobId(1), 'd')).toBe(true);
    });

    it('hands each of 40 jobs to exactly one of 8 concurrent claimers', async () => {
      for (let n = 1; n <= 40; n++) await store.insertJob(job(jobId(n)));
      const claimed: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let j = await store.claimJob(`w${w}`, 60_000); j; j = await store.claimJob(`w${w}`, 60_000)) claimed.push(j.id);
        }),
      );
      expect(claimed.sort()).toEqual(Array.from({ length: 40 }, (_, n) => jobId(n + 1)));
    });

    it('tells listeners of a notification once its transaction commits', async () => {
      const heard: string[] = [];
      await store.listen(JOBS_CHANNEL, (p) => heard.push(p));
      await store.transaction(async (tx) => {
        await tx.notify(JOBS_CHANNEL, 'in-tx');
        await sleep(50);
        expect(heard).toEqual([]);
      });
      await expect.poll(() => heard).toEqual(['in-tx']);
    });
  });
}

describe.skipIf(pgMissing !== undefined)('PostgreSQL across processes', () => {
  it('migrates once when four stores open an empty database together, and each hears the others', async () => {
    const engine = await postgres();
    try {
      const stores = await Promise.all(Array.from({ length: 4 }, () => engine.open()));
      const heard = stores.map(() => [] as string[]);
      await Promise.all(stores.map((s, i) => s.listen(JOBS_CHANNEL, (p) => heard[i]!.push(p))));
      await stores[0]!.notify(JOBS_CHANNEL, 'hello');
      await expect.poll(() => heard).toEqual([['hello'], ['hello'], ['hello'], ['hello']]);
      const { default: pg } = await import('pg');
      const c = new pg.Client({ connectionString: engine.url });
      await c.connect();
      const rows = (await c.query('SELECT version FROM scratchgpt_migrations')).rows;
      await c.end();
      expect(rows).toEqual([{ version: 3 }]);
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await engine.cleanup();
    }
  });
});

describe('opening PostgreSQL', () => {
  it('a database it cannot reach stops the start with the URL in the message, its password hidden', async () => {
    const err = await JobStore.open({ dataDir: '', databaseUrl: 'postgres://u:s3cret@127.0.0.1:1/x', log: () => {} }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^cannot use the database postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x: connect ECONNREFUSED/);
    expect((err as Error).message).not.toContain('s3cret');
  });
});
