// The web console's shell in Chromium: it loads from the server alone (nothing leaves 127.0.0.1),
// pages are reachable by keyboard, the models and files page, the live server figures, the API-key
// prompt, and --no-console. The playground and fine-tuning pages have files of their own.
import fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessibilityViolations, collectProblems, launchBrowser, skipWithoutChromium, type TestBrowser } from './helpers/browser.js';
import { tinyChatServer, type TinyChatServer } from './helpers/tiny-chat-server.js';

const skip = skipWithoutChromium('tests/console.test.ts');
const KEY = 'sk-console-test';

let tiny: TinyChatServer;
let keyed: TinyChatServer;
let browser: TestBrowser;
let dataDir: string;

beforeAll(async () => {
  if (skip) return;
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-test-'));
  [tiny, keyed] = await Promise.all([tinyChatServer('console-test', 64, { dataDir, finetuneThreads: 1 }), tinyChatServer('console-keyed', 64, { apiKeys: [KEY] })]);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([tiny?.close(), keyed?.close()]);
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/** The text of a live figure on the server page. */
const figure = (page: Page, id: string) => page.locator(`[data-figure="${id}"] .value`);

describe.skipIf(skip)('the console', () => {
  it('loads from this server alone, and every page is reachable with the keyboard', async () => {
    // The page holds a key: its scripts may only come from this server (and the tests run under that policy).
    expect((await fetch(`${tiny.server.url}/`)).headers.get('content-security-policy')).toContain("script-src 'self';");
    const page = await browser.newPage();
    const problems = collectProblems(page);
    await page.goto(`${tiny.server.url}/`);
    await expect.poll(() => page.locator('nav a[aria-current="page"]').textContent()).toBe('Playground');
    const paint = await page.evaluate(() => performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint')?.startTime);
    console.log(`console: first contentful paint ${paint?.toFixed(0)} ms`); // measured by bench/console.ts against /docs; logged here for the record
    // Tab from the top of the page to each page link in order, and open it with Enter.
    for (const title of ['Fine-tuning', 'Models & files', 'Server', 'Playground']) {
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      let focused = '';
      for (let i = 0; i < 10 && focused !== title; i++) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate(() => document.activeElement?.textContent ?? '');
      }
      expect(focused).toBe(title);
      await page.keyboard.press('Enter');
      await expect.poll(() => page.locator('nav a[aria-current="page"]').textContent()).toBe(title);
      await expect.poll(() => page.title()).toBe(`${title} · ScratchGPT`);
    }
    expect(problems).toEqual([]);
  });

  it('meets WCAG 2.1 AA on every page, as axe-core checks it (labels, names, contrast, ARIA)', async () => {
    const page = await browser.newPage();
    const problems = collectProblems(page);
    const pages: [string, string][] = [
      ['playground', '[data-pane="A"] h2'],
      ['fine-tuning', 'form'],
      ['models', '[data-model="tiny"]'],
      ['server', '[data-figure="generated"]'],
    ];
    const found: string[] = [];
    for (const [hash, ready] of pages) {
      await page.goto(`${tiny.server.url}/#/${hash}`);
      await page.locator(ready).first().waitFor();
      found.push(...(await accessibilityViolations(page)).map((v) => `${hash}: ${v}`));
    }
    // The chat as it looks after an answer with token probabilities: the token view's colours too.
    await page.goto(`${tiny.server.url}/#/playground`);
    await page.locator('aside [name="logprobs"]').check();
    await page.locator('aside [name="max_tokens"]').fill('8');
    await page.getByLabel('Message', { exact: true }).fill('Hello');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('[data-pane="A"] .usage').textContent()).toContain('finish:');
    await page.locator('.tok').first().focus(); // its tooltip open
    found.push(...(await accessibilityViolations(page)).map((v) => `playground with tokens: ${v}`));
    expect(found).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('lists the served models and the files, and deletes a file', async () => {
    const file = await tiny.client.files.create({ file: new File(['{"instruction": "Say hi.", "input": "", "output": "hi"}\n'], 'hello.jsonl'), purpose: 'fine-tune' });
    const page = await browser.newPage();
    const problems = collectProblems(page);
    await page.goto(`${tiny.server.url}/#/models`);
    await expect.poll(() => page.locator('[data-model="tiny"] td').first().textContent()).toBe('tiny');
    await expect.poll(() => page.locator(`[data-file="${file.id}"]`).count()).toBe(1);
    await browser.screenshot(page, 'models');
    page.once('dialog', (d) => void d.accept()); // the confirm() before deleting
    await page.getByRole('button', { name: 'Delete hello.jsonl' }).click();
    await expect.poll(() => page.locator(`[data-file="${file.id}"]`).count()).toBe(0);
    await expect(tiny.client.files.retrieve(file.id)).rejects.toMatchObject({ status: 404 });
    expect(problems).toEqual([]);
  });

  it("shows the server's live figures from /metrics", async () => {
    const page = await browser.newPage();
    const problems = collectProblems(page);
    await page.goto(`${tiny.server.url}/#/server`);
    await expect.poll(() => page.locator('tr', { hasText: 'tiny' }).locator('td').nth(1).textContent()).toBe('ready');
    const before = Number(await figure(page, 'generated').textContent());
    await tiny.client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 7, ignore_eos: true } as Parameters<typeof tiny.client.completions.create>[0]);
    // The page scrapes every 2 s: wait for a scrape that saw the 7 tokens, then for a plotted interval.
    await expect.poll(() => figure(page, 'generated').textContent().then(Number)).toBeGreaterThanOrEqual(before + 7);
    await expect.poll(() => page.locator('.plot').getAttribute('data-points').then(Number)).toBeGreaterThanOrEqual(2);
    for (const id of ['tokens-per-second', 'ttft', 'itl', 'running', 'queue']) expect(await figure(page, id).textContent()).not.toBe('');
    expect(await figure(page, 'ttft').textContent()).toMatch(/ms$/);
    await browser.screenshot(page, 'server');
    expect(problems).toEqual([]);
  });

  it('asks for the API key once, keeps it for the tab, and asks again in a new tab', async () => {
    const page = await browser.newPage();
    const problems = collectProblems(page);
    await page.goto(`${keyed.server.url}/#/models`);
    const dialog = page.getByRole('dialog', { name: 'API key' });
    await expect.poll(() => dialog.isVisible()).toBe(true);
    expect(await dialog.textContent()).toContain('This server needs an API key.');
    await browser.screenshot(page, 'key-prompt');
    // A wrong key is refused and asked for again.
    await dialog.getByLabel(/^Key/).fill('sk-wrong');
    await dialog.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => dialog.textContent()).toContain('The key was refused');
    await dialog.getByLabel(/^Key/).fill(KEY);
    await dialog.getByRole('button', { name: 'Use key' }).press('Enter');
    await expect.poll(() => page.locator('[data-model="tiny"]').count()).toBe(1);
    expect(await dialog.isVisible()).toBe(false);
    // Kept for this tab: a reload asks nothing.
    await page.reload();
    await expect.poll(() => page.locator('[data-model="tiny"]').count()).toBe(1);
    expect(await dialog.isVisible()).toBe(false);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(1);
    expect(await page.evaluate(() => localStorage.length)).toBe(0); // never kept beyond the tab
    // This server has no data folder: the files table says so.
    await expect.poll(() => page.locator('#files-title + * , #files-title ~ p').first().textContent()).toContain('Fine-tuning is off');
    // Only the 401s that asked for the key went wrong, and the 404s that said fine-tuning is off
    // (Chromium logs every 4xx response on the console).
    const expected = (p: string) => /401/.test(p) || /404.*\/v1\/files|Failed to load resource: .* 404/.test(p);
    expect(problems.filter((p) => !expected(p))).toEqual([]);
    expect(problems.filter((p) => /^HTTP 401/.test(p)).length).toBeGreaterThanOrEqual(2);
    // Another tab asks again.
    const other = await browser.newPage();
    await other.goto(`${keyed.server.url}/#/models`);
    await expect.poll(() => other.getByRole('dialog', { name: 'API key' }).isVisible()).toBe(true);
  });
});

describe.skipIf(skip)('--cors-origins', () => {
  it("lets a page from a listed origin call the API with a key, and Chromium blocks the others", async () => {
    // Another origin: a bare page on another port of 127.0.0.1.
    const site: Server = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    const open = await tinyChatServer('console-cors', 64, { apiKeys: [KEY], corsOrigins: [origin] });
    try {
      const page = await browser.newPage();
      await page.goto(`${origin}/`);
      const call = (url: string) =>
        page.evaluate(
          ([url, key]) =>
            fetch(`${url}/v1/models`, { headers: { Authorization: `Bearer ${key}` } }).then(
              async (r) => `${r.status} ${((await r.json()) as { data: { id: string }[] }).data[0]!.id}`,
              (e: Error) => `blocked: ${e.message}`,
            ),
          [url, KEY] as const,
        );
      expect(await call(open.server.url)).toBe('200 tiny'); // a preflight (the Authorization header), then the request
      expect(await call(keyed.server.url)).toMatch(/^blocked: /); // no --cors-origins there
    } finally {
      await open.close();
      site.close();
    }
  });
});

describe('--no-console', () => {
  it('leaves / to the API: a JSON 404', async () => {
    const bare = await tinyChatServer('console-off', 64, { console: false });
    try {
      const r = await fetch(`${bare.server.url}/`);
      expect(r.status).toBe(404);
      expect(await r.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
      expect((await fetch(`${bare.server.url}/console/app.js`)).status).toBe(404);
      expect((await fetch(`${bare.server.url}/docs`)).status).toBe(200); // the API reference stays
    } finally {
      await bare.close();
    }
  });
});
