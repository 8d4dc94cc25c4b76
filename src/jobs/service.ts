// The fine-tuning service as the HTTP routes see it: the store, the data folder and the job
// runner, opened together at server start (which also brings back the finetuned models and sweeps
// what a crash left behind) and closed together at shutdown.
import fs from 'node:fs';
import type { ModelRegistry } from '../server/registry.js';
import { DataDir, removeDir } from './files.js';
import { isCheckpointModelId } from './ids.js';
import { JobRunner, type RunnerOptions } from './runner.js';
import { JobStore } from './store.js';

export const DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024;

export interface FineTuningOptions extends RunnerOptions {
  dataDir: string;
  /** Upload limit of POST /v1/files (default 50 MiB). */
  maxFileBytes?: number;
}

export class FineTuning {
  readonly store: JobStore;
  readonly dirs: DataDir;
  readonly runner: JobRunner;
  readonly maxFileBytes: number;

  private constructor(
    readonly models: ModelRegistry,
    o: FineTuningOptions,
  ) {
    this.dirs = new DataDir(o.dataDir);
    this.store = new JobStore(this.dirs.root);
    this.runner = new JobRunner(this.store, this.dirs, models, o);
    this.maxFileBytes = o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  }

  /**
   * Opens the data folder: sweeps crash leftovers, serves every finetuned model again (they load in
   * the background), and starts the runner (a job that was running resumes).
   */
  static open(models: ModelRegistry, o: FineTuningOptions): FineTuning {
    const ft = new FineTuning(models, o);
    const log = o.log ?? ((l: string) => console.error(`scratchgpt fine-tuning: ${l}`));
    const s = ft.store;
    for (const rel of ft.dirs.sweep((id) => s.getFile(id) !== undefined, s.listModels(true).map((m) => m.dir))) log(`removed leftover ${rel}`);
    // Job folders of finished jobs (their removal was cut short) and stray trash.
    for (const name of fs.readdirSync(ft.dirs.jobs)) {
      const job = /^ftjob-/.test(name) ? s.getJob(name) : undefined;
      if (name.startsWith('.trash-') || (job && ['succeeded', 'failed', 'cancelled'].includes(job.status))) removeDir(`${ft.dirs.jobs}/${name}`);
    }
    for (const m of s.listModels(false)) {
      const dir = ft.dirs.abs(m.dir);
      if (!fs.existsSync(`${dir}/config.json`)) {
        log(`model ${m.id}: its folder ${dir} is gone; no longer serving it`);
        s.markModelDeleted(m.id);
        continue;
      }
      if (models.has(m.id)) {
        log(`model ${m.id}: a base model has the same id; the finetuned one is not served`);
        continue;
      }
      if (isCheckpointModelId(m.id)) {
        models.addOnDemand(m.id, dir); // loads at its first request
        continue;
      }
      const served = models.add(m.id, dir);
      served.ready.catch((e) => log(`model ${m.id} failed to load: ${(e as Error).message}`));
    }
    ft.runner.kick();
    return ft;
  }

  /** Stops serving a finetuned model and deletes it (row first, so a crash mid-delete leaves no live row without a folder). */
  async deleteModel(id: string): Promise<void> {
    const row = this.store.getModel(id);
    this.store.markModelDeleted(id);
    await this.models.remove(id);
    if (row) removeDir(this.dirs.abs(row.dir));
  }

  async close(): Promise<void> {
    await this.runner.close();
    this.store.close();
  }
}
