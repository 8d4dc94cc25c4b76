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
import { FolderBlobs, type FileBlobs } from './blobs.js';
import { DataDir } from './files.js';
import { isCheckpointModelId, newFileId } from './ids.js';
import { JobRunner, type RunnerOptions } from './runner.js';
import { ModelSync } from './model-sync.js';
import { BATCH_TERMINAL, JobStore, MODELS_CHANNEL, StoreError, storeFailure, TERMINAL, type FileRow } from './store.js';

/** On a shared database, how long an upload or delete may be under way on another replica before a start takes it for a crash's leftover. */
const SETTLE_SECONDS = 3600;

export const DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024;

export interface FineTuningOptions extends RunnerOptions {
  dataDir: string;
  /** A PostgreSQL connection string: the store lives there instead of `<dataDir>/scratchgpt.db`. */
  databaseUrl?: string;
  /** Upload limit of POST /v1/files (default 50 MiB). */
  maxFileBytes?: number;
}

export class FineTuning {
  readonly store: JobStore;
  readonly dirs: DataDir;
  /** The bytes of stored files (uploads, batch results). */
  readonly blobs: FileBlobs;
  readonly runner: JobRunner;
  /** Serves the store's finetuned models, following other processes' publishes and deletes. */
  readonly sync: ModelSync;
  /** Runs batches once the app is there to run their lines (server.ts attaches it). */
  readonly batches: BatchRunner;
  readonly maxFileBytes: number;

  /** The store file as opened (SQLite only), to notice when the folder is removed or replaced under us. */
  private readonly opened: fs.Stats | undefined;

  private constructor(
    readonly models: ServedModels,
    o: FineTuningOptions,
    dirs: DataDir,
    store: JobStore,
  ) {
    this.dirs = dirs;
    this.store = store;
    this.opened = store.file === undefined ? undefined : fs.statSync(store.file);
    this.blobs = new FolderBlobs(dirs);
    this.runner = new JobRunner(this.store, this.dirs, this.blobs, models, o);
    this.sync = new ModelSync(store, dirs, models, o.log ?? ((l: string) => console.error(`scratchgpt models: ${l}`)));
    const batchLog = o.log ?? ((l: string) => console.error(`scratchgpt batches: ${l}`));
    this.batches = new BatchRunner(this.store, this.dirs, this.blobs, (content, f, id) => this.saveFile(content, f, id), batchLog, o.leaseMs);
    this.maxFileBytes = o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  }

  /**
   * What is wrong with the data folder now, or undefined when it is the one opened at start.
   * SQLite keeps writing to a deleted file, so a removed folder would otherwise lose every write.
   * With PostgreSQL (no store file) only the folders are checked.
   */
  storageProblem(): string | undefined {
    try {
      const now = this.store.file === undefined ? undefined : fs.statSync(this.store.file);
      for (const d of this.dirs.folders) fs.statSync(d);
      if (!now || !this.opened) return undefined; // PostgreSQL: no store file to compare
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
  static async open(models: ServedModels, o: FineTuningOptions): Promise<FineTuning> {
    const dirs = openWritable(o.dataDir);
    const store = await JobStore.open({ dataDir: dirs.root, create: !dirs.holdsData(), databaseUrl: o.databaseUrl });
    let ft: FineTuning;
    try {
      ft = new FineTuning(models, o, dirs, store);
      await ft.recover(o);
      await ft.sync.start();
    } catch (e) {
      await store.close().catch(() => {}); // the error that stopped the start is the one to report
      throw e;
    }
    await ft.runner.start();
    return ft;
  }

  /** Sweeps what a crash left behind (open, before the models are served and the runner starts). */
  private async recover(o: FineTuningOptions): Promise<void> {
    const log = o.log ?? ((l: string) => console.error(`scratchgpt fine-tuning: ${l}`));
    const s = this.store;
    // On a shared database another replica may be uploading or deleting right now: only what has
    // been unsettled for an hour is a crash's.
    const shared = s.engine === 'postgres';
    for (const f of await s.unsettledFiles(shared ? Math.floor(Date.now() / 1000) - SETTLE_SECONDS : undefined)) {
      await this.blobs.remove(f.id); // an upload or delete cut short: its row proves the bytes are not wanted
      await s.deleteFile(f.id);
      log(`removed ${f.status === 'uploading' ? 'unfinished upload' : 'deleted file'} files/${f.id}`);
    }
    const rows = await s.fileRowIds(); // one query, not one per file: the sweep asks about each synchronously
    const { removed, unaccounted } = this.dirs.sweep((id) => rows.has(id), (await s.listModels(true)).map((m) => m.dir), shared ? SETTLE_SECONDS * 1000 : 0);
    for (const rel of removed) log(`removed leftover ${rel}`);
    for (const rel of unaccounted) log(`warning: ${rel} is not in the store; kept (move it away if it is not needed)`);
    // Job folders of finished jobs (their removal was cut short) and stray trash.
    for (const name of fs.readdirSync(this.dirs.jobs)) {
      const job = /^ftjob-/.test(name) ? await s.getJob(name) : undefined;
      if (name.startsWith('.trash-') || (job && TERMINAL.includes(job.status))) removeDir(`${this.dirs.jobs}/${name}`);
    }
    // Batch folders of finished batches (their removal was cut short) and stray trash.
    for (const name of fs.readdirSync(this.dirs.batches)) {
      const batch = /^batch_/.test(name) ? await s.getBatch(name) : undefined;
      if (name.startsWith('.trash-') || (batch && BATCH_TERMINAL.includes(batch.status))) removeDir(`${this.dirs.batches}/${name}`);
    }
  }

  /**
   * Stores an upload: its row first ('uploading', invisible), then its bytes, then the row becomes
   * 'processed'. A crash in between leaves a row that proves what open() may remove. `id` is given
   * for a batch's result file, whose id was stored before it was saved (a redo keeps it).
   */
  async saveFile(content: Uint8Array, f: Omit<FileRow, 'id' | 'bytes' | 'path' | 'created_at' | 'status'>, id = newFileId()): Promise<FileRow> {
    await this.store.insertFile({ ...f, id, bytes: content.byteLength, path: this.dirs.rel(this.dirs.filePath(id)) });
    await this.blobs.write(id, content);
    crashPoint('upload.stored');
    return await this.store.markFileProcessed(id);
  }

  /** Deletes a stored file: hidden first ('deleting'), then its bytes, then its row (open() finishes a cut-short delete). */
  async deleteFile(id: string): Promise<void> {
    await this.store.markFileDeleting(id);
    crashPoint('file-delete.marked');
    await this.blobs.remove(id);
    await this.store.deleteFile(id);
  }

  /**
   * Stops serving a finetuned model and deletes it, with the checkpoints served beside it (rows
   * first, so a crash mid-delete leaves no live row without a folder; the next start removes the folders).
   */
  async deleteModel(id: string): Promise<void> {
    const rows = (await this.store.listModels(false)).filter((m) => m.id === id || (!isCheckpointModelId(id) && m.id.startsWith(`${id}:ckpt-step-`)));
    await this.store.transaction(async (tx) => {
      for (const m of rows) await tx.markModelDeleted(m.id);
      await tx.notify(MODELS_CHANNEL, id); // the other replicas stop serving it (model-sync.ts)
    });
    crashPoint('model-delete.marked');
    await Promise.all(rows.map((m) => this.models.remove(m.id)));
    for (const m of rows) removeDir(this.dirs.abs(m.dir));
  }

  async close(): Promise<void> {
    await Promise.all([this.runner.close(), this.batches.close(), this.sync.close()]);
    await this.store.close();
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
