// The console's first paint: `/` against `/docs` (Swagger UI, the baseline) on the same server in
// the same run, in Debian's Chromium through playwright-core, each page loaded fresh (no cache) N times.
//   npm run bench:console -- [--runs 10] [--model DIR]
import { parseArgs } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { startServer } from '../src/server/server.js';
import { resolveModel } from '../src/model/resolve.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, model: { type: 'string' } } });
const runs = Number(values.runs);

interface Load {
  firstPaint: number;
  firstContentfulPaint: number;
  /** The console: its nav is drawn by the app; the docs: Swagger UI's first operation. */
  ready: number;
  bytes: number;
}

async function load(browser: Browser, url: string, readySelector: string): Promise<Load> {
  const context = await browser.newContext(); // a fresh cache each time
  const page = await context.newPage();
  let bytes = 0;
  page.on('response', (r) => void r.body().then((b) => (bytes += b.length), () => {}));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector(readySelector);
  const ready = Date.now() - t0;
  const paints = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('paint').map((p) => [p.name, p.startTime])));
  await context.close();
  return { firstPaint: paints['first-paint'] ?? NaN, firstContentfulPaint: paints['first-contentful-paint'] ?? NaN, ready, bytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const model = await resolveModel(values.model);
const server = await startServer({ modelDirs: [model], port: 0, slots: 4, queue: 16, threads: 1 });
await server.ready;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const pages = { console: [`${server.url}/`, 'nav a[aria-current="page"]'], docs: [`${server.url}/docs`, '.opblock'] } as const;
  await load(browser, pages.console[0], pages.console[1]); // builds the console's bundle: not part of a page load
  const results: Record<string, Load[]> = { console: [], docs: [] };
  for (let i = 0; i < runs; i++) for (const [name, [url, sel]] of Object.entries(pages)) results[name]!.push(await load(browser, url, sel));
  const summary = Object.fromEntries(
    Object.entries(results).map(([name, rs]) => [
      name,
      { first_contentful_paint_ms: median(rs.map((r) => r.firstContentfulPaint)), ready_ms: median(rs.map((r) => r.ready)), transferred_kib: +(median(rs.map((r) => r.bytes)) / 1024).toFixed(1) },
    ]),
  );
  console.log(`runs: ${runs} each (medians), Chromium ${browser.version()}`);
  console.log('page      first contentful paint   ready     transferred');
  for (const [name, s] of Object.entries(summary)) console.log(`${name.padEnd(9)} ${String(s.first_contentful_paint_ms.toFixed(0)).padStart(8)} ms ${String(s.ready_ms).padStart(14)} ms ${String(s.transferred_kib).padStart(9)} KiB`);
  const ratio = summary.console!.first_contentful_paint_ms / summary.docs!.first_contentful_paint_ms;
  console.log(JSON.stringify({ bench: 'console', runs, ...summary, console_vs_docs_fcp_ratio: +ratio.toFixed(2) }));
} finally {
  await browser.close();
  await server.shutdown();
}
