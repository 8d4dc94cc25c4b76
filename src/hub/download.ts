// Fetching a few files of one Hub revision into the shared cache, through @huggingface/hub.
//
// The package speaks the protocol (model info for the revision's commit, the tree listing with
// each file's size and LFS sha256, resolve URLs and their redirects, range reads). Its own
// downloadFileToCacheDir/snapshotDownload fall short for us: snapshotDownload fetches every file
// of the repo (gpt2's also holds TF, Flax, ONNX and Core ML weights); downloadFileToCacheDir,
// given a branch, files each file under the snapshot of the commit that last touched it and
// writes no refs/ (so Python would not find it), restarts a partial download from zero, trusts
// any blob already present, reports no progress, and logs to stdout. So this file keeps their
// layout and adds: refs/ and .no_exist marks, resume of blobs/<etag>.incomplete with a Range
// request (also after a cut mid-file), size and sha256 (LFS) or git-oid checks before a blob is
// used, and progress events.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { downloadFile, listFiles, modelInfo } from '@huggingface/hub';
import { linkSnapshotFile, markMissing, repoCacheDir, writeRef } from './cache.js';
import { HubError, httpError, networkError, networkReason, type ErrorContext } from './errors.js';
import { DEFAULT_REVISION } from './repo-id.js';
import type { HubSettings } from './settings.js';

/** One file of the revision, as the tree listing gives it. */
export interface RemoteFile {
  path: string;
  size: number;
  /** The blob's name in the cache: the LFS sha256, else the git blob oid (what Python names it). */
  etag: string;
  /** LFS files: the content's sha256. */
  sha256?: string;
  /** The git blob oid (of the LFS pointer, for LFS files). */
  oid: string;
}

export type DownloadEvent =
  /** Files about to be fetched; `done` counts bytes already on disk from an interrupted run. */
  | { type: 'start'; repo: string; files: number; total: number; done: number }
  | { type: 'progress'; repo: string; file: string; done: number; total: number; transferred: number }
  /** Resuming, retrying after a cut, refetching a corrupt file. */
  | { type: 'note'; repo: string; message: string }
  | { type: 'end'; repo: string; total: number; transferred: number; seconds: number };

export interface FetchOptions {
  onProgress?: (e: DownloadEvent) => void;
}

/** Consecutive failed attempts at one file (no byte received in between) before giving up. */
const MAX_ATTEMPTS = 5;
const USER_AGENT = 'scratchgpt; hf_hub_js/2.17.5';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a process with this pid runs here (a lock's owner; pid 0 or garbage: no). */
function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/** A Hub revision resolved to its commit, with its root file listing. */
export class RemoteSnapshot {
  readonly repoDir: string;

  private constructor(
    readonly repo: string,
    readonly revision: string,
    readonly commit: string,
    readonly files: Map<string, RemoteFile>,
    private readonly settings: HubSettings,
    private readonly fetchFn: typeof fetch,
    private readonly state: { lastError?: HubError },
  ) {
    this.repoDir = repoCacheDir(settings.cacheDir, repo);
  }

  /** The snapshot folder files are linked into. */
  get dir(): string {
    return path.join(this.repoDir, 'snapshots', this.commit);
  }

  /** Asks the Hub which commit `revision` is now and what files it has (two API requests). */
  static async open(repo: string, revision: string | undefined, settings: HubSettings): Promise<RemoteSnapshot> {
    const rev = revision ?? DEFAULT_REVISION;
    const ctx: ErrorContext = { repo, revision: rev, endpoint: settings.endpoint, hasToken: settings.token !== undefined };
    const state: { lastError?: HubError } = {};
    const fetchFn = hubFetch(ctx, state);
    const common = { hubUrl: settings.endpoint, accessToken: settings.token, fetch: fetchFn };
    if (settings.token !== undefined && !settings.token.startsWith('hf_')) {
      // The package refuses such tokens before any request; say where the token came from.
      throw new HubError('bad_token', `HF_TOKEN is not a Hugging Face access token (they start with hf_): create one at ${settings.endpoint}/settings/tokens, or unset HF_TOKEN for public models`);
    }
    const info = await modelInfo({ ...common, name: repo, revision: rev, additionalFields: ['sha'] });
    const commit = info.sha;
    if (typeof commit !== 'string' || !/^[0-9a-f]{40}$/.test(commit)) {
      throw new HubError('bad_response', `${settings.endpoint} gave no commit for ${repo}@${rev}: is HF_ENDPOINT a Hugging Face Hub?`);
    }
    const files = new Map<string, RemoteFile>();
    for await (const e of listFiles({ ...common, repo: { type: 'model', name: repo }, revision: commit })) {
      if (e.type !== 'file') continue;
      const sha256 = e.lfs?.oid;
      const oid = e.oid ?? '';
      // Both become file names in the cache: anything but a hash is refused.
      if (!/^[0-9a-f]{40}$/.test(oid) || (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256))) {
        throw new HubError('bad_response', `${settings.endpoint} listed ${repo}/${e.path} without a valid git oid or sha256: is HF_ENDPOINT a Hugging Face Hub?`);
      }
      files.set(e.path, { path: e.path, size: e.size, etag: sha256 ?? oid, ...(sha256 ? { sha256 } : {}), oid });
    }
    return new RemoteSnapshot(repo, rev, commit, files, settings, fetchFn, state);
  }

  /** Points the revision at this commit: called once its files are all here, so a failed fetch keeps the old snapshot in use. */
  publish(): void {
    writeRef(this.repoDir, this.revision, this.commit);
  }

  /** Records files the revision does not have, so later runs need not ask (Python reads these too). */
  markMissing(paths: string[]): void {
    for (const p of paths) if (!this.files.has(p)) markMissing(this.repoDir, this.commit, p);
  }

  /**
   * Puts `paths` into the snapshot folder: a blob already in the cache is used when its size
   * and hash match the listing (else fetched again); a partial one is resumed.
   */
  async fetch(paths: string[], opts: FetchOptions = {}): Promise<void> {
    const emit = opts.onProgress ?? (() => {});
    const wanted = paths.map((p) => {
      const f = this.files.get(p);
      if (!f) throw new HubError('file_not_found', `${this.repo}@${this.revision} has no ${p}`);
      return f;
    });
    const todo: RemoteFile[] = [];
    for (const f of wanted) {
      if (await this.blobOk(f, emit)) linkSnapshotFile(this.repoDir, this.commit, f.path, f.etag);
      else todo.push(f);
    }
    if (!todo.length) return;
    const total = todo.reduce((n, f) => n + f.size, 0);
    const onDisk = todo.reduce((n, f) => n + Math.min(partialSize(this.blobPath(f)), f.size), 0);
    emit({ type: 'start', repo: this.repo, files: todo.length, total, done: onDisk });
    const t0 = Date.now();
    const progress = { before: 0, transferred: 0 };
    for (const f of todo) {
      const onBytes = (have: number, fresh: number) => {
        progress.transferred += fresh;
        emit({ type: 'progress', repo: this.repo, file: f.path, done: progress.before + have, total, transferred: progress.transferred });
      };
      await this.locked(f, emit, async () => {
        if (await this.blobOk(f, emit, true)) return; // another process fetched it meanwhile
        try {
          await this.download(f, onBytes, emit);
        } catch (e) {
          if (!(e instanceof HubError && e.code === 'corrupt')) throw e;
          emit({ type: 'note', repo: this.repo, message: `${e.message.replace(/; run the command.*/, '')}: fetching it again` });
          await this.download(f, onBytes, emit); // once more from zero; a second failure is reported
        }
      });
      progress.before += f.size;
      linkSnapshotFile(this.repoDir, this.commit, f.path, f.etag);
    }
    emit({ type: 'end', repo: this.repo, total, transferred: progress.transferred, seconds: (Date.now() - t0) / 1000 });
  }

  private blobPath(f: RemoteFile): string {
    return path.join(this.repoDir, 'blobs', f.etag);
  }

  /**
   * Runs `work` holding blobs/<etag>.lock, so that two processes never write one blob: the second
   * waits, then finds it complete. A lock whose process is gone (killed) is taken over.
   */
  private async locked(f: RemoteFile, emit: (e: DownloadEvent) => void, work: () => Promise<void>): Promise<void> {
    const lock = `${this.blobPath(f)}.lock`;
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    let told = false;
    for (;;) {
      try {
        fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const owner = Number(fs.readFileSync(lock, 'utf8'));
      if (!processAlive(owner)) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (!told) emit({ type: 'note', repo: this.repo, message: `${f.path}: process ${owner} is fetching it; waiting` });
      told = true;
      await sleep(500);
    }
    try {
      await work();
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }

  private async blobOk(f: RemoteFile, emit: (e: DownloadEvent) => void, quiet = false): Promise<boolean> {
    const blob = this.blobPath(f);
    let size: number;
    try {
      size = fs.statSync(blob).size;
    } catch {
      return false;
    }
    if (size === f.size && (await fileDigest(blob, f)) === expectedDigest(f)) return true;
    if (quiet) return false;
    emit({ type: 'note', repo: this.repo, message: `${f.path}: the cached copy is corrupt (${size === f.size ? 'checksum' : `${size} bytes, expected ${f.size}`}), fetching it again` });
    fs.rmSync(blob, { force: true });
    return false;
  }

  /** Fetches one blob into blobs/<etag>.incomplete, resuming what is there, then checks and renames it. */
  private async download(f: RemoteFile, onBytes: (have: number, fresh: number) => void, emit: (e: DownloadEvent) => void): Promise<void> {
    const blob = this.blobPath(f);
    const partial = `${blob}.incomplete`;
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    let have = partialSize(blob);
    if (have > f.size) {
      fs.rmSync(partial, { force: true });
      have = 0;
    }
    const hash = newHasher(f);
    if (have > 0) {
      await hashFile(partial, hash);
      emit({ type: 'note', repo: this.repo, message: `${f.path}: resuming at ${have} of ${f.size} bytes` });
    }
    onBytes(have, 0);
    const out = await fs.promises.open(partial, 'a');
    let failures = 0;
    try {
      while (have < f.size) {
        let got = 0;
        try {
          const remote = await downloadFile({
            repo: { type: 'model', name: this.repo },
            path: f.path,
            revision: this.commit,
            hubUrl: this.settings.endpoint,
            accessToken: this.settings.token,
            fetch: this.fetchFn,
            xet: false, // plain HTTP with ranges (as Python without hf_xet): resumable
          });
          if (!remote) throw new HubError('file_not_found', `${this.repo}@${this.revision}: ${f.path} is listed but cannot be fetched; retry later`);
          if (remote.size !== f.size) throw new HubError('bad_response', `${this.repo}: ${f.path} is ${remote.size} bytes when fetched but ${f.size} in the listing; retry later`);
          const body = (have > 0 ? remote.slice(have) : remote).stream();
          for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
            const n = Math.min(chunk.byteLength, f.size - have);
            if (n <= 0) break;
            const part = n === chunk.byteLength ? chunk : chunk.subarray(0, n);
            await out.write(part);
            hash.update(part);
            have += n;
            got += n;
            onBytes(have, n);
          }
          if (have < f.size) throw new Error('the connection closed before the end of the file');
        } catch (e) {
          const err = this.classify(e);
          if (err instanceof HubError && !err.retryable) throw err;
          failures = got > 0 ? 1 : failures + 1;
          if (failures >= MAX_ATTEMPTS) {
            throw err instanceof HubError ? err : networkError({ repo: this.repo, endpoint: this.settings.endpoint }, err);
          }
          emit({ type: 'note', repo: this.repo, message: `${f.path}: ${describe(err)} at ${have} of ${f.size} bytes; resuming` });
          await sleep(250 * 2 ** (failures - 1));
        }
      }
      await out.sync();
    } finally {
      await out.close();
    }
    const digest = hash.digest('hex');
    if (digest !== expectedDigest(f)) {
      fs.rmSync(partial, { force: true });
      throw new HubError('corrupt', `${this.repo}: ${f.path} arrived corrupt (${f.sha256 ? 'sha256' : 'git oid'} ${digest}, the Hub lists ${expectedDigest(f)}); run the command again to fetch it anew`, true);
    }
    fs.renameSync(partial, blob);
  }

  /** WebBlob.stream() reports a failed fetch as its message only: map it back to our error. */
  private classify(e: unknown): unknown {
    const last = this.state.lastError;
    if (last && (e === last || e === last.message || (e as Error)?.message === last.message)) return last;
    return e;
  }
}

function describe(e: unknown): string {
  if (e instanceof HubError) return e.message;
  const msg = (e as Error)?.message ?? String(e);
  return `connection lost (${msg})`;
}

function partialSize(blob: string): number {
  try {
    return fs.statSync(`${blob}.incomplete`).size;
  } catch {
    return 0;
  }
}

/** fetch for the package: a user agent, and Hub errors turned into HubErrors before it sees them. */
function hubFetch(ctx: ErrorContext, state: { lastError?: HubError }): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('user-agent', USER_AGENT);
    let resp: Response | undefined;
    for (let attempt = 0; !resp; attempt++) {
      try {
        resp = await fetch(input, { ...init, headers });
      } catch (e) {
        // A kept-alive connection the server closed meanwhile: one more try on a fresh one.
        if (attempt === 0 && STALE_CONNECTION.has(networkReason(e))) continue;
        throw (state.lastError = networkError(ctx, e));
      }
    }
    if (!resp.ok) throw (state.lastError = await httpError(resp, ctx));
    return resp;
  };
}

// Git names a blob by sha1("blob <size>\0" + content): the oid of files stored outside LFS.
function newHasher(f: RemoteFile): Hash {
  if (f.sha256) return createHash('sha256');
  return createHash('sha1').update(`blob ${f.size}\0`);
}

const expectedDigest = (f: RemoteFile): string => f.sha256 ?? f.oid;

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
}

async function fileDigest(file: string, f: RemoteFile): Promise<string> {
  const hash = newHasher(f);
  await hashFile(file, hash);
  return hash.digest('hex');
}
