// A Hugging Face Hub on 127.0.0.1 for tests: it answers the requests @huggingface/hub (and
// Python's huggingface_hub) make, shaped as the real Hub answers them:
//   GET  /api/models/ORG/NAME[/revision/REV]        model info ({ id, sha, gated, siblings, … })
//   GET  /api/models/ORG/NAME/tree/REV[/PATH]       listing: { type, path, size, oid, lfs? }
//   POST /api/models/ORG/NAME/paths-info/REV        the same entries for the paths asked
//   GET|HEAD /ORG/NAME/resolve/REV/FILE             files: small ones served here (ETag: git oid),
//        LFS ones (*.safetensors, *.bin, *.h5) as a 302 to /cdn-lfs/… with X-Linked-Etag (sha256)
//        and X-Linked-Size; X-Repo-Commit on both
//   GET|HEAD /cdn-lfs/ORG/NAME/SHA256               LFS bytes, with Range
// Errors carry X-Error-Code as the Hub's do: RepoNotFound (401 without a token: it does not tell a
// private repo from a missing one), RevisionNotFound, EntryNotFound, GatedRepo (401 without a
// token, 403 with one not granted). Every request is recorded, and a download can be cut once.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import type { GPTConfig } from '../../src/model/config.js';
import { randomInit } from '../../src/model/gpt.js';
import { openSafetensors, readTensorBytes, writeSafetensorsRaw, type RawTensor } from '../../src/model/safetensors.js';

interface StoredFile {
  data: Buffer;
  lfs: boolean;
  sha256: string;
  /** git blob oid: of the content, or of the LFS pointer file. */
  oid: string;
  pointerSize?: number;
}

interface Repo {
  id: string;
  gated: boolean;
  private: boolean;
  /** Tokens granted access (gated or private repos). */
  readers: Set<string>;
  commits: Map<string, Map<string, StoredFile>>;
  refs: Map<string, string>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  range?: string;
  authorized: boolean;
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

const LFS = /\.(safetensors|bin|h5|msgpack|onnx)$/;
const gitOid = (data: Buffer): string => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');

export class FakeHub {
  readonly requests: RecordedRequest[] = [];
  /** Valid tokens (any other Bearer token is refused with 401, as the Hub does). */
  readonly tokens = new Set<string>(['hf_reader', 'hf_granted']);
  /** LFS bodies are sent at this many bytes per second (0: as fast as possible), to watch progress output. */
  bytesPerSecond = 0;
  private readonly repos = new Map<string, Repo>();
  private readonly cuts = new Map<string, number>();
  private readonly corrupt = new Set<string>();
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeHub> {
    let hub: FakeHub | undefined;
    const server = http.createServer((req, res) => hub!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    hub = new FakeHub(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return hub;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** Creates a repo; `commit` adds its revisions. */
  addRepo(id: string, opts: { gated?: boolean; private?: boolean; readers?: string[] } = {}): void {
    this.repos.set(id, { id, gated: !!opts.gated, private: !!opts.private, readers: new Set(opts.readers ?? []), commits: new Map(), refs: new Map() });
  }

  /** A new commit on `branch` (default main) with exactly these files; returns its hash. */
  commit(id: string, files: Record<string, Buffer | string>, branch = 'main'): string {
    const repo = this.repos.get(id)!;
    const sha = randomBytes(20).toString('hex');
    const stored = new Map<string, StoredFile>();
    for (const [p, content] of Object.entries(files)) {
      const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
      const sha256 = createHash('sha256').update(data).digest('hex');
      if (LFS.test(p)) {
        const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${data.length}\n`);
        stored.set(p, { data, lfs: true, sha256, oid: gitOid(pointer), pointerSize: pointer.length });
      } else stored.set(p, { data, lfs: false, sha256, oid: gitOid(data) });
    }
    repo.commits.set(sha, stored);
    repo.refs.set(branch, sha);
    return sha;
  }

  /** The next download of this LFS blob (a body longer than `afterBytes`) is cut after `afterBytes` bytes. */
  cutOnce(sha256: string, afterBytes: number): void {
    this.cuts.set(sha256, afterBytes);
  }

  /** The next download of this LFS blob (more than the 1-byte probe) arrives with one byte flipped. */
  corruptOnce(sha256: string): void {
    this.corrupt.add(sha256);
  }

  file(id: string, file: string, revision = 'main'): StoredFile {
    const repo = this.repos.get(id)!;
    return repo.commits.get(repo.refs.get(revision) ?? revision)!.get(file)!;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url!, this.url);
    const rec: RecordedRequest = { method: req.method!, path: url.pathname + url.search, authorized: !!req.headers.authorization, status: 0, bytes: 0 };
    if (req.headers.range) rec.range = req.headers.range;
    this.requests.push(rec);
    const send = (status: number, headers: Record<string, string>, body: Buffer | string = '') => {
      rec.status = status;
      const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
      res.writeHead(status, { 'content-length': String(data.length), ...headers });
      if (req.method === 'HEAD') return void res.end();
      rec.bytes += data.length;
      res.end(data);
    };
    const error = (status: number, code: string | undefined, message: string, extra: Record<string, string> = {}) =>
      send(status, { 'content-type': 'application/json; charset=utf-8', ...(code ? { 'x-error-code': code } : {}), 'x-error-message': message, ...extra }, JSON.stringify({ error: message }));

    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        this.route(req, url, Buffer.concat(chunks), send, error, rec, res);
      } catch (e) {
        error(500, undefined, (e as Error).message);
      }
    });
  }

  private route(
    req: http.IncomingMessage,
    url: URL,
    body: Buffer,
    send: (status: number, headers: Record<string, string>, body?: Buffer | string) => void,
    error: (status: number, code: string | undefined, message: string, extra?: Record<string, string>) => void,
    rec: RecordedRequest,
    res: http.ServerResponse,
  ): void {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token !== undefined && !this.tokens.has(token)) return error(401, undefined, 'Invalid credentials in Authorization header');
    const p = url.pathname;

    const cdn = /^\/cdn-lfs\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/.exec(p);
    if (cdn) {
      const f = this.findBlob(cdn[1]!, cdn[2]!);
      if (!f) return error(404, undefined, 'NoSuchKey');
      return this.serveBytes(req, res, f, { etag: `"${f.sha256}"`, 'content-type': 'application/octet-stream' }, rec, f.sha256);
    }

    const api = /^\/api\/models\/([^/]+\/[^/]+)(?:\/(revision|tree|paths-info)\/([^/]+)(\/.*)?)?$/.exec(p);
    if (api) {
      const [, id, kind, rawRev, sub] = api;
      const found = this.access(id!, token, false);
      if ('status' in found) return error(found.status, found.code, found.message);
      const rev = decodeURIComponent(rawRev ?? 'main');
      const commit = this.commitOf(found, rev);
      if (!commit) return error(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      const files = found.commits.get(commit)!;
      const entry = (path: string, f: StoredFile) => ({
        type: 'file',
        oid: f.oid,
        size: f.data.length,
        path,
        ...(f.lfs ? { lfs: { oid: f.sha256, size: f.data.length, pointerSize: f.pointerSize } } : {}),
      });
      const json = (v: unknown) => send(200, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(v));
      if (!kind || kind === 'revision') {
        return json({
          _id: commit.slice(0, 24),
          id: found.id,
          private: found.private,
          gated: found.gated ? 'manual' : false,
          disabled: false,
          downloads: 0,
          likes: 0,
          lastModified: new Date(0).toISOString(),
          sha: commit,
          pipeline_tag: 'text-generation',
          library_name: 'transformers',
          tags: ['transformers', 'safetensors', 'gpt2', 'text-generation'],
          siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
        });
      }
      if (kind === 'tree') {
        const prefix = sub ? sub.slice(1).replace(/\/$/, '') + '/' : '';
        const recursive = url.searchParams.get('recursive') === 'true';
        const out = [...files].filter(([f]) => f.startsWith(prefix) && (recursive || !f.slice(prefix.length).includes('/'))).map(([f, s]) => entry(f, s));
        return json(out);
      }
      if (req.method !== 'POST') return error(405, undefined, 'Method not allowed');
      const { paths } = JSON.parse(body.toString() || '{}') as { paths?: string[] };
      return json((paths ?? []).filter((f) => files.has(f)).map((f) => entry(f, files.get(f)!)));
    }

    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    if (resolve) {
      const [, id, rawRev, file] = resolve;
      const found = this.access(id!, token, true);
      if ('status' in found) return error(found.status, found.code, found.message);
      const rev = decodeURIComponent(rawRev!);
      const commit = this.commitOf(found, rev);
      if (!commit) return error(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      const f = found.commits.get(commit)!.get(decodeURIComponent(file!));
      if (!f) return error(404, 'EntryNotFound', `${file} does not exist on "${rev}"`, { 'x-repo-commit': commit });
      if (f.lfs) {
        const location = `${this.url}/cdn-lfs/${id}/${f.sha256}`;
        return send(302, {
          location,
          'x-repo-commit': commit,
          etag: `"${f.oid}"`,
          'x-linked-etag': `"${f.sha256}"`,
          'x-linked-size': String(f.data.length),
          'content-type': 'text/plain; charset=utf-8',
        }, `Found. Redirecting to ${location}`);
      }
      return this.serveBytes(req, res, f, { etag: `"${f.oid}"`, 'x-repo-commit': commit, 'content-type': 'application/json' }, rec);
    }
    error(404, undefined, 'Sorry, we can\u2019t find the page you are looking for.');
  }

  /**
   * The repo if this token may see it (and, for `content`, download from it), else the Hub's
   * answer: without a token it does not tell a private repo from a missing one (401).
   */
  private access(id: string, token: string | undefined, content: boolean): Repo | { status: number; code: string; message: string } {
    const repo = this.repos.get(id);
    const granted = token !== undefined && !!repo?.readers.has(token);
    if (!repo || (repo.private && !granted)) return { status: token ? 404 : 401, code: 'RepoNotFound', message: 'Repository not found' };
    if (content && repo.gated && !granted) {
      return token
        ? { status: 403, code: 'GatedRepo', message: `Access to model ${id} is restricted and you are not in the authorized list. Visit ${this.url}/${id} to ask for access.` }
        : { status: 401, code: 'GatedRepo', message: `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.` };
    }
    return repo;
  }

  private commitOf(repo: Repo, rev: string): string | undefined {
    if (repo.commits.has(rev)) return rev;
    return repo.refs.get(rev);
  }

  private findBlob(id: string, sha256: string): StoredFile | undefined {
    for (const files of this.repos.get(id)?.commits.values() ?? []) for (const f of files.values()) if (f.lfs && f.sha256 === sha256) return f;
    return undefined;
  }

  private serveBytes(req: http.IncomingMessage, res: http.ServerResponse, f: StoredFile, headers: Record<string, string>, rec: RecordedRequest, cutKey?: string): void {
    const size = f.data.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (req.headers.range) {
      if (!range || range[1] === '') {
        rec.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${size}` });
        return void res.end();
      }
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size || end < start) {
        rec.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${size}` });
        return void res.end();
      }
      status = 206;
      headers = { ...headers, 'content-range': `bytes ${start}-${end}/${size}` };
    }
    let body = f.data.subarray(start, end + 1);
    if (cutKey !== undefined && body.length > 1 && this.corrupt.delete(cutKey)) {
      body = Buffer.from(body);
      body[body.length >> 1]! ^= 0xff;
    }
    rec.status = status;
    res.writeHead(status, { ...headers, 'accept-ranges': 'bytes', 'content-length': String(body.length) });
    if (req.method === 'HEAD') return void res.end();
    const cut = cutKey === undefined ? undefined : this.cuts.get(cutKey);
    if (cut !== undefined && body.length > cut) {
      this.cuts.delete(cutKey!);
      rec.bytes += cut;
      res.write(body.subarray(0, cut), () => res.socket?.destroy());
      return;
    }
    rec.bytes += body.length;
    if (!this.bytesPerSecond || cutKey === undefined) return void res.end(body);
    const step = Math.max(1, Math.round(this.bytesPerSecond / 20));
    let at = 0;
    const next = () => {
      if (res.destroyed) return;
      const part = body.subarray(at, (at += step));
      if (at >= body.length) res.end(part);
      else res.write(part, () => setTimeout(next, 50));
    };
    next();
  }
}

/** The files of a tiny GPT-2 repo as the Hub holds them (config, weights, and what else real repos carry). */
export function gpt2RepoFiles(config: GPTConfig, opts: { seed?: number; shards?: number; extra?: Record<string, string | Buffer> } = {}): Record<string, Buffer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-hub-model-'));
  try {
    saveCheckpoint(dir, config, randomInit(config, opts.seed ?? 1));
    const files: Record<string, Buffer> = {
      '.gitattributes': Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n'),
      'README.md': Buffer.from('---\nlicense: mit\n---\n# a tiny GPT-2 for tests\n'),
      'config.json': fs.readFileSync(path.join(dir, 'config.json')),
      'generation_config.json': Buffer.from(JSON.stringify({ bos_token_id: 50256, eos_token_id: 50256 })),
    };
    const whole = path.join(dir, 'model.safetensors');
    if (!opts.shards) files['model.safetensors'] = fs.readFileSync(whole);
    else {
      const st = openSafetensors(whole);
      const names = [...st.tensors.keys()];
      const n = opts.shards;
      const weightMap: Record<string, string> = {};
      let total = 0;
      for (let s = 0; s < n; s++) {
        const shard = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
        const mine = names.filter((_, i) => i % n === s);
        const tensors: RawTensor[] = mine.map((name) => {
          const t = st.tensors.get(name)!;
          weightMap[name] = shard;
          total += t.end - t.begin;
          return { name, dtype: t.dtype as RawTensor['dtype'], shape: t.shape, data: readTensorBytes(st, name) };
        });
        const out = path.join(dir, shard);
        writeSafetensorsRaw(out, tensors, { metadata: { format: 'pt' } });
        files[shard] = fs.readFileSync(out);
      }
      files['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
    }
    for (const [k, v] of Object.entries(opts.extra ?? {})) files[k] = Buffer.isBuffer(v) ? v : Buffer.from(v);
    return files;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
