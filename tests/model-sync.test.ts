// ModelSync at start: the newest LOADED_FINETUNED finetuned models load at once, older ones and every
// checkpoint at their first request (a restart with 100 finetuned models started 100 threads, each
// with its own V8 heap, and starved the machine); models published after start load on demand.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { DataDir } from '../src/jobs/files.js';
import { ModelSync } from '../src/jobs/model-sync.js';
import { LOADED_FINETUNED, type ServedModels } from '../src/jobs/served-models.js';
import type { JobStore, ModelRow } from '../src/jobs/store.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'model-sync-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function row(id: string, created_at: number): ModelRow {
  const dir = `models/${id.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.writeFileSync(path.join(root, dir, 'config.json'), '{}');
  return { id, job_id: `ftjob-${created_at}`, dir, created_at, deleted: false };
}

it(`loads the newest ${LOADED_FINETUNED} finetuned models at start and the others on demand, as it does models published later`, async () => {
  const rows = Array.from({ length: LOADED_FINETUNED + 3 }, (_, i) => row(`ft:tiny:m${i}:ftjob-${i}`, 100 + i));
  rows.push(row(`ft:tiny:m${rows.length - 1}:ftjob-${rows.length - 1}:ckpt-step-6`, 200));
  let announce = () => {};
  const store = {
    engine: 'sqlite',
    listModels: async () => rows,
    listen: async (_channel: string, fn: () => void) => {
      announce = fn;
    },
  } as unknown as JobStore;
  const loaded: string[] = [];
  const onDemand: string[] = [];
  const served = new Set<string>();
  const models: ServedModels = {
    info: () => undefined,
    has: (id) => served.has(id),
    isFinetuned: (id) => served.has(id),
    find: () => ({ ready: Promise.resolve() }),
    add: (id) => (served.add(id), loaded.push(id), { ready: Promise.resolve() }),
    addOnDemand: (id) => void (served.add(id), onDemand.push(id)),
    remove: async (id) => void served.delete(id),
  };
  const sync = new ModelSync(store, new DataDir(root), models, () => {});
  await sync.start();
  const finetuned = rows.slice(0, LOADED_FINETUNED + 3).map((r) => r.id);
  expect(loaded).toEqual(finetuned.slice(-LOADED_FINETUNED));
  expect(onDemand).toEqual([...finetuned.slice(0, 3), rows.at(-1)!.id]);

  // one published by another process after start, newest of all: on demand
  rows.push(row('ft:tiny:later:ftjob-9', 300));
  announce();
  await new Promise((r) => setImmediate(r)); // the fake store answers at once: its sync has run
  await sync.close();
  expect(loaded).toHaveLength(LOADED_FINETUNED);
  expect(onDemand.at(-1)).toBe('ft:tiny:later:ftjob-9');
});
