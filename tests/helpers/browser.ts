// Chromium for the tests that look at pages (/docs, the console): Debian's chromium, driven by
// playwright-core. Every request that leaves 127.0.0.1 is aborted, so a page that reached for a CDN
// fails visibly (in collectProblems) instead of passing here and breaking offline. Without a
// Chromium, a test file's browser tests skip, saying how to install it, except under CI, where
// they must fail instead (as tests/helpers/webgpu.ts does for WebGPU).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = path.resolve(import.meta.dirname, '../../test-artifacts/screenshots');

/** True when `file`'s browser tests are to be skipped (no Chromium, not CI); warns once with how to install it. */
export function skipWithoutChromium(file: string): boolean {
  const skip = !fs.existsSync(CHROMIUM_PATH) && !process.env.CI;
  if (skip) console.warn(`${file}: browser tests skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH).`);
  return skip;
}

export interface TestBrowser {
  browser: Browser;
  /** A page in a context of its own whose requests may only go to this machine. */
  newPage(): Promise<Page>;
  /** Saves a full-page PNG as test-artifacts/screenshots/<name>.png; returns its path. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Chromium, headless (--no-sandbox: the tests run as root, which Chromium's sandbox refuses). */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
  return {
    browser,
    async newPage() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await context.route('**', (route) => {
        const url = new URL(route.request().url());
        // data: and blob: URLs never reach the network; anything else must be this machine.
        if (url.protocol === 'data:' || url.protocol === 'blob:' || LOCAL_HOSTS.has(url.hostname)) return route.continue();
        return route.abort('blockedbyclient');
      });
      return context.newPage();
    },
    async screenshot(page, name) {
      fs.mkdirSync(SCREENSHOTS, { recursive: true });
      const file = path.join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    close: () => browser.close(),
  };
}

/**
 * A live list of what went wrong on `page` from now on: console errors, uncaught exceptions, failed
 * requests (those blocked for leaving 127.0.0.1 among them) and HTTP error responses.
 * @example const problems = collectProblems(page); await page.goto(url); expect(problems).toEqual([]);
 */
export function collectProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`exception: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText ?? 'unknown'})`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return problems;
}

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/**
 * What axe-core (Deque's accessibility engine) finds against WCAG 2.1 A and AA on the page as it is
 * now: missing labels and names, contrast, landmarks, ARIA misuse. One line per rule broken.
 */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.evaluate(fs.readFileSync(AXE, 'utf8')); // not addScriptTag: the console's CSP refuses inline scripts
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(context: Document, options: object): Promise<{ violations: { id: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => ({ id: v.id, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
  });
  return violations.map((v) => `${v.id}: ${v.help} (${v.targets.slice(0, 3).join(', ')}${v.targets.length > 3 ? ', …' : ''})`);
}
