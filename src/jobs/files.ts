// The data directory's layout, and the only code that turns ids into paths (after checking them
// against the strict id patterns, so no request can name a path outside it):
//
//   DATA/scratchgpt.db          the SQLite store (store.ts)
//   DATA/files/<file-id>        uploaded datasets, as uploaded
//   DATA/jobs/<ftjob-id>/       a job's scratch space: work/ (trainer checkpoints, resumable),
//                               out/ (the finished model, before it moves), result.json
//   DATA/models/<folder>        finetuned models (folder = the model id made path-safe)
//   DATA/batches/<batch-id>/    a batch's results while it runs: output.jsonl, errors.jsonl
//                               (append-only, fsynced per line: batch-part.ts)
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir, restoreReplacedDirs, writeFileAtomic } from '../model/durable.js';
import { BATCH_ID, FILE_ID, JOB_ID } from './ids.js';

export class DataDir {
  readonly root: string;
  readonly files: string;
  readonly jobs: string;
  readonly models: string;
  readonly batches: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.files = path.join(this.root, 'files');
    this.jobs = path.join(this.root, 'jobs');
    this.models = path.join(this.root, 'models');
    this.batches = path.join(this.root, 'batches');
    for (const d of this.folders) fs.mkdirSync(d, { recursive: true });
  }

  /** The folders the data directory must hold. */
  get folders(): string[] {
    return [this.files, this.jobs, this.models, this.batches];
  }

  /** Absolute path of a stored path (the store keeps them relative, so the folder can move). */
  abs(rel: string): string {
    const p = path.resolve(this.root, rel);
    if (!p.startsWith(this.root + path.sep)) throw new Error(`path '${rel}' is outside the data directory`);
    return p;
  }

  rel(abs: string): string {
    return path.relative(this.root, abs);
  }

  filePath(id: string): string {
    if (!FILE_ID.test(id)) throw new Error(`invalid file id '${id}'`);
    return path.join(this.files, id);
  }

  jobDir(id: string): string {
    if (!JOB_ID.test(id)) throw new Error(`invalid job id '${id}'`);
    return path.join(this.jobs, id);
  }

  batchDir(id: string): string {
    if (!BATCH_ID.test(id)) throw new Error(`invalid batch id '${id}'`);
    return path.join(this.batches, id);
  }

  modelDir(folder: string): string {
    if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/.test(folder)) throw new Error(`invalid model folder '${folder}'`);
    return path.join(this.models, folder);
  }

  /** Writes an uploaded file: temp file, fsync, rename, fsync the folder. Returns its path. */
  writeFile(id: string, bytes: Uint8Array): string {
    const target = this.filePath(id);
    writeFileAtomic(target, bytes); // temp file beside it (`<id>.tmp-…`), fsync, rename, fsync the folder
    return target;
  }

  readFile(id: string): Uint8Array<ArrayBuffer> {
    const b = fs.readFileSync(this.filePath(id));
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength) as Uint8Array<ArrayBuffer>;
  }

  removeFile(id: string): void {
    fs.rmSync(this.filePath(id), { force: true });
    fsyncDir(this.files);
  }

  /** Whether the folder holds anything a store would account for (so a missing store is an error, not a fresh start). */
  holdsData(): boolean {
    return this.folders.some((d) => fs.readdirSync(d).length > 0);
  }

  /**
   * Startup cleanup of what a crash can leave, where the name or the store proves it is garbage:
   * half-written temp files (older than `tempAgeMs`), folders of deleted models, trash, folders a replaceDir set aside. An upload file that no store row
   * names is kept (its row may be lost, not the file unwanted) and returned for a warning.
   */
  sweep(hasRow: (id: string) => boolean, deletedModelDirs: string[], tempAgeMs = 0): { removed: string[]; unaccounted: string[] } {
    const removed: string[] = [];
    const unaccounted: string[] = [];
    for (const name of fs.readdirSync(this.files)) {
      if (name.includes('.tmp-')) {
        // A younger one may be another replica's upload in progress (a shared folder).
        if (tempAgeMs > 0 && Date.now() - fs.statSync(path.join(this.files, name)).mtimeMs < tempAgeMs) continue;
        fs.rmSync(path.join(this.files, name), { force: true });
        removed.push(`files/${name}`);
      } else if (!FILE_ID.test(name) || !hasRow(name)) unaccounted.push(`files/${name}`);
    }
    for (const rel of deletedModelDirs) {
      const dir = this.abs(rel);
      if (fs.existsSync(dir)) {
        fs.rmSync(dir, { recursive: true, force: true });
        removed.push(rel);
      }
    }
    for (const name of fs.readdirSync(this.models)) {
      if (name.startsWith('.trash-')) fs.rmSync(path.join(this.models, name), { recursive: true, force: true });
    }
    restoreReplacedDirs(this.models); // a checkpoint folder's move into models/ (keepCheckpoints) cut short
    return { removed, unaccounted };
  }
}
