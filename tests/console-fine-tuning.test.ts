// The console's fine-tuning page in a real Chromium against an in-process server on a tiny random
// GPT-2: uploading datasets (drop and file input), a live loss curve and Cancel, and a finished job
// opened in the playground beside its base. Every wait is on the page's state, never on time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { collectProblems, launchBrowser, skipWithoutChromium, type TestBrowser } from './helpers/browser.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 256, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, chatTemplate: 'alpaca' };

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const alpaca = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ instruction: `Name the number ${i + from}.`, input: '', output: `It is ${i + from}.` }));

/** The longest any one page condition may take: a bound for a hung page, not a pace the test relies on. */
const WAIT_MS = 60_000;
const TEST_MS = 120_000;

// Problems a test causes on purpose (collectProblems reports every 400 twice: the response, and
// Chromium's console line, which does not name the URL).
const chromium400 = (p: string) => p === 'console: Failed to load resource: the server responded with a status of 400 (Bad Request)';
/** The bad uploads' 400s. */
const refusedUpload = (p: string) => /^HTTP 400: POST .*\/v1\/files$/.test(p) || chromium400(p);
/** The 400 for the job asked for with a bad field. */
const refusedJob = (p: string) => /^HTTP 400: POST .*\/v1\/fine_tuning\/jobs$/.test(p) || chromium400(p);

let tmp: string;
let server: RunningServer;
let browser: TestBrowser;

interface Job {
  id: string;
  model: string;
  status: string;
  fine_tuned_model: string | null;
}

async function api<T>(route: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${server.url}${route}`, init);
  if (!res.ok) throw new Error(`${route}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function upload(name: string, content: string): Promise<string> {
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', new Blob([content]), name);
  return (await api<{ id: string }>('/v1/files', { method: 'POST', body: form })).id;
}

/** A page on the console at `hash`, with the list of problems (console errors, failed requests) it has. */
async function open(hash: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = collectProblems(page);
  await page.goto(`${server.url}/${hash}`);
  return { page, problems };
}

/** In the page: the loss curve's point count while the status says running, else -1. */
const runningPoints = (page: Page): Promise<number> =>
  page.evaluate(() => {
    const status = document.querySelector<HTMLElement>('.job-status [data-status]')?.dataset.status;
    return status === 'running' ? Number(document.querySelector<HTMLElement>('.loss-curve')?.dataset.points ?? 0) : -1;
  });

/** Drops a file `name` holding `text` on the drop zone, as a user's drag and drop does: a DataTransfer built in the page. */
async function dropFile(page: Page, name: string, text: string): Promise<void> {
  const transfer = await page.evaluateHandle(
    ([text, name]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], name, { type: 'application/jsonl' }));
      return dt;
    },
    [text, name] as const,
  );
  await page.locator('.drop-zone').dispatchEvent('drop', { dataTransfer: transfer });
}

/** The job id in the page's URL (#/fine-tuning?job=…). */
const jobOf = (page: Page): string => new URLSearchParams(new URL(page.url()).hash.split('?')[1]).get('job')!;

describe.skipIf(skipWithoutChromium('console-fine-tuning.test.ts'))('the console: fine-tuning', () => {
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'console-fine-tuning-'));
    const dir = path.join(tmp, 'tiny');
    saveCheckpoint(dir, cfg, randomInit(cfg, 3));
    server = await startServer({ modelDirs: [dir], port: 0, slots: 2, queue: 8, threads: 1, finetuneThreads: 1, dataDir: path.join(tmp, 'data') });
    await server.ready;
    browser = await launchBrowser();
  }, TEST_MS);

  afterAll(async () => {
    await browser?.close();
    await server?.shutdown();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a dropped bad dataset shows the line at fault; a chosen good one joins the files list', async () => {
    const { page, problems } = await open('#/fine-tuning');
    const bad = `${JSON.stringify(alpaca(1)[0])}\n${JSON.stringify(alpaca(1, 1)[0])}\n{"instruction": "x", "output": \n`;
    await dropFile(page, 'bad.jsonl', bad);
    const error = page.locator('.drop-zone [role=alert]');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/^Line 3: Invalid file: bad\.jsonl: malformed JSON/);
    await browser.screenshot(page, 'fine-tuning-upload-error');

    const good = Buffer.from(jsonl(alpaca(4)));
    await page.getByLabel('Dataset file').setInputFiles({ name: 'good.jsonl', mimeType: 'application/jsonl', buffer: good });
    const row = page.locator('table.files tbody tr', { hasText: 'good.jsonl' });
    await row.waitFor();
    const id = (await row.locator('code').textContent())!;
    expect(id).toMatch(/^file-[A-Za-z0-9]{24}$/);
    expect(await row.textContent()).toContain(`${good.length} B`);
    await error.waitFor({ state: 'detached' }); // the error went with the good upload
    // The new file is offered to the form, picked as the training file (the newest first).
    expect(await page.getByLabel(/^Training file/).inputValue()).toBe(id);
    // A second bad file, this time through the input, and a good one dropped.
    await page.getByLabel('Dataset file').setInputFiles({ name: 'missing.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(jsonl([...alpaca(1), { instruction: 'no output' }])) });
    await page.locator('.drop-zone [role=alert]', { hasText: /^Line 2: .*missing field 'output'/ }).waitFor();
    await dropFile(page, 'dropped.jsonl', jsonl(alpaca(3)));
    await page.locator('table.files tbody tr', { hasText: 'dropped.jsonl' }).waitFor();
    expect(problems.filter((p) => !refusedUpload(p))).toEqual([]);
    await page.close();
  }, TEST_MS);

  it("a running job's loss curve grows live; Cancel stops it", async () => {
    const file = await upload('long.jsonl', jsonl(alpaca(16)));
    const { page, problems } = await open('#/fine-tuning');
    await page.getByLabel(/^Base model/).selectOption('tiny');
    await page.getByLabel(/^Training file/).selectOption(file);
    // Many steps of a tiny model: it cannot finish while the test watches, and is cancelled.
    await page.getByLabel('Epochs').fill('1000');
    await page.getByLabel('Batch size').fill('1');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.waitForURL(/job=ftjob-/);
    const jobId = jobOf(page);

    let first = -1;
    await expect.poll(async () => (first = await runningPoints(page))).toBeGreaterThanOrEqual(1);
    await expect.poll(() => runningPoints(page)).toBeGreaterThan(first); // -1 once it stops running
    // Speed and time left appear once the run has taken a step or two.
    const figure = (name: string) => page.locator(`[data-figure=${name}] .value`);
    await figure('tokens-per-second').filter({ hasText: /^[\d.]+[KM]?$/ }).waitFor();
    await figure('eta').filter({ hasText: /^\d+ (s|min|h)\b/ }).waitFor();
    await figure('progress').filter({ hasText: /^\d+ \/ 16000$/ }).waitFor();
    expect(await page.locator('.job-status').getAttribute('aria-live')).toBe('polite');
    await browser.screenshot(page, 'fine-tuning-job-running');

    const cancel = page.getByRole('button', { name: 'Cancel' });
    await cancel.click();
    await page.locator('.job-status [data-status=cancelled]').waitFor();
    expect(await cancel.isDisabled()).toBe(true);
    expect((await api<Job>(`/v1/fine_tuning/jobs/${jobId}`)).status).toBe('cancelled');
    await page.locator(`table.jobs tr[data-job-id="${jobId}"]`, { hasText: 'cancelled' }).waitFor();
    expect(problems).toEqual([]);
    await page.close();
  }, TEST_MS);

  it('a finished job shows its checkpoints and final curve, and opens in the playground beside its base', async () => {
    const training = await upload('small.jsonl', jsonl(alpaca(4)));
    const validation = await upload('small-valid.jsonl', jsonl(alpaca(2, 10)));
    const { page, problems } = await open('#/fine-tuning');
    await page.getByLabel(/^Base model/).selectOption('tiny');
    await page.getByLabel(/^Training file/).selectOption(training);
    await page.getByLabel(/^Validation file \(optional\)/).selectOption(validation);
    // A method's own fields show only for it.
    await page.getByLabel(/^Method/).selectOption('lora');
    expect(await page.getByLabel('LoRA rank').getAttribute('placeholder')).toBe('16');
    await page.getByLabel(/^Method/).selectOption('full');
    expect(await page.getByLabel('LoRA rank').count()).toBe(0);
    await page.getByLabel('Epochs').fill('2');
    await page.getByLabel('Batch size').fill('2');
    await page.getByLabel('Checkpoint every N steps').fill('2');
    await page.getByLabel('Suffix').fill('console');
    // The server's refusal shows beside the form, naming the field, which is marked invalid.
    const maxLength = page.getByLabel('Max length (tokens)');
    await maxLength.fill('100000');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.locator('.new-job [role=alert]', { hasText: "'max_length' is 100000" }).waitFor();
    expect(await maxLength.getAttribute('aria-invalid')).toBe('true');
    await maxLength.fill('');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.waitForURL(/job=ftjob-/);
    const jobId = jobOf(page);

    await page.locator('.job-status [data-status=succeeded]').waitFor();
    const job = await api<Job>(`/v1/fine_tuning/jobs/${jobId}`);
    expect(job.fine_tuned_model).toBe(`ft:tiny:console:${jobId}`);
    // The final curve: every training and validation loss the job logged.
    const events = (await api<{ data: { type: string; data: { train_loss?: number | null; valid_loss?: number | null } }[] }>(`/v1/fine_tuning/jobs/${jobId}/events?limit=1000`)).data;
    const metrics = events.filter((e) => e.type === 'metrics').map((e) => e.data);
    const expected = metrics.filter((m) => typeof m.train_loss === 'number').length + metrics.filter((m) => typeof m.valid_loss === 'number').length;
    expect(expected).toBeGreaterThan(0);
    await page.locator(`.loss-curve[data-points="${expected}"]`).waitFor();
    expect(await page.locator('[data-figure=progress] .value').textContent()).toBe('4 / 4');
    const checkpoints = page.locator('table.checkpoints tbody tr');
    await checkpoints.nth(1).waitFor();
    expect(await checkpoints.count()).toBe(2);
    expect(await checkpoints.first().textContent()).toContain(`${job.fine_tuned_model}:ckpt-step-4`);
    expect(await page.getByRole('button', { name: 'Cancel' }).isDisabled()).toBe(true);
    await browser.screenshot(page, 'fine-tuning-job-succeeded');

    await page.getByRole('link', { name: 'Open in playground next to its base' }).click();
    await page.waitForURL(/#\/playground/);
    const hash = decodeURIComponent(new URL(page.url()).hash);
    expect(hash).toBe(`#/playground?models=tiny,${job.fine_tuned_model}&mode=chat`);
    const paneA = page.locator('section[data-pane="A"]');
    const paneB = page.locator('section[data-pane="B"]');
    await paneB.locator('h2', { hasText: job.fine_tuned_model! }).waitFor();
    expect((await paneA.locator('h2').textContent())?.trim()).toBe('tiny');
    await page.getByLabel('Message', { exact: true }).fill('Name the number 3.');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    // Each pane's answer, finished (no longer busy).
    for (const pane of [paneA, paneB]) await pane.locator('.output[aria-busy="false"]').filter({ hasText: /\S/ }).waitFor();

    // The models page deletes the finetuned model (the base has no Delete button): it is no longer served.
    await page.goto(`${server.url}/#/models`);
    const row = page.locator(`[data-model="${job.fine_tuned_model}"]`);
    await row.waitFor();
    expect(await page.locator('[data-model="tiny"] button').count()).toBe(0);
    page.once('dialog', (d) => void d.accept()); // the confirm() before deleting
    await row.getByRole('button', { name: `Delete ${job.fine_tuned_model}` }).click();
    await expect.poll(() => row.count()).toBe(0);
    expect((await fetch(`${server.url}/v1/models/${job.fine_tuned_model}`)).status).toBe(404);
    expect(problems.filter((p) => !refusedJob(p))).toEqual([]);
    await page.close();
  }, TEST_MS);
});
