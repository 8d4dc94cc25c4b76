// Models from the Hugging Face Hub, against a fake Hub on 127.0.0.1 (tests/helpers/fake-hub.ts)
// that answers as the real one does: download into the shared cache layout, cache hits without
// a request, offline mode, resume, verification, errors, revisions, shards, adapters, the CLI.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { downloadProgress } from '../src/cli/progress.js';
import { cachedSnapshotDir, HubError, parseRepoSpec, type DownloadEvent, type HubSettings } from '../src/hub/index.js';
import { loadCheckpoint, materialize } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { fetchHubModel, resolveModel, type ResolveOptions } from '../src/model/resolve.js';
import { startServer } from '../src/server/server.js';
import { FakeHub, gpt2RepoFiles } from './helpers/fake-hub.js';

const execFileP = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../bin/scratchgpt.js');
// The full GPT-2 vocabulary so the CLI can tokenize a prompt; narrow, so the file stays ~3 MB.
const cfg: GPTConfig = { vocabSize: 50257, contextLength: 48, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
/** A port nothing listens on (taken, then freed): any request there is refused. */
let DEAD: string;

let hub: FakeHub;
let root: string;
let cacheDir: string;
let n = 0;
let tinyMain: string;

beforeAll(async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  DEAD = `http://127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
  await new Promise((r) => probe.close(r));
  hub = await FakeHub.start();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-test-'));
  hub.addRepo('test/tiny');
  // What real repos also hold, which must never be fetched.
  tinyMain = hub.commit('test/tiny', gpt2RepoFiles(cfg, { seed: 1, extra: { 'pytorch_model.bin': Buffer.alloc(4096, 1), 'tf_model.h5': Buffer.alloc(4096, 2) } }));
  newRepo('test/private', gpt2RepoFiles(cfg), { private: true, readers: ['hf_granted'] });
  newRepo('test/gated', gpt2RepoFiles(cfg), { gated: true, readers: ['hf_granted'] });
  newRepo('test/pickle', { 'config.json': JSON.stringify({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }), 'pytorch_model.bin': Buffer.alloc(64) });
  newRepo('test/llama', { 'config.json': JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }), 'model.safetensors': Buffer.alloc(64) });
});
afterAll(async () => {
  await hub.close();
  fs.rmSync(root, { recursive: true, force: true });
});
beforeEach(() => {
  cacheDir = path.join(root, `cache${n++}`); // HF_HUB_CACHE of this test; never ~/.cache
});

const settings = (over: Partial<HubSettings> = {}): Partial<HubSettings> => ({ endpoint: hub.url, cacheDir, token: undefined, offline: false, ...over });
const opts = (over: Partial<HubSettings> = {}, extra: ResolveOptions = {}): ResolveOptions => ({ hub: settings(over), ...extra });
const sha256 = (b: Buffer | string): string => createHash('sha256').update(typeof b === 'string' ? fs.readFileSync(b) : b).digest('hex');
const requestsSince = (mark: number) => hub.requests.slice(mark);
const errorOf = async (p: Promise<unknown>): Promise<HubError> => {
  try {
    await p;
  } catch (e) {
    return e as HubError;
  }
  throw new Error('expected an error');
};
const oneLine = (s: string) => expect(s).not.toMatch(/\n/);
/** Bitwise equality of two float arrays (vitest's deep equality is slow on millions of numbers). */
const sameFloats = (a: Float32Array, b: Float32Array) => expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);

function newRepo(id: string, files: Record<string, Buffer | string>, repoOpts: Parameters<FakeHub['addRepo']>[1] = {}): string {
  hub.addRepo(id, repoOpts);
  return hub.commit(id, files);
}

describe('repo ids', () => {
  it('parses ORG/NAME[@REV] and refuses what is not one', () => {
    expect(parseRepoSpec('openai-community/gpt2')).toEqual({ repo: 'openai-community/gpt2' });
    expect(parseRepoSpec('distilbert/distilgpt2@refs/pr/3')).toEqual({ repo: 'distilbert/distilgpt2', revision: 'refs/pr/3' });
    expect(parseRepoSpec(`a/b@${'f'.repeat(40)}`)).toEqual({ repo: 'a/b', revision: 'f'.repeat(40) });
    for (const bad of ['gpt2', './gpt2', '/abs/path', 'a/b/c', 'a/b@', 'a--b/c', 'a/.b', 'a/b@x..y', 'a b/c']) expect(parseRepoSpec(bad)).toBeUndefined();
    expect(parseRepoSpec('gpt2', { legacy: true })).toEqual({ repo: 'gpt2' });
  });
});

describe('download into the Hugging Face cache', () => {
  it('fetches only what a GPT-2 needs, in the layout Python uses, then runs from the cache without a request', async () => {
    const events: DownloadEvent[] = [];
    const mark = hub.requests.length;
    const r = await resolveModel('test/tiny', opts({}, { onProgress: (e) => events.push(e) }));
    const repoDir = path.join(cacheDir, 'models--test--tiny');
    expect(r).toEqual({ id: 'test/tiny', dir: path.join(repoDir, 'snapshots', tinyMain) });
    expect(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(tinyMain);

    // snapshot entries are relative links to blobs named by sha256 (LFS) or git oid (others)
    const weights = hub.file('test/tiny', 'model.safetensors');
    const config = hub.file('test/tiny', 'config.json');
    expect(fs.readlinkSync(path.join(r.dir, 'model.safetensors'))).toBe(`../../blobs/${weights.sha256}`);
    expect(fs.readlinkSync(path.join(r.dir, 'config.json'))).toBe(`../../blobs/${config.oid}`);
    expect(sha256(path.join(r.dir, 'model.safetensors'))).toBe(weights.sha256);
    expect(fs.readdirSync(r.dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
    // the optional file the repo lacks is marked absent, as Python marks it
    expect(fs.existsSync(path.join(repoDir, '.no_exist', tinyMain, 'tokenizer_config.json'))).toBe(true);
    expect(fs.readdirSync(path.join(repoDir, 'blobs')).filter((f) => f.endsWith('.incomplete'))).toEqual([]);

    const fetched = requestsSince(mark).map((q) => q.path);
    for (const never of ['pytorch_model.bin', 'tf_model.h5', 'README.md', '.gitattributes']) expect(fetched.filter((p) => p.includes(never))).toEqual([]);
    expect(fetched.some((p) => p.startsWith(`/cdn-lfs/test/tiny/${weights.sha256}`))).toBe(true);

    // progress covers the weights, ends at their size
    expect(events[0]).toMatchObject({ type: 'start', repo: 'test/tiny', files: 1, total: weights.data.length, done: 0 });
    const last = events.filter((e) => e.type === 'progress').at(-1)!;
    expect(last).toMatchObject({ done: weights.data.length, total: weights.data.length, transferred: weights.data.length });
    expect(events.at(-1)).toMatchObject({ type: 'end', transferred: weights.data.length });

    // the weights load (from the blob itself: ORT cannot map external data through a symlink)
    const ckpt = loadCheckpoint(r.dir);
    const wte = ckpt.weights.get('wte.weight')!;
    expect(wte.kind === 'file' && wte.path).toBe(path.join(repoDir, 'blobs', weights.sha256));
    sameFloats(materialize(ckpt.weights).get('wte.weight')!.data, randomInit(cfg, 1).get('wte.weight')!.data);

    // a second run: not one request; nor offline, with the Hub unreachable
    const before = hub.requests.length;
    expect(await resolveModel('test/tiny', opts())).toEqual(r);
    expect(await resolveModel('test/tiny', opts({ offline: true, endpoint: DEAD }))).toEqual(r);
    expect(hub.requests.length).toBe(before);
    expect(cachedSnapshotDir('test/tiny', undefined, cacheDir)).toBe(r.dir);
    expect(cachedSnapshotDir('test/tiny', tinyMain, cacheDir)).toBe(r.dir);
    expect(cachedSnapshotDir('test/other', undefined, cacheDir)).toBeUndefined();
  });

  it('offline without the model in the cache: a one-line error and no request', async () => {
    const mark = hub.requests.length;
    const e = await errorOf(resolveModel('test/tiny', opts({ offline: true })));
    expect(e.code).toBe('offline_not_cached');
    expect(e.message).toMatch(/HF_HUB_OFFLINE is set and test\/tiny is not in the Hugging Face cache .* unset HF_HUB_OFFLINE to download it, or run 'scratchgpt download test\/tiny'/);
    oneLine(e.message);
    expect(hub.requests.length).toBe(mark);
  });

  it('resumes a download whose connection was cut mid-file', async () => {
    const weights = hub.file('test/tiny', 'model.safetensors');
    const CUT = 600_000;
    hub.cutOnce(weights.sha256, CUT);
    const notes: string[] = [];
    const mark = hub.requests.length;
    const r = await resolveModel('test/tiny', opts({}, { onProgress: (e) => e.type === 'note' && notes.push(e.message) }));
    expect(sha256(path.join(r.dir, 'model.safetensors'))).toBe(weights.sha256);
    const cdn = requestsSince(mark).filter((q) => q.path.includes(weights.sha256) && q.range !== 'bytes=0-0');
    expect(cdn).toHaveLength(2);
    expect([cdn[0]!.range, cdn[0]!.bytes]).toEqual([undefined, CUT]); // the cut one
    const from = Number(/^bytes=(\d+)-(\d+)$/.exec(cdn[1]!.range!)![1]);
    expect(from).toBeGreaterThan(0); // not from zero…
    expect(from).toBeLessThanOrEqual(CUT); // …and no byte it did not get
    expect(cdn[1]!.range).toBe(`bytes=${from}-${weights.data.length - 1}`);
    expect(notes.some((m) => /connection lost .* resuming/.test(m))).toBe(true);
  });

  it("resumes an earlier run's blobs/<etag>.incomplete with a Range request", async () => {
    const weights = hub.file('test/tiny', 'model.safetensors');
    const blobs = path.join(cacheDir, 'models--test--tiny', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${weights.sha256}.incomplete`), weights.data.subarray(0, 500_000));
    const events: DownloadEvent[] = [];
    const mark = hub.requests.length;
    const r = await resolveModel('test/tiny', opts({}, { onProgress: (e) => events.push(e) }));
    expect(sha256(path.join(r.dir, 'model.safetensors'))).toBe(weights.sha256);
    const cdn = requestsSince(mark).filter((q) => q.path.includes(weights.sha256) && q.range !== 'bytes=0-0');
    expect(cdn.map((q) => [q.range, q.bytes])).toEqual([[`bytes=500000-${weights.data.length - 1}`, weights.data.length - 500_000]]);
    expect(events[0]).toMatchObject({ type: 'start', done: 500_000 });
    expect(events.some((e) => e.type === 'note' && /resuming at 500000/.test(e.message))).toBe(true);
  });

  it('refetches a corrupt blob: bytes that arrive corrupt, a cached copy changed or truncated', async () => {
    const weights = hub.file('test/tiny', 'model.safetensors');
    const blob = path.join(cacheDir, 'models--test--tiny', 'blobs', weights.sha256);
    const notes: string[] = [];
    const onProgress = (e: DownloadEvent) => e.type === 'note' && notes.push(e.message);

    // in transfer: the sha256 check catches it, the file is fetched again
    hub.corruptOnce(weights.sha256);
    const r = await resolveModel('test/tiny', opts({}, { onProgress }));
    expect(sha256(blob)).toBe(weights.sha256);
    expect(notes.some((m) => /model\.safetensors arrived corrupt \(sha256 [0-9a-f]{64}, the Hub lists [0-9a-f]{64}\): fetching it again/.test(m))).toBe(true);

    // in the cache, same size: `download` (refresh) hashes every cached file
    const bytes = fs.readFileSync(blob);
    bytes[100_000]! ^= 1;
    fs.writeFileSync(blob, bytes);
    notes.length = 0;
    let mark = hub.requests.length;
    await fetchHubModel({ repo: 'test/tiny' }, opts({}, { refresh: true, onProgress }));
    expect(sha256(blob)).toBe(weights.sha256);
    expect(notes).toContain('model.safetensors: the cached copy is corrupt (checksum), fetching it again');
    expect(requestsSince(mark).filter((q) => q.path.includes(weights.sha256) && q.range === undefined)).toHaveLength(1);

    // truncated in the cache: even a plain run sees it (the safetensors header outruns the file)
    fs.truncateSync(blob, 1_000_000);
    notes.length = 0;
    mark = hub.requests.length;
    expect((await resolveModel('test/tiny', opts({}, { onProgress }))).dir).toBe(r.dir);
    expect(sha256(blob)).toBe(weights.sha256);
    expect(notes).toContain(`model.safetensors: the cached copy is corrupt (1000000 bytes, expected ${weights.data.length}), fetching it again`);
    expect(requestsSince(mark).length).toBeGreaterThan(0);
  });
});

describe('errors', () => {
  it('a missing repo (401 without a token, 404 with one): neither a folder nor a Hub model', async () => {
    let e = await errorOf(resolveModel('test/nope', opts()));
    expect(e.message).toBe(`'test/nope' is neither a folder here nor a model on ${hub.url}: check the path, or the id (ORG/NAME as on ${hub.url}/models); for a private model set HF_TOKEN`);
    expect(hub.requests.at(-1)).toMatchObject({ status: 401, authorized: false });
    e = await errorOf(resolveModel('test/nope', opts({ token: 'hf_reader' })));
    expect(e.message).toMatch(/^'test\/nope' is neither a folder here nor a model on .* that HF_TOKEN can read/);
    expect(hub.requests.at(-1)).toMatchObject({ status: 404, authorized: true });
    // a private repo reads the same without access, and downloads with a granted token
    expect((await errorOf(resolveModel('test/private', opts()))).code).toBe('repo_not_found');
    expect((await resolveModel('test/private', opts({ token: 'hf_granted' }))).id).toBe('test/private');
  });

  it('a gated repo: 401 without a token, 403 without access, each saying what to do', async () => {
    let e = await errorOf(resolveModel('test/gated', opts()));
    expect(e.code).toBe('gated');
    expect(e.message).toBe(`test/gated is gated: accept its license at ${hub.url}/test/gated, then set HF_TOKEN to an access token of that account (${hub.url}/settings/tokens)`);
    expect(hub.requests.at(-1)).toMatchObject({ status: 401 });
    e = await errorOf(resolveModel('test/gated', opts({ token: 'hf_reader' })));
    expect(e.message).toBe(`test/gated is gated and HF_TOKEN's account has no access yet: accept its license at ${hub.url}/test/gated with that account (some need the authors' approval), then retry`);
    expect(hub.requests.at(-1)).toMatchObject({ status: 403 });
    const ok = await resolveModel('test/gated', opts({ token: 'hf_granted' }));
    expect(fs.existsSync(path.join(ok.dir, 'model.safetensors'))).toBe(true);
  });

  it('a bad token: refused by the Hub (401), or not a token at all (no request)', async () => {
    let e = await errorOf(resolveModel('test/tiny', opts({ token: 'hf_revoked' })));
    expect(e.message).toBe(`${hub.url} refused HF_TOKEN (401) (the Hub said: Invalid credentials in Authorization header): set HF_TOKEN to a valid access token (${hub.url}/settings/tokens), or unset it for public models`);
    const mark = hub.requests.length;
    e = await errorOf(resolveModel('test/tiny', opts({ token: 'ghp_abc' })));
    expect(e.message).toMatch(/^HF_TOKEN is not a Hugging Face access token \(they start with hf_\)/);
    expect(hub.requests.length).toBe(mark);
  });

  it('no network: names the endpoint, and suggests HF_HUB_OFFLINE=1 when the model is cached', async () => {
    let e = await errorOf(resolveModel('test/tiny', opts({ endpoint: DEAD })));
    expect(e.message).toBe(`cannot reach ${DEAD} (ECONNREFUSED) to fetch test/tiny: check the network connection, or HF_ENDPOINT if you use a mirror`);
    // cached, but not completely (Python fetched it and never asked for tokenizer_config.json)
    const r = await resolveModel('test/tiny', opts());
    fs.rmSync(path.join(cacheDir, 'models--test--tiny', '.no_exist'), { recursive: true });
    e = await errorOf(resolveModel('test/tiny', opts({ endpoint: DEAD })));
    expect(e.message).toMatch(/\(ECONNREFUSED\) .*; test\/tiny is in the cache: set HF_HUB_OFFLINE=1 to use it without the network$/);
    oneLine(e.message);
    expect((await resolveModel('test/tiny', opts({ endpoint: DEAD, offline: true }))).dir).toBe(r.dir);
  });

  it('pytorch_model.bin only, another architecture, a name that is neither folder nor id', async () => {
    let e = await errorOf(resolveModel('test/pickle', opts()));
    expect(e.message).toMatch(/^test\/pickle has only pytorch_model\.bin, no model\.safetensors: scratchgpt reads safetensors only .* test\/pickle@refs\/pr\/N\)$/);

    const mark = hub.requests.length;
    e = await errorOf(resolveModel('test/llama', opts()));
    expect(e.message).toBe('test/llama is not a GPT-2 (config.json: model_type \'llama\', architectures LlamaForCausalLM): scratchgpt runs GPT-2 checkpoints only (model_type gpt2), e.g. openai-community/gpt2 or distilbert/distilgpt2');
    expect(requestsSince(mark).some((q) => q.path.includes('/cdn-lfs/'))).toBe(false); // refused before the weights

    await expect(resolveModel('gpt2', opts())).rejects.toThrow("no folder 'gpt2' (Hub models are named ORG/NAME, e.g. openai-community/gpt2): give a model folder (config.json + model.safetensors) or a Hugging Face model id ORG/NAME[@REVISION]");
    await expect(resolveModel('./not/here', opts())).rejects.toThrow(/^no folder '\.\/not\/here': give a model folder/);
  });

  it('a local folder wins over a Hub id spelled the same', async () => {
    const cwd = process.cwd();
    const dir = path.join(root, 'cwd-test');
    fs.mkdirSync(path.join(dir, 'test', 'tiny'), { recursive: true });
    process.chdir(dir);
    try {
      const mark = hub.requests.length;
      expect(await resolveModel('test/tiny', opts())).toEqual({ id: 'tiny', dir: path.join(dir, 'test', 'tiny') });
      expect(hub.requests.length).toBe(mark);
    } finally {
      process.chdir(cwd);
    }
  });
});

describe('two processes, one blob', () => {
  it('waits while a live process holds the blob lock, and takes over a dead one', async () => {
    const files = gpt2RepoFiles(cfg, { seed: 5 });
    newRepo('test/locked', files);
    const blobs = path.join(cacheDir, 'models--test--locked', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    const lock = path.join(blobs, `${sha256(files['model.safetensors']!)}.lock`);
    fs.writeFileSync(lock, String(process.pid)); // this process: alive, so the fetch must wait for it
    let sawWait = false;
    const done = resolveModel('test/locked', opts({}, {
      onProgress: (ev) => {
        if (ev.type === 'note' && /is fetching it; waiting/.test(ev.message)) {
          sawWait = true;
          fs.rmSync(lock); // the other process finishes
        }
      },
    }));
    const dir = (await done).dir;
    expect(sawWait).toBe(true);
    expect(sha256(path.join(dir, 'model.safetensors'))).toBe(sha256(files['model.safetensors']!));
    expect(fs.existsSync(lock)).toBe(false);

    // A lock left by a killed process (no such pid) is taken over without waiting.
    cacheDir = path.join(root, `cache${n++}`);
    fs.mkdirSync(path.join(cacheDir, 'models--test--locked', 'blobs'), { recursive: true });
    fs.writeFileSync(path.join(cacheDir, 'models--test--locked', 'blobs', path.basename(lock)), '2147483646');
    const notes: string[] = [];
    await resolveModel('test/locked', opts({}, { onProgress: (ev) => ev.type === 'note' && notes.push(ev.message) }));
    expect(notes.filter((m) => /waiting/.test(m))).toEqual([]);
  });
});

describe('revisions', () => {
  it('pins a commit or a branch; main moving on is picked up by download, not by a cache hit', async () => {
    const first = newRepo('test/moving', gpt2RepoFiles(cfg, { seed: 1 }));
    const dev = hub.commit('test/moving', gpt2RepoFiles(cfg, { seed: 2 }), 'dev');
    const atDev = await resolveModel('test/moving@dev', opts());
    expect(atDev).toEqual({ id: 'test/moving@dev', dir: path.join(cacheDir, 'models--test--moving', 'snapshots', dev) });
    expect(fs.readFileSync(path.join(cacheDir, 'models--test--moving', 'refs', 'dev'), 'utf8')).toBe(dev);

    const main1 = await resolveModel('test/moving', opts());
    expect(path.basename(main1.dir)).toBe(first);
    const second = hub.commit('test/moving', gpt2RepoFiles(cfg, { seed: 3 }));
    // the first commit by hash: its own snapshot, no refs/ entry for a hash
    const pinned = await resolveModel(`test/moving@${first}`, opts());
    expect(pinned.dir).toBe(main1.dir);
    expect(fs.readdirSync(path.join(cacheDir, 'models--test--moving', 'refs')).sort()).toEqual(['dev', 'main']);

    const mark = hub.requests.length;
    expect((await resolveModel('test/moving', opts())).dir).toBe(main1.dir); // cached: no request
    expect(hub.requests.length).toBe(mark);
    const now = await fetchHubModel({ repo: 'test/moving' }, opts({}, { refresh: true }));
    expect(path.basename(now)).toBe(second);
    expect((await resolveModel('test/moving', opts())).dir).toBe(now);
    sameFloats(materialize(loadCheckpoint(now).weights).get('wte.weight')!.data, randomInit(cfg, 3).get('wte.weight')!.data);

    // main moves again and its weights fail twice: refs/main stays at the complete snapshot.
    const third = gpt2RepoFiles(cfg, { seed: 4 });
    hub.commit('test/moving', third);
    hub.corruptOnce(sha256(third['model.safetensors']!));
    const failed = await errorOf(
      fetchHubModel({ repo: 'test/moving' }, opts({}, { refresh: true, onProgress: (ev) => ev.type === 'note' && /fetching it again/.test(ev.message) && hub.corruptOnce(sha256(third['model.safetensors']!)) })),
    );
    expect(failed.code).toBe('corrupt');
    expect(fs.readFileSync(path.join(cacheDir, 'models--test--moving', 'refs', 'main'), 'utf8')).toBe(second);
    expect((await resolveModel('test/moving', opts({ offline: true }))).dir).toBe(now);

    const e = await errorOf(resolveModel('test/moving@nope', opts()));
    expect(e.message).toBe(`test/moving has no revision 'nope' on ${hub.url}: give an existing branch, tag or commit hash after @ (see ${hub.url}/test/moving/tree/main)`);
  });
});

describe('sharded safetensors', () => {
  it('downloads the index and every shard, and loads them as one model, each tensor in place', async () => {
    const files = gpt2RepoFiles(cfg, { seed: 4, shards: 3 });
    newRepo('test/sharded', files);
    const events: DownloadEvent[] = [];
    const r = await resolveModel('test/sharded', opts({}, { onProgress: (e) => events.push(e) }));
    const shards = Object.keys(files).filter((f) => /^model-\d{5}-of-00003\.safetensors$/.test(f));
    expect(shards).toHaveLength(3);
    expect(fs.readdirSync(r.dir).sort()).toEqual(['config.json', 'generation_config.json', ...shards, 'model.safetensors.index.json'].sort());
    expect(events[0]).toMatchObject({ type: 'start', files: 3, total: shards.reduce((s, f) => s + files[f]!.length, 0) });
    const ckpt = loadCheckpoint(r.dir);
    const paths = new Set([...ckpt.weights.values()].map((w) => (w.kind === 'file' ? w.path : 'memory')));
    expect([...paths].sort()).toEqual(shards.map((s) => path.join(cacheDir, 'models--test--sharded', 'blobs', sha256(files[s]!))).sort());
    const want = randomInit(cfg, 4);
    for (const [name, t] of materialize(ckpt.weights)) sameFloats(t.data, want.get(name)!.data);
    // cached: no request
    const mark = hub.requests.length;
    await resolveModel('test/sharded', opts());
    expect(hub.requests.length).toBe(mark);
  });

  it('refuses an index that disagrees with its shards, or names a missing shard', () => {
    const files = gpt2RepoFiles(cfg, { seed: 4, shards: 2 });
    const dir = path.join(root, 'sharded-local');
    fs.mkdirSync(dir);
    for (const [f, data] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), data);
    expect(loadCheckpoint(dir).weights.size).toBeGreaterThan(0);
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(files['model.safetensors.index.json']!.toString());
    const moved = Object.keys(index.weight_map).find((k) => index.weight_map[k] === 'model-00001-of-00002.safetensors')!;
    fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [moved]: 'model-00002-of-00002.safetensors' } }));
    expect(() => loadCheckpoint(dir)).toThrow(`${indexFile}: the weight_map puts tensor '${moved}' in model-00002-of-00002.safetensors, which does not hold it`);
    fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, extra: '../evil.safetensors' } }));
    expect(() => loadCheckpoint(dir)).toThrow(/weight_map names "\.\.\/evil\.safetensors", not a \.safetensors file beside the index/);
    fs.writeFileSync(indexFile, files['model.safetensors.index.json']!);
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    expect(() => loadCheckpoint(dir)).toThrow(/model-00002-of-00002\.safetensors: cannot open/);
  });
});

describe('PEFT adapters', () => {
  it('fetches adapter_config.json + adapter_model.safetensors, and the Hub base it names', async () => {
    newRepo('test/adapter', {
      'adapter_config.json': JSON.stringify({ peft_type: 'LORA', base_model_name_or_path: 'test/tiny', r: 4, lora_alpha: 8, target_modules: ['c_attn'] }),
      'adapter_model.safetensors': gpt2RepoFiles(cfg)['model.safetensors']!, // any safetensors will do here
      'adapter_model.bin': Buffer.alloc(16),
      'README.md': '# adapter',
    });
    const r = await resolveModel('test/adapter', opts());
    expect(fs.readdirSync(r.dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const base = cachedSnapshotDir('test/tiny', undefined, cacheDir)!;
    expect(fs.existsSync(path.join(base, 'model.safetensors'))).toBe(true);
    const mark = hub.requests.length;
    expect(await resolveModel('test/adapter', opts())).toEqual(r);
    expect(hub.requests.length).toBe(mark);
    // offline, the adapter counts as cached only with its base
    fs.rmSync(path.join(cacheDir, 'models--test--tiny'), { recursive: true });
    expect((await errorOf(resolveModel('test/adapter', opts({ offline: true })))).message).toMatch(/\(its base test\/tiny is not cached\)/);
    // a base the Hub lacks is reported as the base, not as the adapter
    newRepo('test/orphan', { 'adapter_config.json': JSON.stringify({ peft_type: 'LORA', base_model_name_or_path: 'test/gone' }), 'adapter_model.safetensors': Buffer.alloc(8) });
    expect((await errorOf(resolveModel('test/orphan', opts()))).message).toBe(`test/gone: no such model on ${hub.url}: check the name (ORG/NAME, as in ${hub.url}/test/gone); for a private model set HF_TOKEN`);
    // for --lora the adapter goes onto another model: its own base is neither fetched nor needed offline
    const lora = await resolveModel('test/orphan', opts({}, { withoutBase: true }));
    expect(fs.readdirSync(lora.dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect(await resolveModel('test/adapter', opts({ offline: true }, { withoutBase: true }))).toEqual(r);
  });
});

describe('serve', () => {
  it('lists a Hub model under its id', async () => {
    const m = await resolveModel('test/tiny', opts());
    const server = await startServer({ modelDirs: [m], port: 0, slots: 1, queue: 1, threads: 1 });
    try {
      await server.ready;
      const list = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(list.data.map((d) => d.id)).toEqual(['test/tiny']);
      const one = (await (await fetch(`${server.url}/v1/models/test/tiny`)).json()) as { id: string };
      expect(one.id).toBe('test/tiny');
    } finally {
      await server.shutdown();
    }
  });
});

describe('progress rendering', () => {
  const run = (tty: boolean) => {
    const out: string[] = [];
    let t = 0;
    const render = downloadProgress({ isTTY: tty, columns: 120, write: (s) => out.push(s) }, () => t);
    render({ type: 'start', repo: 'org/m', files: 1, total: 5_000_000, done: 0 });
    for (let i = 1; i <= 50; i++) {
      t += 50;
      render({ type: 'progress', repo: 'org/m', file: 'model.safetensors', done: i * 100_000, total: 5_000_000, transferred: i * 100_000 });
    }
    render({ type: 'end', repo: 'org/m', total: 5_000_000, transferred: 5_000_000, seconds: 2.5 });
    return out.join('');
  };

  it('prints a line every tenth of the way when stderr is not a terminal', () => {
    const text = run(false);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('downloading org/m: 1 file, 5.0 MB');
    expect(lines.slice(1, -1)).toHaveLength(10);
    expect(lines[1]).toBe('org/m: 10% (500.0 kB/5.0 MB  2.0 MB/s  ETA 2.3s)');
    expect(lines.at(-2)).toBe('org/m: 100% (5.0 MB/5.0 MB  2.0 MB/s  ETA 0.0s)');
    expect(lines.at(-1)).toBe('org/m: 5.0 MB fetched in 2.5s (2.0 MB/s)');
    expect(text).not.toMatch(/\r|\x1b/);
  });

  it('redraws one bar with bytes, rate and ETA on a terminal', () => {
    const text = run(true);
    const frames = text.split('\r').filter((f) => f.startsWith('org/m '));
    expect(frames.length).toBeGreaterThan(10);
    expect(frames.length).toBeLessThan(51); // throttled
    expect(frames).toContain('org/m  52% [############............] 2.6 MB/5.0 MB  2.0 MB/s  ETA 1.2s\x1b[K');
    expect(text.endsWith('\r\x1b[Korg/m: 5.0 MB fetched in 2.5s (2.0 MB/s)\n')).toBe(true);
  });
});

describe('scratchgpt CLI against the fake Hub', () => {
  async function cli(env: Record<string, string>, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(HF_|HUGGING_FACE_|TRANSFORMERS_OFFLINE)/.test(k)));
    try {
      const { stdout, stderr } = await execFileP('node', [BIN, ...args], { env: { ...base, ...env } });
      return { stdout, stderr, code: 0 };
    } catch (e) {
      const err = e as { stdout: string; stderr: string; code: number };
      return { stdout: err.stdout, stderr: err.stderr, code: err.code };
    }
  }

  it('generate --model ORG/NAME downloads once with progress, then runs from the cache with no request', async () => {
    const home = path.join(root, 'hf-home');
    const env = { HF_ENDPOINT: hub.url, HF_HOME: home };
    const mark = hub.requests.length;
    const first = await cli(env, 'generate', '--model', 'test/tiny', '--prompt', 'hi', '--max-tokens', '3', '--seed', '1');
    expect(first.stderr).toMatch(/^downloading test\/tiny: 1 file, 3\.2 MB\n/);
    expect(first.stderr).toMatch(/^test\/tiny: 100% \(3\.2 MB\/3\.2 MB .* ETA 0\.0s\)$/m);
    expect(first.stderr).toMatch(/^test\/tiny: 3\.2 MB fetched in /m);
    expect(first.code).toBe(0);
    expect(first.stdout.length).toBeGreaterThan(1);
    expect(hub.requests.length).toBeGreaterThan(mark);
    const snapshot = cachedSnapshotDir('test/tiny', undefined, path.join(home, 'hub'));
    expect(snapshot).toBe(path.join(home, 'hub', 'models--test--tiny', 'snapshots', tinyMain));

    const after = hub.requests.length;
    const second = await cli(env, 'generate', '--model', 'test/tiny', '--prompt', 'hi', '--max-tokens', '3', '--seed', '1');
    expect(second).toEqual({ ...first, stderr: '' });
    const offline = await cli({ HF_ENDPOINT: DEAD, HF_HOME: home, HF_HUB_OFFLINE: '1' }, 'generate', '--model', 'test/tiny', '--prompt', 'hi', '--max-tokens', '3', '--seed', '1');
    expect(offline).toEqual(second);
    expect(hub.requests.length).toBe(after);

    // download prints the snapshot folder (stdout) after checking with the Hub
    const dl = await cli(env, 'download', 'test/tiny');
    expect(dl.code).toBe(0);
    expect(dl.stdout).toBe(`${snapshot}\n`);
    expect(hub.requests.length).toBeGreaterThan(after);
  });

  it('errors are one line on stderr and exit 1', async () => {
    const home = path.join(root, 'hf-home-errors');
    for (const [env, args, pattern] of [
      [{ HF_ENDPOINT: hub.url, HF_HOME: home }, ['generate', '--model', 'test/nope', '--prompt', 'hi'], /^scratchgpt generate: 'test\/nope' is neither a folder here nor a model on /],
      [{ HF_ENDPOINT: hub.url, HF_HOME: home, HF_HUB_OFFLINE: '1' }, ['generate', '--model', 'test/tiny', '--prompt', 'hi'], /^scratchgpt generate: HF_HUB_OFFLINE is set and test\/tiny is not in the Hugging Face cache /],
      [{ HF_ENDPOINT: DEAD, HF_HOME: home }, ['download', 'test/tiny'], /^scratchgpt download: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/],
      [{ HF_ENDPOINT: hub.url, HF_HOME: home }, ['download', 'test/gated'], /^scratchgpt download: test\/gated is gated: accept its license at /],
      [{ HF_ENDPOINT: hub.url, HF_HOME: home, HF_TOKEN: 'hf_granted' }, ['download', 'test/pickle'], /^scratchgpt download: test\/pickle has only pytorch_model\.bin/],
    ] as const) {
      const r = await cli(env, ...args);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});
