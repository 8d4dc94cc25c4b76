// The web console (src/console) at `/`: its page, and its TypeScript bundled by esbuild in memory
// once per process, so there is no build step to forget and nothing is fetched from a CDN.
//   GET /             the page (the app renders into it)
//   GET /console/app.js, /console/app.css
import { createHash } from 'node:crypto';
import path from 'node:path';
import { build } from 'esbuild';
import { Hono } from 'hono';
import type { AppEnv } from './env.js';
import { apiError } from './errors.js';

const SOURCE = path.resolve(import.meta.dirname, '../console');

interface Bundle {
  js: string;
  css: string;
  /** Content hash: the page asks for ?v=hash, so a new build is never read from a stale cache. */
  version: string;
}

let bundle: Promise<Bundle> | undefined;

/** The console's bundle, built on first use (about 100 ms) and kept for the life of the process. */
export function consoleBundle(): Promise<Bundle> {
  bundle ??= build({
    entryPoints: [path.join(SOURCE, 'main.tsx')],
    tsconfig: path.join(SOURCE, 'tsconfig.json'),
    bundle: true,
    write: false,
    format: 'esm',
    target: 'es2022',
    minify: true,
    outdir: 'out', // names the outputs; nothing is written
    entryNames: 'app',
    logLevel: 'silent',
  }).then((r) => {
    const text = (ext: string) => r.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? '';
    const js = text('.js');
    const css = text('.css');
    return { js, css, version: createHash('sha256').update(js).update(css).digest('hex').slice(0, 12) };
  });
  // A failed build is retried on the next request rather than cached.
  bundle.catch(() => (bundle = undefined));
  return bundle;
}

const page = (version: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ScratchGPT console</title>
<link rel="stylesheet" href="/console/app.css?v=${version}">
<script type="module" src="/console/app.js?v=${version}"></script>
</head>
<body>
<div id="app"><header class="bar"><strong>ScratchGPT</strong></header><noscript>The console needs JavaScript; the API is at /v1 and its reference at <a href="/docs">/docs</a>.</noscript></div>
</body>
</html>
`;

async function built(): Promise<Bundle> {
  try {
    return await consoleBundle();
  } catch (e) {
    console.error('console: the bundle failed to build:', e);
    throw apiError(503, 'The console could not be built; the API itself is unaffected. See the server log.', { code: 'console_unavailable' });
  }
}

const IMMUTABLE = 'public, max-age=31536000, immutable';

// The page holds an API key: scripts and styles come from this server only, so injected markup could not run.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const webConsole = new Hono<AppEnv>()
  .get('/', async (c) => c.html(page((await built()).version), 200, { 'Cache-Control': 'no-cache', 'Content-Security-Policy': CSP }))
  .get('/console/app.js', async (c) => c.body((await built()).js, 200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': IMMUTABLE }))
  .get('/console/app.css', async (c) => c.body((await built()).css, 200, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': IMMUTABLE }));
