// Where the bytes of stored files (uploads, batch results) live, by file id. Every replica and
// worker of a service must reach the same ones: FolderBlobs keeps them in files/ of the data folder
// (a shared volume when several processes serve); an object store (S3 and the like) would be
// another implementation of these calls, its localPath a cached download. Model and checkpoint
// folders are still paths in the data folder (docs/deploy.md, "What is still single-machine").
import fs from 'node:fs';
import type { DataDir } from './files.js';

export interface FileBlobs {
  /** Stores `bytes` as file `id`, durably: a crash leaves the whole file or none. */
  write(id: string, bytes: Uint8Array): Promise<void>;
  read(id: string): Promise<Uint8Array<ArrayBuffer>>;
  /** Whether file `id`'s bytes are there. */
  has(id: string): Promise<boolean>;
  remove(id: string): Promise<void>;
  /** A path on this machine holding file `id`'s bytes, for readers that take a path (the trainer). */
  localPath(id: string): Promise<string>;
}

export class FolderBlobs implements FileBlobs {
  constructor(private readonly dirs: DataDir) {}

  async write(id: string, bytes: Uint8Array): Promise<void> {
    this.dirs.writeFile(id, bytes);
  }

  async read(id: string): Promise<Uint8Array<ArrayBuffer>> {
    return this.dirs.readFile(id);
  }

  async has(id: string): Promise<boolean> {
    return fs.existsSync(this.dirs.filePath(id));
  }

  async remove(id: string): Promise<void> {
    this.dirs.removeFile(id);
  }

  async localPath(id: string): Promise<string> {
    return this.dirs.filePath(id);
  }
}
