// The data folder when something is wrong with it: an empty, missing or corrupt store stops the
// start with a clear error and deletes nothing; files the store does not name are kept; a
// read-only folder says so; a folder removed while the server runs takes /health and the
// storage routes to 503 instead of losing writes silently.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { startServer, type RunningServer } from '../src/server/server.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 64, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const root = path.resolve(import.meta.dirname, '..');

let tmp: string;
let modelDir: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'data-dir-test-'));
  modelDir = path.join(tmp, 'tiny');
  saveCheckpoint(modelDir, cfg, randomInit(cfg, 1));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const start = (dataDir: string) => startServer({ modelDirs: [modelDir], port: 0, slots: 1, queue: 1, threads: 1, dataDir });

async function upload(server: RunningServer, name: string, content: string): Promise<Response> {
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', new Blob([content]), name);
  return fetch(`${server.url}/v1/files`, { method: 'POST', body: form });
}

const DATASET = '{"prompt": "a", "completion": "b"}\n';

/** A data folder holding one uploaded file; returns the folder and the file's id. */
async function folderWithFile(name: string): Promise<{ dataDir: string; id: string }> {
  const dataDir = path.join(tmp, name);
  const server = await start(dataDir);
  try {
    const res = await upload(server, 'd.jsonl', DATASET);
    expect(res.status).toBe(200);
    return { dataDir, id: ((await res.json()) as { id: string }).id };
  } finally {
    await server.shutdown();
  }
}

describe('a store that cannot be trusted stops the start, and nothing is deleted', () => {
  it('scratchgpt.db truncated to 0 bytes', async () => {
    const { dataDir, id } = await folderWithFile('truncated');
    fs.rmSync(path.join(dataDir, 'scratchgpt.db-wal'), { force: true });
    fs.truncateSync(path.join(dataDir, 'scratchgpt.db'), 0);
    await expect(start(dataDir)).rejects.toThrow(/scratchgpt\.db is empty \(0 bytes\): refusing to start/);
    expect(fs.readFileSync(path.join(dataDir, 'files', id), 'utf8')).toBe(DATASET);
  });

  it('scratchgpt.db missing while files are there', async () => {
    const { dataDir, id } = await folderWithFile('missing');
    for (const f of fs.readdirSync(dataDir)) if (f.startsWith('scratchgpt.db')) fs.rmSync(path.join(dataDir, f));
    await expect(start(dataDir)).rejects.toThrow(/scratchgpt\.db is missing, but the data folder holds files/);
    expect(fs.existsSync(path.join(dataDir, 'files', id))).toBe(true);
  });

  it('scratchgpt.db that is not a database', async () => {
    const { dataDir, id } = await folderWithFile('garbage');
    fs.rmSync(path.join(dataDir, 'scratchgpt.db-wal'), { force: true });
    fs.writeFileSync(path.join(dataDir, 'scratchgpt.db'), 'this is not an SQLite file, but it is long enough to have a header'.repeat(20));
    await expect(start(dataDir)).rejects.toThrow(/not a readable SQLite database/);
    expect(fs.existsSync(path.join(dataDir, 'files', id))).toBe(true);
  });
});

describe('the startup sweep removes only what it has proof of', () => {
  it('keeps an upload no row names, removes temp files and uploads whose row says unfinished', async () => {
    const { dataDir, id } = await folderWithFile('sweep');
    const stray = 'file-AAAAAAAAAAAAAAAAAAAAAAAA';
    fs.writeFileSync(path.join(dataDir, 'files', stray), DATASET);
    fs.writeFileSync(path.join(dataDir, 'files', `${id}.tmp-0123abcd`), 'half');
    const server = await start(dataDir);
    try {
      expect(fs.readdirSync(path.join(dataDir, 'files')).sort()).toEqual([stray, id].sort());
      const listed = (await (await fetch(`${server.url}/v1/files`)).json()) as { data: { id: string }[] };
      expect(listed.data.map((f) => f.id)).toEqual([id]);
    } finally {
      await server.shutdown();
    }
  });
});

describe('a data folder removed while the server runs', () => {
  it('takes /health and the storage routes to 503 with the reason', async () => {
    const dataDir = path.join(tmp, 'removed');
    const server = await start(dataDir);
    try {
      await server.ready;
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      fs.rmSync(dataDir, { recursive: true, force: true });
      const health = await fetch(`${server.url}/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'failed', storage: expect.stringMatching(/was removed or replaced/) });
      const res = await upload(server, 'd.jsonl', DATASET);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('storage_unavailable');
      // completions do not need the folder
      const completion = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'x', max_tokens: 1 }) });
      expect(completion.status).toBe(200);
    } finally {
      await server.shutdown();
    }
  });
});

describe('a read-only data folder', () => {
  it('stops the start saying the folder is not writable', async () => {
    const dataDir = path.join(tmp, 'read-only');
    fs.mkdirSync(dataDir);
    if (process.getuid?.() !== 0) {
      fs.chmodSync(dataDir, 0o555);
      await expect(start(dataDir)).rejects.toThrow(/is not writable/);
      return;
    }
    // root writes through permissions: the server gets a read-only mount there instead, in a
    // mount namespace of its own (unshare), as a read-only volume would be
    const script = 'mount -t tmpfs -o ro none "$0" || exit 99; exec "$1" bin/scratchgpt.js serve --model "$2" --data-dir "$0" --port 0 --threads 1';
    const child = spawn('unshare', ['-m', 'sh', '-c', script, dataDir, process.execPath, modelDir], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r).once('error', () => r(99)));
    if (code === 99) {
      console.log(`skipping the read-only data folder check: no read-only mount could be made here (${stderr.trim() || 'no unshare'})`);
      return;
    }
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/cannot use the data folder .*read-only: .*is not writable \(EROFS/);
  });
});
