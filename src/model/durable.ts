// Files and folders that survive a crash or a power cut in a state a reader can use: the old
// contents or the complete new ones, never a partial file, and renames made durable.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crashPoint } from '../faults/crash-point.js';

export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
  }
}

/**
 * Write a file so that readers see either the old contents or the complete new ones, never
 * a partial file (a crash mid-save must not destroy the previous checkpoint): write a temp
 * file beside the target, fsync it, then rename it over the target (atomic on POSIX).
 * `content` is the whole contents, or a callback that writes them to the open descriptor.
 */
export function writeFileAtomic(file: string, content: string | Uint8Array | ((fd: number) => void)): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx');
  try {
    try {
      if (typeof content === 'function') content(fd);
      else writeAll(fd, typeof content === 'string' ? new TextEncoder().encode(content) : content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    crashPoint('atomic-write.before-rename');
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(file)); // the rename itself
}

/** Makes a rename in `dir` durable (best effort: not every platform or filesystem can fsync a folder). */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/**
 * Puts the finished folder `tmp` in place of `dest`, so that `dest` names the old folder or the
 * complete new one, never a mix. A folder cannot be renamed over a non-empty one, so a previous
 * `dest` is first moved aside (`<dest>.replaced-…`) and removed once the new one is in place; a
 * kill between the two renames leaves no `dest` and the old folder aside, which
 * restoreReplacedDirs moves back on the next start.
 */
export function replaceDir(tmp: string, dest: string): void {
  const aside = fs.existsSync(dest) ? `${dest}.replaced-${process.pid}-${randomBytes(4).toString('hex')}` : undefined;
  if (aside) fs.renameSync(dest, aside);
  fs.renameSync(tmp, dest);
  fsyncDir(path.dirname(dest));
  if (aside) fs.rmSync(aside, { recursive: true, force: true });
}

/**
 * Startup half of replaceDir: in `dir`, moves back each folder set aside whose replacement never
 * arrived and removes the rest; with `only`, just the folders set aside from `dir/only`.
 */
export function restoreReplacedDirs(dir: string, only?: string): void {
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    const dest = /^(.+?)\.replaced-/.exec(name)?.[1];
    if (dest === undefined || (only !== undefined && dest !== only)) continue;
    if (fs.existsSync(path.join(dir, dest))) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    else fs.renameSync(path.join(dir, name), path.join(dir, dest));
  }
}

/** Removes a folder so that no half-deleted copy is ever visible under its name: rename, then delete. */
export function removeDir(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const trash = path.join(path.dirname(dir), `.trash-${path.basename(dir)}-${randomBytes(4).toString('hex')}`);
  fs.renameSync(dir, trash);
  crashPoint('remove-dir.renamed');
  fs.rmSync(trash, { recursive: true, force: true });
}
