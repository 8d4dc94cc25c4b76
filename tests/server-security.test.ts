// Issue 18, end to end on 127.0.0.1: what a web page can make a keyless local server do (DNS
// rebinding, cross-site uploads), download names that are not ASCII, Node's raw parser errors,
// over-limit bodies that got a reset instead of a 413, and an API key list without a key.
// Tiny random models (GPT-2 vocabulary, 2 layers of width 32). Raw `http`/`net` where a test needs
// a Host header or bytes that fetch would not send.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Hono } from 'hono';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { onError } from '../src/server/errors.js';
import { hostGuard } from '../src/server/middleware/host-guard.js';
import { startServer, type RunningServer } from '../src/server/server.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const root = path.resolve(import.meta.dirname, '..');
const MAX_FILE_BYTES = 64 * 1024;

let tmp: string;
let tinyDir: string;
let local: RunningServer; // the defaults: no keys, 127.0.0.1, 1 MiB body limit
let lan: RunningServer; // --allowed-hosts lan.example,.corp.example --cors-origins http://app.example:3000
let keyed: RunningServer; // SCRATCHGPT_API_KEYS=sk-test

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'server-security-'));
  tinyDir = path.join(tmp, 'tiny');
  saveCheckpoint(tinyDir, cfg, randomInit(cfg, 3));
  const common = { modelDirs: [tinyDir], port: 0, slots: 2, queue: 8, threads: 1, finetuneThreads: 1, maxFileBytes: MAX_FILE_BYTES };
  [local, lan, keyed] = await Promise.all([
    startServer({ ...common, dataDir: path.join(tmp, 'local') }),
    startServer({ ...common, dataDir: path.join(tmp, 'lan'), allowedHosts: ['lan.example', '.corp.example'], corsOrigins: ['http://app.example:3000'] }),
    startServer({ ...common, apiKeys: ['sk-test'] }),
  ]);
  await Promise.all([local.ready, lan.ready, keyed.ready]);
});

afterAll(async () => {
  await Promise.all([local?.shutdown(), lan?.shutdown(), keyed?.shutdown()]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json: () => ErrorBody;
}

/**
 * One request over `http`, which (unlike fetch) sends the Host header it is given. The body goes
 * with a Content-Length, or `chunked` in 64 KiB writes.
 */
function request(server: RunningServer, pathname: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer | string; chunked?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path: pathname, method: o.method ?? 'GET', headers: o.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString()) as ErrorBody });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (!o.chunked || o.body === undefined) return void req.end(o.body);
    const body = Buffer.from(o.body);
    for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
    req.end();
  });
}

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const dataset = jsonl([{ instruction: 'Say hi.', input: '', output: 'Hi.' }]);

/** A multipart upload body, as a browser's FormData would send it. */
async function multipart(name: string, content: string): Promise<{ body: Buffer; type: string }> {
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', new Blob([content]), name);
  const r = new Response(form);
  return { body: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type')! };
}

const clientFor = (baseURL: string, apiKey = 'unused') => new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const fileIds = async (server: RunningServer) => (await clientFor(`${server.url}/v1`).files.list()).data.map((f) => f.id).sort();

function expectError(r: Reply, status: number, code: string) {
  expect(r.status).toBe(status);
  const body = r.json();
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error.code).toBe(code);
  return body.error;
}

// ───────────────────────────── Host and Origin ─────────────────────────────

describe('Host and Origin without API keys', () => {
  it('a DNS-rebinding request (a foreign Host) is refused with 403 host_not_allowed', async () => {
    const host = `attacker.example:${local.port}`;
    const r = await request(local, '/v1/files', { headers: { host, origin: `http://${host}` } });
    const error = expectError(r, 403, 'host_not_allowed');
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toContain('--allowed-hosts attacker.example');

    // the same page uploading through the rebound name: refused, nothing stored
    const before = await fileIds(local);
    const { body, type } = await multipart('rebound.jsonl', dataset);
    expectError(await request(local, '/v1/files', { method: 'POST', headers: { host, origin: `http://${host}`, 'content-type': type }, body }), 403, 'host_not_allowed');
    expect(await fileIds(local)).toEqual(before);
    // /health stays open to any Host (orchestrators probe it by name); nothing else does
    expect((await request(local, '/health', { headers: { host: `pod-7.cluster.internal:${local.port}` } })).status).toBe(200);
    expectError(await request(local, '/v1/models', { headers: { host: `pod-7.cluster.internal:${local.port}` } }), 403, 'host_not_allowed');
    // an IP address cannot be rebound (a page served from it is its own origin): answered
    expect((await request(local, '/v1/models', { headers: { host: `10.1.2.3:${local.port}` } })).status).toBe(200);
  });

  it('a cross-site multipart upload (a foreign Origin) is refused with 403 origin_not_allowed and stores nothing', async () => {
    const before = await fileIds(local);
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', new Blob([dataset]), 'evil.jsonl');
    const res = await fetch(`${local.url}/v1/files`, { method: 'POST', body: form, headers: { origin: 'http://evil.example' } });
    expect(res.status).toBe(403);
    const body = (await res.json()) as ErrorBody;
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(body.error.code).toBe('origin_not_allowed');
    expect(body.error.message).toContain('--cors-origins http://evil.example');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    // another local origin (a dev server on another port) is cross-origin too
    const { body: upload, type } = await multipart('other-port.jsonl', dataset);
    const other = await request(local, '/v1/files', { method: 'POST', headers: { origin: 'http://127.0.0.1:1', 'content-type': type }, body: upload });
    expectError(other, 403, 'origin_not_allowed');
    expect(await fileIds(local)).toEqual(before);
    // a cross-site GET is answered (the page cannot read it: no CORS headers)
    const get = await request(local, '/v1/models', { headers: { origin: 'http://evil.example' } });
    expect(get.status).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('the openai client works against http://127.0.0.1:PORT and http://localhost:PORT', async () => {
    const byAddress = clientFor(`http://127.0.0.1:${local.port}/v1`);
    const byName = clientFor(`http://localhost:${local.port}/v1`);
    expect((await byAddress.models.list()).data.map((m) => m.id)).toEqual(['tiny']);
    expect((await byName.models.list()).data.map((m) => m.id)).toEqual(['tiny']);
    const a = await byAddress.files.create({ file: await toFile(Buffer.from(dataset), 'by-address.jsonl'), purpose: 'fine-tune' });
    const b = await byName.files.create({ file: await toFile(Buffer.from(dataset), 'by-name.jsonl'), purpose: 'fine-tune' });
    expect((await byName.files.list()).data.map((f) => f.id)).toEqual(expect.arrayContaining([a.id, b.id]));
    const completion = await byName.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 2 });
    expect(completion.choices[0]!.text.length).toBeGreaterThan(0);
  });

  it('a curl-like request (no Origin) and a same-origin POST are answered', async () => {
    const json = JSON.stringify({ model: 'tiny', prompt: 'Hi', max_tokens: 1 });
    const curl = await request(local, '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'curl/8.5.0' }, body: json });
    expect(curl.status).toBe(200);
    for (const host of [`127.0.0.1:${local.port}`, `localhost:${local.port}`]) {
      const r = await request(local, '/v1/completions', { method: 'POST', headers: { host, origin: `http://${host}`, 'content-type': 'application/json' }, body: json });
      expect([host, r.status]).toEqual([host, 200]);
    }
    // the page's own upload form, served from the same origin
    const { body, type } = await multipart('same-origin.jsonl', dataset);
    const upload = await request(local, '/v1/files', { method: 'POST', headers: { host: `localhost:${local.port}`, origin: `http://localhost:${local.port}`, 'content-type': type }, body });
    expect(upload.status).toBe(200);
  });

  it('loopback Hosts are accepted: [::1], *.localhost, 127.x.x.x, a trailing dot', async () => {
    for (const host of [`[::1]:${local.port}`, `app.localhost:${local.port}`, `127.1.2.3:${local.port}`, `LOCALHOST.:${local.port}`, 'localhost']) {
      const r = await request(local, '/v1/models', { headers: { host } });
      expect([host, r.status]).toEqual([host, 200]);
    }
    const json = JSON.stringify({ model: 'tiny', prompt: 'Hi', max_tokens: 1 });
    const v6 = `[::1]:${local.port}`;
    const r = await request(local, '/v1/completions', { method: 'POST', headers: { host: v6, origin: `http://${v6}`, 'content-type': 'application/json' }, body: json });
    expect(r.status).toBe(200);
  });

  it('--allowed-hosts and --cors-origins open it up, with CORS preflights answered', async () => {
    for (const host of [`lan.example:${lan.port}`, `LAN.example:${lan.port}`, `corp.example:${lan.port}`, `gpu.corp.example:${lan.port}`]) {
      expect([host, (await request(lan, '/v1/models', { headers: { host } })).status]).toEqual([host, 200]);
    }
    expectError(await request(lan, '/v1/models', { headers: { host: `evilcorp.example:${lan.port}` } }), 403, 'host_not_allowed');

    // a page on http://app.example:3000 uploads cross-origin: preflight, then the upload
    const app = 'http://app.example:3000';
    const preflight = await request(lan, '/v1/files', {
      method: 'OPTIONS',
      headers: { host: `lan.example:${lan.port}`, origin: app, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(app);
    expect(preflight.headers['access-control-allow-methods']).toContain('POST');
    expect(preflight.headers['access-control-allow-headers']).toBe('authorization,content-type');
    const { body, type } = await multipart('from-app.jsonl', dataset);
    const upload = await request(lan, '/v1/files', { method: 'POST', headers: { host: `lan.example:${lan.port}`, origin: app, 'content-type': type }, body });
    expect(upload.status).toBe(200);
    expect(upload.headers['access-control-allow-origin']).toBe(app);
    expect(upload.headers['access-control-expose-headers']).toContain('x-request-id');

    // other origins: no CORS headers on their preflight, 403 on their POST
    const evil = await request(lan, '/v1/files', { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    const { body: evilBody, type: evilType } = await multipart('evil.jsonl', dataset);
    expectError(await request(lan, '/v1/files', { method: 'POST', headers: { origin: 'http://evil.example', 'content-type': evilType }, body: evilBody }), 403, 'origin_not_allowed');
    expect((await fileIds(lan)).length).toBe(1);
  });

  it("'*' allows any Host and any Origin; the bound address is allowed; bad list entries are errors", async () => {
    const app = (o: Parameters<typeof hostGuard>[0]) =>
      new Hono().use(hostGuard(o)).all('*', (c) => c.text('ok')).onError(onError);
    const post = (a: Hono, headers: Record<string, string>) => a.request('http://x/v1/files', { method: 'POST', headers });
    const open = app({ keys: false, allowedHosts: ['*'], corsOrigins: ['*'] });
    expect((await post(open, { host: 'attacker.example', origin: 'http://evil.example' })).status).toBe(200);

    const bound = app({ keys: false, boundHost: 'box.lan' });
    expect((await post(bound, { host: 'box.lan:8080' })).status).toBe(200);
    expect((await post(bound, { host: 'other.lan:8080' })).status).toBe(403);
    expect((await post(bound, { host: '192.0.2.8:8080' })).status).toBe(200); // IP addresses: not rebindable
    expect((await post(bound, { host: '[fd00::2]:8080' })).status).toBe(200);
    expect((await post(bound, { host: 'attacker@127.0.0.1' })).status).toBe(403); // not host[:port]
    const v6 = app({ keys: false, allowedHosts: ['fd00::1'] });
    expect((await post(v6, { host: '[fd00:0::1]:80' })).status).toBe(200);
    // an explicitly listed 'null' origin (sandboxed iframes, file://) is allowed; unlisted it is not
    expect((await post(app({ keys: false }), { host: 'localhost', origin: 'null' })).status).toBe(403);
    expect((await post(app({ keys: false, corsOrigins: ['null'] }), { host: 'localhost', origin: 'null' })).status).toBe(200);

    expect(() => hostGuard({ keys: false, corsOrigins: ['localhost:3000'] })).toThrow(/--cors-origins: 'localhost:3000' is not an origin/);
    expect(() => hostGuard({ keys: false, allowedHosts: ['a/b'] })).toThrow(/--allowed-hosts: 'a\/b' is not a host name/);
    await expect(startServer({ modelDirs: [tinyDir], port: 0, slots: 1, queue: 1, corsOrigins: ['app.example'] })).rejects.toThrow(/--cors-origins/);
  });
});

describe('Host and Origin with API keys', () => {
  it('any Host is answered (the key protects), but a foreign Origin still may not POST', async () => {
    const auth = { authorization: 'Bearer sk-test' };
    expect((await request(keyed, '/v1/models', { headers: { ...auth, host: `gpu-box.lan:${keyed.port}` } })).status).toBe(200);
    expectError(await request(keyed, '/v1/models', { headers: { host: `gpu-box.lan:${keyed.port}` } }), 401, 'missing_api_key');
    const json = JSON.stringify({ model: 'tiny', prompt: 'Hi', max_tokens: 1 });
    const headers = { ...auth, 'content-type': 'application/json', host: `gpu-box.lan:${keyed.port}` };
    expect((await request(keyed, '/v1/completions', { method: 'POST', headers, body: json })).status).toBe(200);
    expectError(await request(keyed, '/v1/completions', { method: 'POST', headers: { ...headers, origin: 'http://evil.example' }, body: json }), 403, 'origin_not_allowed');
  });
});

// ───────────────────────────── download names ─────────────────────────────

describe('file names in Content-Disposition', () => {
  it('non-ASCII and bidi names download with 200, the bytes as uploaded, and the name in filename*', async () => {
    const client = clientFor(`${local.url}/v1`);
    for (const name of ['训练数据.jsonl', '📚.jsonl', 'résumé\u202Elnosj.jsonl', 'naïve 100%.jsonl']) {
      const content = jsonl([{ instruction: `Name: ${name}`, input: '', output: 'ok' }]);
      const file = await client.files.create({ file: await toFile(Buffer.from(content), name), purpose: 'fine-tune' });
      expect(file.filename).toBe(name.replace('\u202E', '')); // bidi controls are not stored
      const res = await fetch(`${local.url}/v1/files/${file.id}/content`);
      expect([name, res.status]).toEqual([name, 200]);
      expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(content))).toBe(true);
      const header = res.headers.get('content-disposition')!;
      expect(header).toMatch(/^[\x20-\x7e]+$/);
      // an ASCII fallback, and the exact name in RFC 8187's attr-chars
      const m = /^attachment; filename="([\x20-\x21\x23-\x24\x26-\x5b\x5d-\x7e]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)$/.exec(header);
      expect(m, header).not.toBeNull();
      expect(decodeURIComponent(m![2]!)).toBe(file.filename);
    }
    // a plain name keeps the plain form
    const plain = await client.files.create({ file: await toFile(Buffer.from(dataset), 'train.jsonl'), purpose: 'fine-tune' });
    expect((await fetch(`${local.url}/v1/files/${plain.id}/content`)).headers.get('content-disposition')).toBe('attachment; filename="train.jsonl"');
  });
});

// ───────────────────────────── raw HTTP errors ─────────────────────────────

/** Writes `data` on a fresh connection, half-closes it, and returns all the server sent before closing (and any socket error). */
function exchange(port: number, data: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.end(data));
    const chunks: Buffer[] = [];
    let error = '';
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (e: NodeJS.ErrnoException) => (error = ` <${e.code}>`));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString() + error));
  });
}

/** Status, headers and JSON body of a raw response. */
function parseRaw(raw: string): { status: number; headers: Record<string, string>; body: ErrorBody } {
  const [head, ...rest] = raw.split('\r\n\r\n');
  const [statusLine, ...lines] = head!.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(rest.join('\r\n\r\n')) as ErrorBody };
}

describe('raw HTTP errors are answered in the OpenAI shape', () => {
  const post = (extra: string, body = '') => `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}\r\n${body}`;
  const check = (raw: string, status: number, code: string) => {
    const r = parseRaw(raw);
    expect(r.status, raw).toBe(status);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers.connection).toBe('close');
    expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(r.body.error.code).toBe(code);
    return r.body.error;
  };

  it('an invalid Content-Length is a 400', async () => {
    check(await exchange(local.port, post('Content-Length: abc\r\n', '{}')), 400, 'invalid_content_length');
  });

  it('Content-Length together with Transfer-Encoding: chunked is a 400', async () => {
    const error = check(await exchange(local.port, post('Content-Length: 2\r\nTransfer-Encoding: chunked\r\n', '2\r\n{}\r\n0\r\n\r\n')), 400, 'invalid_transfer_encoding');
    expect(error.message).toMatch(/Transfer-Encoding/);
  });

  it('a body longer than its Content-Length: the extra bytes are a malformed request, a 400', async () => {
    const error = check(await exchange(local.port, post('Content-Length: 2\r\n', '{}{"model": "tiny"}')), 400, 'malformed_request');
    expect(error.message).toMatch(/^Malformed HTTP request: /);
  });

  it('headers over 16 KiB are a 431', async () => {
    check(await exchange(local.port, post(`X-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n`, '{}')), 431, 'request_header_fields_too_large');
  });

  it('a body shorter than its Content-Length, then a half-close, is a 400', async () => {
    check(await exchange(local.port, post('Content-Length: 100\r\n', '{"model": "tiny"}')), 400, 'malformed_request');
  });

  it('a Host that is not host[:port] is a 400 (from the request listener, not the parser)', async () => {
    const r = await exchange(local.port, 'GET /v1/models HTTP/1.1\r\nHost: attacker@127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(parseRaw(r).status).toBe(400);
    expect(parseRaw(r).body.error.code).toBe('malformed_request');
  });
});

// ───────────────────────────── over-limit bodies ─────────────────────────────

describe('over-limit bodies get their 413, never a reset', () => {
  const big = Buffer.from(JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(2 << 20) })); // 2 MiB, the limit is 1 MiB

  const post = async (chunked: boolean) => {
    const r = await request(local, '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big, chunked });
    return { status: r.status, body: r.body.toString() };
  };

  const expect413 = (status: number, text: string) => {
    expect(status).toBe(413);
    const body = JSON.parse(text) as ErrorBody;
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(body.error.code).toBe('request_too_large');
  };

  it('20 with Content-Length (fetch) and 20 chunked (http.request), in a row', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${local.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
      expect413(res.status, await res.text());
    }
    for (let i = 0; i < 20; i++) {
      const r = await post(true);
      expect413(r.status, r.body);
    }
    for (let i = 0; i < 5; i++) {
      const r = await post(false); // http.request with Content-Length
      expect413(r.status, r.body);
    }
    // the connections stay usable: a normal request afterwards
    expect((await fetch(`${local.url}/v1/models`)).status).toBe(200);
  });

  it('a raw socket that writes the whole body, then reads, gets the 413', async () => {
    for (let i = 0; i < 3; i++) {
      const head = `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n`;
      const raw = await exchange(local.port, Buffer.concat([Buffer.from(head), big]));
      expect(raw).not.toMatch(/<ECONNRESET>/);
      const r = parseRaw(raw);
      expect413(r.status, JSON.stringify(r.body));
    }
  });

  it('an upload over --max-file-bytes, chunked or not, gets its 413', async () => {
    const { body, type } = await multipart('big.jsonl', dataset.repeat(Math.ceil((4 * MAX_FILE_BYTES) / dataset.length)));
    for (let i = 0; i < 5; i++) {
      for (const chunked of [false, true]) {
        const r = await request(local, '/v1/files', { method: 'POST', headers: { 'content-type': type }, body, chunked });
        expect413(r.status, r.body.toString());
        expect(r.json().error.message).toMatch(/File too large/);
      }
    }
  });
});

// ───────────────────────────── API keys ─────────────────────────────

describe('SCRATCHGPT_API_KEYS', () => {
  it('set but without a key is an error at start, not an open server', async () => {
    for (const value of [' , ', '']) {
      const proc = spawn(process.execPath, ['bin/scratchgpt.js', 'serve', '--model', tinyDir, '--port', '0', '--data-dir', path.join(tmp, 'cli')], {
        cwd: root,
        env: { ...process.env, SCRATCHGPT_API_KEYS: value },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      // a regression starts listening: stop it then, rather than wait for a timeout
      proc.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (/listening on/.test(log)) proc.kill('SIGKILL');
      });
      expect(await exited).toBe(1);
      expect(log).toMatch(/SCRATCHGPT_API_KEYS is set but contains no key/);
      expect(log).not.toMatch(/listening on/);
    }
  });
});
