// The Hugging Face cache layout, shared with Python's huggingface_hub and transformers:
//   <cache>/models--ORG--NAME/blobs/<etag>            file contents, named by sha256 (LFS) or git oid
//   <cache>/models--ORG--NAME/snapshots/<commit>/<f>  relative symlinks to ../../blobs/<etag>
//   <cache>/models--ORG--NAME/refs/<revision>         the commit a branch or tag pointed to
//   <cache>/models--ORG--NAME/.no_exist/<commit>/<f>  empty: the file is known to be absent
// A download in progress is blobs/<etag>.incomplete, as Python names it, so either side resumes it.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_REVISION, isCommitHash } from './repo-id.js';
import { hubSettings } from './settings.js';

export function repoCacheDir(cacheDir: string, repo: string): string {
  return path.join(cacheDir, `models--${repo.split('/').join('--')}`);
}

/** The commit `revision` resolves to in the cache (a commit hash is itself), or undefined. */
export function cachedCommit(repoDir: string, revision: string = DEFAULT_REVISION): string | undefined {
  if (isCommitHash(revision)) return revision;
  try {
    const commit = fs.readFileSync(path.join(repoDir, 'refs', revision), 'utf8').trim();
    return isCommitHash(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The cached snapshot folder of `repoId` at `revision` (default main), or undefined when the cache
 * has none. Reads refs/ and snapshots/ only: whether the files a caller needs are there is its
 * own check.
 */
export function cachedSnapshotDir(repoId: string, revision?: string, cacheDir: string = hubSettings().cacheDir): string | undefined {
  const repoDir = repoCacheDir(cacheDir, repoId);
  const commit = cachedCommit(repoDir, revision);
  if (!commit) return undefined;
  const dir = path.join(repoDir, 'snapshots', commit);
  return isDir(dir) ? dir : undefined;
}

/** Whether the cache records `file` as absent from the repo at `commit` (Python's .no_exist marks). */
export function knownMissing(repoDir: string, commit: string, file: string): boolean {
  return fs.existsSync(path.join(repoDir, '.no_exist', commit, file));
}

export function markMissing(repoDir: string, commit: string, file: string): void {
  const mark = path.join(repoDir, '.no_exist', commit, file);
  fs.mkdirSync(path.dirname(mark), { recursive: true });
  fs.closeSync(fs.openSync(mark, 'a'));
}

/** Records which commit a branch or tag points to (a commit hash needs no ref). */
export function writeRef(repoDir: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const ref = path.join(repoDir, 'refs', revision);
  fs.mkdirSync(path.dirname(ref), { recursive: true });
  const tmp = `${ref}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, commit);
  fs.renameSync(tmp, ref);
}

/** snapshots/<commit>/<file> → ../../blobs/<etag> (relative, so the cache can move), replacing what was there. */
export function linkSnapshotFile(repoDir: string, commit: string, file: string, etag: string): string {
  const pointer = path.join(repoDir, 'snapshots', commit, file);
  const blob = path.join(repoDir, 'blobs', etag);
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  fs.rmSync(pointer, { force: true });
  try {
    fs.symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
  } catch {
    fs.copyFileSync(blob, pointer); // no symlinks here (as Python does on such filesystems)
  }
  return pointer;
}

/** Whether the snapshot entry exists and leads to a file (a dangling link does not count). */
export function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Whether p exists and leads to a folder. */
export function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
