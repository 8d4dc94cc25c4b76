// The fine-tuning service as the HTTP routes see it: the store, the data folder, the job runner
// and the batch runner (the Batch API shares the files and the store), opened together at server start (which also brings back the finetuned models and sweeps
// what a crash left behind) and closed together at shutdown.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ServedModels } from './served-models.js';
import { crashPoint } from '../faults/crash-point.js';
import { removeDir } from '../model/durable.js';
import { BatchRunner } from './batch-runner.js';
import { DataDir } from './files.js';
import { isCheckpointModelId, newFileId } from './ids.js';
import { JobRunner, type RunnerOptions } from './runner.js';
import { BATCH_TERMINAL, JobStore, StoreError, storeFailure, TERMINAL, type FileRow } from './store.js';

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
  /** Runs batches once the app is there to run their lines (server.ts attaches it). */
  readonly batches: BatchRunner;
  readonly maxFileBytes: number;

  /** The store file as opened, to notice when the folder is removed or replaced under us. */
  private readonly opened: fs.Stats;

  private constructor(
    readonly models: ServedModels,
    o: FineTuningOptions,
  ) {
    this.dirs = openWritable(o.dataDir);
    this.store = new JobStore(this.dirs.root, { create: !this.dirs.holdsData() });
    this.opened = fs.statSync(this.store.file);
    this.runner = new JobRunner(this.store, this.dirs, models, o);
    const batchLog = o.log ?? ((l: string) => console.error(`scratchgpt batches: ${l}`));
    this.batches = new BatchRunner(this.store, this.dirs, (content, f, id) => this.saveFile(content, f, id), batchLog);
    this.maxFileBytes = o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  }

  /**
   * What is wrong with the data folder now, or undefined when it is the one opened at start.
   * SQLite keeps writing to a deleted file, so a removed folder would otherwise lose every write.
   */
  storageProblem(): string | undefined {
    try {
      const now = fs.statSync(this.store.file);
      for (const d of this.dirs.folders) fs.statSync(d);
      if (now.ino === this.opened.ino && now.dev === this.opened.dev) return undefined;
    } catch {
      // missing: same answer as replaced
    }
    return `the data folder ${this.dirs.root} was removed or replaced while the server ran; nothing can be stored. Restore it and restart the server`;
  }

  /**
   * Opens the data folder: sweeps crash leftovers, serves every finetuned model again (they load in
   * the background), and starts the runner (a job that was running resumes).
   */
  static open(models: ServedModels, o: FineTuningOptions): FineTuning {
    const ft = new FineTuning(models, o);
    const log = o.log ?? ((l: string) => console.error(`scratchgpt fine-tuning: ${l}`));
    const s = ft.store;
    for (const f of s.unsettledFiles()) {
      ft.dirs.removeFile(f.id); // an upload or delete cut short: its row proves the bytes are not wanted
      s.deleteFile(f.id);
      log(`removed ${f.status === 'uploading' ? 'unfinished upload' : 'deleted file'} files/${f.id}`);
    }
    const { removed, unaccounted } = ft.dirs.sweep((id) => s.hasFileRow(id), s.listModels(true).map((m) => m.dir));
    for (const rel of removed) log(`removed leftover ${rel}`);
    for (const rel of unaccounted) log(`warning: ${rel} is not in the store; kept (move it away if it is not needed)`);
    // Job folders of finished jobs (their removal was cut short) and stray trash.
    for (const name of fs.readdirSync(ft.dirs.jobs)) {
      const job = /^ftjob-/.test(name) ? s.getJob(name) : undefined;
      if (name.startsWith('.trash-') || (job && TERMINAL.includes(job.status))) removeDir(`${ft.dirs.jobs}/${name}`);
    }
    // Batch folders of finished batches (their removal was cut short) and stray trash.
    for (const name of fs.readdirSync(ft.dirs.batches)) {
      const batch = /^batch_/.test(name) ? s.getBatch(name) : undefined;
      if (name.startsWith('.trash-') || (batch && BATCH_TERMINAL.includes(batch.status))) removeDir(`${ft.dirs.batches}/${name}`);
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

  /**
   * Stores an upload: its row first ('uploading', invisible), then its bytes, then the row becomes
   * 'processed'. A crash in between leaves a row that proves what open() may remove. `id` is given
   * for a batch's result file, whose id was stored before it was saved (a redo keeps it).
   */
  saveFile(content: Uint8Array, f: Omit<FileRow, 'id' | 'bytes' | 'path' | 'created_at' | 'status'>, id = newFileId()): FileRow {
    this.store.insertFile({ ...f, id, bytes: content.byteLength, path: this.dirs.rel(this.dirs.filePath(id)) });
    this.dirs.writeFile(id, content);
    crashPoint('upload.stored');
    return this.store.markFileProcessed(id);
  }

  /** Deletes a stored file: hidden first ('deleting'), then its bytes, then its row (open() finishes a cut-short delete). */
  deleteFile(id: string): void {
    this.store.markFileDeleting(id);
    crashPoint('file-delete.marked');
    this.dirs.removeFile(id);
    this.store.deleteFile(id);
  }

  /**
   * Stops serving a finetuned model and deletes it, with the checkpoints served beside it (rows
   * first, so a crash mid-delete leaves no live row without a folder; the next start removes the folders).
   */
  async deleteModel(id: string): Promise<void> {
    const rows = this.store.listModels(false).filter((m) => m.id === id || (!isCheckpointModelId(id) && m.id.startsWith(`${id}:ckpt-step-`)));
    this.store.transaction(() => rows.forEach((m) => this.store.markModelDeleted(m.id)));
    crashPoint('model-delete.marked');
    await Promise.all(rows.map((m) => this.models.remove(m.id)));
    for (const m of rows) removeDir(this.dirs.abs(m.dir));
  }

  async close(): Promise<void> {
    await Promise.all([this.runner.close(), this.batches.close()]);
    this.store.close();
  }
}

/** The data folder, after proving it can be written (a read-only one otherwise fails later as SQLite's bare "disk I/O error"). */
function openWritable(root: string): DataDir {
  try {
    fs.mkdirSync(root, { recursive: true });
    const probe = path.join(root, `.write-probe-${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(probe, ''); // before the subfolders: a recursive mkdir on a read-only mount says ENOENT
    fs.rmSync(probe);
    return new DataDir(root);
  } catch (e) {
    throw new StoreError(`cannot use the data folder ${path.resolve(root)}: ${storeFailure(e)}`);
  }
}
