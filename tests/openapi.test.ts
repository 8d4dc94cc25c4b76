// /openapi.json (OpenAPI 3.1, generated from the routes' zod schemas), /docs (Swagger UI from
// node_modules, looked at in Chromium), the access log, and which of them need an API key. The
// document must list exactly the app's routes: a route added without a doc() note fails here.
import { Validator } from '@seriousme/openapi-schema-validator';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp, type AppOptions } from '../src/server/app.js';
import type { AppEnv } from '../src/server/env.js';
import { UNDOCUMENTED } from '../src/server/openapi.js';
import { collectProblems, launchBrowser, skipWithoutChromium, type TestBrowser } from './helpers/browser.js';
import { tinyChatServer, type TinyChatServer } from './helpers/tiny-chat-server.js';

interface Operation {
  summary?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: { in: string; name: string; required?: boolean; schema?: Record<string, unknown> }[];
  requestBody?: { content: Record<string, { schema: Record<string, any> }> };
  responses: Record<string, { description?: string }>;
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  tags: { name: string }[];
  security: unknown[];
  components: { securitySchemes: Record<string, unknown> };
  paths: Record<string, Record<string, Operation>>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let tiny: TinyChatServer;
let doc: Document;
const served: string[] = []; // the test server's access log
const app = (o: Partial<AppOptions> = {}): Hono<AppEnv> => createApp({ models: tiny.server.models, metrics: tiny.server.metrics, ...o });

beforeAll(async () => {
  tiny = await tinyChatServer('openapi-test', 64, { accessLog: (line) => served.push(line) });
  const r = await fetch(`${tiny.server.url}/openapi.json`);
  expect(r.status).toBe(200);
  doc = (await r.json()) as Document;
});

afterAll(async () => {
  await tiny?.close();
});

/** 'GET /v1/models/{id}' for every operation of the document. */
function documented(d: Document): string[] {
  return Object.entries(d.paths).flatMap(([p, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${p}`));
}

const operation = (method: string, p: string): Operation => doc.paths[p]![method]!;

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: 'ScratchGPT', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>); // a copy: the validator keeps it and marks it
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it("lists exactly the app's API routes, each with a summary and a known tag", () => {
    // Hono's paths ('/v1/models/:id{.+}') as OpenAPI writes them ('/v1/models/{id}').
    const routes = app()
      .routes.filter((r) => r.method !== 'ALL' && !UNDOCUMENTED.some((re) => re.test(r.path)))
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')}`);
    expect(new Set(documented(doc))).toEqual(new Set(routes));
    expect(documented(doc)).toContain('GET /v1/models/{id}');
    expect(documented(doc)).toContain('GET /health');
    expect(documented(doc)).toContain('POST /tokenize');
    const tags = new Set(doc.tags.map((t) => t.name));
    for (const op of documented(doc)) {
      const [method, p] = op.split(' ') as [string, string];
      const o = operation(method.toLowerCase(), p);
      expect(o.summary, op).toBeTruthy();
      expect(o.tags?.length, op).toBe(1);
      expect(tags.has(o.tags![0]!), op).toBe(true);
    }
    expect(Object.keys(doc.paths).filter((p) => UNDOCUMENTED.some((re) => re.test(p)))).toEqual([]);
  });

  it('describes bodies, parameters and auth from the schemas the routes validate with', () => {
    const chat = operation('post', '/v1/chat/completions').requestBody!.content['application/json']!.schema;
    expect(chat.type).toBe('object');
    expect(chat.required).toEqual(expect.arrayContaining(['model', 'messages']));
    expect(chat.additionalProperties).toBe(false); // strictObject: unknown fields are 400s
    expect(chat.properties.messages).toMatchObject({ type: 'array', minItems: 1 });
    expect(operation('post', '/v1/completions').requestBody!.content['application/json']!.schema.required).toEqual(expect.arrayContaining(['model', 'prompt']));
    expect(operation('post', '/v1/chat/completions').responses['400']).toBeDefined(); // validated: the 400 is documented

    const upload = operation('post', '/v1/files').requestBody!.content['multipart/form-data']!.schema;
    expect(upload.required).toEqual(['file', 'purpose']);
    expect(upload.properties.file).toMatchObject({ type: 'string', format: 'binary' });

    const list = operation('get', '/v1/files').parameters!;
    expect(list.find((p) => p.name === 'order')).toMatchObject({ in: 'query', schema: { enum: ['asc', 'desc'] } });
    expect(list.find((p) => p.name === 'limit')).toMatchObject({ in: 'query', schema: { type: 'integer' } });

    for (const [method, p] of [['get', '/v1/models/{id}'], ['delete', '/v1/models/{id}'], ['get', '/v1/fine_tuning/jobs/{id}/events']] as const) {
      expect(operation(method, p).parameters).toContainEqual(expect.objectContaining({ in: 'path', name: 'id', required: true }));
    }
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(operation('get', '/health').security).toEqual([]); // open, keys or not
  });
});

describe('/docs', () => {
  it('serves the page and the Swagger UI files from node_modules, with their types and caching', async () => {
    const page = await fetch(`${tiny.server.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<title>ScratchGPT API</title>');
    expect(html).toContain('href="/"');
    expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere
    for (const [file, type] of [['swagger-ui.css', 'text/css'], ['swagger-ui-bundle.js', 'text/javascript'], ['favicon-32x32.png', 'image/png']]) {
      const r = await fetch(`${tiny.server.url}/docs/${file}?v=1`);
      expect(r.status, file).toBe(200);
      expect(r.headers.get('content-type'), file).toContain(type);
      expect(r.headers.get('cache-control'), file).toContain('immutable');
      await r.arrayBuffer();
    }
    const init = await (await fetch(`${tiny.server.url}/docs/init.js`)).text();
    expect(init).toContain("url: '/openapi.json'");
    expect(init).toContain('validatorUrl: null');
    // Only the listed files: not the rest of swagger-ui-dist, nor anything else on disk.
    for (const p of ['/docs/package.json', '/docs/index.html', '/docs/..%2F..%2Fpackage.json']) expect((await fetch(`${tiny.server.url}${p}`)).status, p).toBe(404);
  });

  describe.skipIf(skipWithoutChromium('tests/openapi.test.ts'))('in Chromium', () => {
    let browser: TestBrowser;
    beforeAll(async () => {
      browser = await launchBrowser();
    });
    afterAll(async () => {
      await browser?.close();
    });

    it('renders every operation of the document, with no errors and no request off this machine', async () => {
      const page = await browser.newPage();
      const problems = collectProblems(page);
      await page.goto(`${tiny.server.url}/docs`);
      expect(await page.title()).toBe('ScratchGPT API');
      const ops = documented(doc);
      const blocks = page.locator('.opblock');
      await expect.poll(() => blocks.count()).toBe(ops.length);
      const shown: string[] = [];
      for (const b of await blocks.all()) {
        const method = (await b.locator('.opblock-summary-method').innerText()).trim();
        const p = await b.locator('.opblock-summary-path').getAttribute('data-path');
        shown.push(`${method} ${p}`);
      }
      expect(new Set(shown)).toEqual(new Set(ops));
      await expect.poll(() => page.locator('.info .title').innerText()).toContain('ScratchGPT');
      expect(await page.locator('.btn.authorize').count()).toBe(1); // the bearer scheme
      await browser.screenshot(page, 'docs');
      expect(problems).toEqual([]);
    });
  });
});

describe('access log', () => {
  it('writes one line per request: method, path without the query, status, duration, request id', async () => {
    const lines: string[] = [];
    const logged = app({ accessLog: (line) => lines.push(line) });
    const r = await logged.request('/v1/models?api_key=secret');
    expect(r.status).toBe(200);
    const id = r.headers.get('x-request-id');
    expect(id).toBeTruthy();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^GET \/v1\/models 200 \d+\.\dms req=\S+$/);
    expect(lines[0]!.endsWith(` req=${id}`)).toBe(true);
    expect(lines[0]).not.toContain('secret');

    lines.length = 0;
    const missing = await logged.request('/v1/models/nope', { method: 'DELETE' });
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^DELETE /v1/models/nope 404 \\d+\\.\\dms req=${missing.headers.get('x-request-id')}$`))]);

    lines.length = 0;
    await logged.request('/v1/x%0AGET%20/forged%20200'); // a decoded newline must not start a second line
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^GET \/v1\/x%0AGET%20\/forged%20200 404 /);
  });

  it('goes to stderr when on, and nowhere when off (the default of createApp and startServer)', async () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await app().request('/health');
      expect(write).not.toHaveBeenCalled();
      await app({ accessLog: true }).request('/health');
      expect(write).toHaveBeenCalledTimes(1);
      expect(String(write.mock.calls[0]![0])).toMatch(/^GET \/health 200 \d+\.\dms req=\S+\n$/);
    } finally {
      write.mockRestore();
    }
  });

  it('is passed through by startServer', () => {
    expect(served.some((l) => /^GET \/openapi\.json 200 /.test(l))).toBe(true);
  });
});

describe('with API keys', () => {
  it('answers the document and the docs without a key, and the API only with one', async () => {
    const keyed = app({ apiKeys: ['sk-test'] });
    for (const p of ['/openapi.json', '/docs', '/docs/init.js', '/docs/swagger-ui.css', '/health']) expect((await keyed.request(p)).status, p).toBe(200);
    expect((await keyed.request('/v1/models')).status).toBe(401);
    expect((await keyed.request('/metrics')).status).toBe(401);
    expect((await keyed.request('/v1/models', { headers: { Authorization: 'Bearer sk-test' } })).status).toBe(200);
  });
});
