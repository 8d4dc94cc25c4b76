// The console's playground in a real Chromium against a server on two tiny random GPT-2s with the
// real vocabulary: streamed chat, the token view against the API's logprobs, two models side by
// side, and the request as code that runs. Every wait is on the page's state, never on time.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { percent, visibleToken } from '../src/console/probability.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { collectProblems, launchBrowser, skipWithoutChromium, type TestBrowser } from './helpers/browser.js';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '..');

interface ChatAnswer {
  choices: { message: { content: string }; logprobs: { content: { token: string; logprob: number; top_logprobs: { token: string; logprob: number }[] }[] } | null }[];
}

describe.skipIf(skipWithoutChromium('console-playground.test.ts'))('console playground', () => {
  let tmp: string;
  let server: RunningServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 16, nLayer: 1, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5, chatTemplate: 'alpaca' };
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'playground-'));
    const dirs = ['tiny-a', 'tiny-b'].map((name, i) => {
      const dir = path.join(tmp, name);
      saveCheckpoint(dir, cfg, randomInit(cfg, 11 + i));
      return dir;
    });
    // No prefix cache: the tests compare the page's logprobs with a second request's exactly, and a
    // cached prefix changes them in the 10th decimal (tests/prefix-cache.test.ts bounds that by 1e-5).
    [server, browser] = await Promise.all([startServer({ modelDirs: dirs, port: 0, slots: 4, queue: 8, threads: 1, prefixCacheMb: 0 }), launchBrowser()]);
    await server.ready;
  });

  afterAll(async () => {
    await browser?.close();
    await server?.shutdown();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function api<T>(route: string, body: object): Promise<T> {
    const res = await fetch(`${server.url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as T;
  }

  /** A fresh page on the playground at `query`, with its problems collected from the start. */
  async function open(query: string): Promise<{ page: Page; problems: string[] }> {
    const page = await browser.newPage();
    const problems = collectProblems(page);
    await page.goto(`${server.url}/#/playground?${query}`);
    await page.locator('[data-pane="A"] h2').waitFor();
    return { page, problems };
  }

  const option = (page: Page, name: string) => page.locator(`aside [name="${name}"]`);
  const pane = (page: Page, id: 'A' | 'B') => page.locator(`[data-pane="${id}"]`);

  /** Waits for the pane's usage line, written when its answer has ended. */
  async function finished(page: Page, id: 'A' | 'B'): Promise<string> {
    await expect.poll(() => pane(page, id).locator('.usage').textContent()).toContain('finish:');
    return (await pane(page, id).locator('.output').textContent()) ?? '';
  }

  it('streams a chat into the page, turn after turn, as the API answers it', async () => {
    const { page, problems } = await open('models=tiny-a&mode=chat');
    await expect.poll(() => page.getByLabel('Model', { exact: true }).inputValue()).toBe('tiny-a');
    await option(page, 'max_tokens').fill('24');
    await option(page, 'temperature').fill('0');
    await page.getByText('More options').click();
    await option(page, 'ignore_eos').check();
    await page.getByLabel('Message', { exact: true }).fill('Say something.');
    // Counts the separate updates of the output: a streamed answer arrives in several.
    await page.evaluate(() => {
      const w = window as unknown as { batches: number };
      w.batches = 0;
      new MutationObserver(() => w.batches++).observe(document.querySelector('[data-pane="A"] .output')!, { childList: true, subtree: true, characterData: true });
    });
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const first = await finished(page, 'A');
    const options = { model: 'tiny-a', max_tokens: 24, temperature: 0, ignore_eos: true };
    const expected = await api<ChatAnswer>('/v1/chat/completions', { ...options, messages: [{ role: 'user', content: 'Say something.' }] });
    expect(first).toBe(expected.choices[0]!.message.content);
    expect(await page.evaluate(() => (window as unknown as { batches: number }).batches)).toBeGreaterThanOrEqual(2);
    await expect.poll(() => pane(page, 'A').locator('.usage').textContent()).toMatch(/^24 tokens · first token \d+ ms · [\d.]+ tokens\/s · finish: length$/);

    // The reply became the assistant's turn: the next request carries it.
    await page.getByLabel('Message', { exact: true }).fill('Go on.');
    await page.getByLabel('Message', { exact: true }).press('Control+Enter');
    await expect.poll(() => pane(page, 'A').locator('.transcript .msg').allTextContents()).toEqual(['YouSay something.', `Assistant${first}`, 'YouGo on.']);
    const second = await finished(page, 'A');
    const expected2 = await api<ChatAnswer>('/v1/chat/completions', {
      ...options,
      messages: [
        { role: 'user', content: 'Say something.' },
        { role: 'assistant', content: first },
        { role: 'user', content: 'Go on.' },
      ],
    });
    expect(second).toBe(expected2.choices[0]!.message.content);
    await browser.screenshot(page, 'playground-chat');
    expect(problems).toEqual([]);
  });

  it("colours each token by the API's logprob and shows its alternatives on focus", async () => {
    const { page, problems } = await open('models=tiny-a&mode=chat');
    await option(page, 'max_tokens').fill('12');
    await option(page, 'temperature').fill('0');
    await option(page, 'logprobs').check();
    await option(page, 'top_logprobs').fill('3');
    await page.getByText('More options').click();
    await option(page, 'ignore_eos').check();
    await page.getByLabel('Message', { exact: true }).fill('Name three colours.');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await finished(page, 'A');
    const expected = await api<ChatAnswer>('/v1/chat/completions', {
      model: 'tiny-a',
      messages: [{ role: 'user', content: 'Name three colours.' }],
      max_tokens: 12,
      temperature: 0,
      ignore_eos: true,
      logprobs: true,
      top_logprobs: 3,
    });
    const lps = expected.choices[0]!.logprobs!.content;
    const tokens = pane(page, 'A').locator('.output .tok');
    const shown = await tokens.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-logprob'))));
    expect(shown).toEqual(lps.map((t) => t.logprob));

    /** The tooltip shows token `i`'s probability and alternatives, and describes its span. */
    const tipMatches = async (i: number) => {
      const tip = page.getByRole('tooltip');
      await expect.poll(() => tokens.nth(i).getAttribute('aria-describedby')).toBe(await tip.getAttribute('id'));
      expect(await tip.locator('.tip-prob').textContent()).toBe(percent(lps[i]!.logprob));
      const alts = [...lps[i]!.top_logprobs].sort((a, b) => b.logprob - a.logprob);
      expect(await tip.locator('.alt-token').allTextContents()).toEqual(alts.map((a) => visibleToken(a.token)));
      expect(await tip.locator('.alt-prob').allTextContents()).toEqual(alts.map((a) => percent(a.logprob)));
    };
    await tokens.nth(2).focus();
    await tipMatches(2);
    await page.keyboard.press('ArrowRight'); // the arrow keys move between tokens
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('data-key'))).toBe('0:3');
    await tipMatches(3);
    await browser.screenshot(page, 'playground-tokens');
    await page.keyboard.press('Escape');
    await expect(page.getByRole('tooltip').count()).resolves.toBe(0);
    expect(problems).toEqual([]);
  });

  it('sends one request to two models side by side', async () => {
    const { page, problems } = await open('models=tiny-a,tiny-b');
    expect(await page.locator('[data-pane] h2').allTextContents()).toEqual(['tiny-a', 'tiny-b']);
    await option(page, 'max_tokens').fill('16');
    await option(page, 'temperature').fill('1');
    await option(page, 'seed').fill('7');
    await page.getByText('More options').click();
    await option(page, 'ignore_eos').check();
    await page.getByLabel('Message', { exact: true }).fill('Hello, models.');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const [a, b] = await Promise.all([finished(page, 'A'), finished(page, 'B')]);
    for (const [model, text] of [
      ['tiny-a', a],
      ['tiny-b', b],
    ] as const) {
      const expected = await api<ChatAnswer>('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hello, models.' }], max_tokens: 16, temperature: 1, seed: 7, ignore_eos: true });
      expect(text, model).toBe(expected.choices[0]!.message.content);
    }
    await browser.screenshot(page, 'playground-side-by-side');
    expect(problems).toEqual([]);
  });

  it('shows the request as a curl command and openai code that run and answer the same', async () => {
    const { page, problems } = await open('models=tiny-a&mode=completions');
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await option(page, 'max_tokens').fill('10');
    await option(page, 'temperature').fill('0');
    await option(page, 'stop-0').fill('\\n\\n');
    await page.getByText('More options').click();
    await option(page, 'top_k').fill('40');
    await page.getByLabel('Prompt', { exact: true }).fill("It's a quick brown fox");
    await page.getByRole('button', { name: 'Complete', exact: true }).click();
    const text = await finished(page, 'A');

    await page.getByRole('button', { name: 'Copy as curl' }).click();
    const code = page.locator('.code-dialog pre');
    const curl = (await code.textContent())!;
    expect(curl).toContain('$SCRATCHGPT_API_KEY');
    const { stdout } = await run('bash', ['-c', curl], { env: { PATH: process.env.PATH } });
    expect((JSON.parse(stdout) as { choices: { text: string }[] }).choices[0]!.text).toBe(text);
    await page.locator('.code-dialog').getByRole('button', { name: 'Copy', exact: true }).click();
    await expect.poll(() => page.locator('.code-dialog [role="status"]').textContent()).toBe('Copied to the clipboard.');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(curl);

    await page.locator('.code-dialog').getByRole('button', { name: 'Node.js' }).click();
    const node = (await code.textContent())!;
    for (const part of ["import OpenAI from 'openai'", '"model": "tiny-a"', '"top_k": 40', '"temperature": 0', '"stop": [\n    "\\n\\n"\n  ]']) expect(node).toContain(part);
    // The Node script runs from the repository, where `openai` is installed, and prints the same text.
    const { stdout: printed } = await run(process.execPath, ['--input-type=module', '-e', node], { cwd: REPO, env: { PATH: process.env.PATH } });
    expect(printed).toBe(`${text}\n`);

    await page.locator('.code-dialog').getByRole('button', { name: 'Python' }).click();
    const python = (await code.textContent())!;
    for (const part of ['from openai import OpenAI', 'model="tiny-a"', 'temperature=0,', 'extra_body={', '"top_k": 40', 'os.environ.get("SCRATCHGPT_API_KEY", "none")']) expect(python).toContain(part);
    await page.locator('.code-dialog').getByRole('button', { name: 'Close' }).click();
    await expect(page.locator('.code-dialog').isVisible()).resolves.toBe(false);
    expect(problems).toEqual([]);
  });

  it('constrains the output to one of the given choices, as the API does', async () => {
    const { page, problems } = await open('models=tiny-a&mode=completions');
    await option(page, 'temperature').fill('1');
    await option(page, 'seed').fill('3');
    await page.getByText('More options').click();
    await option(page, 'response_format').selectOption('choice');
    await option(page, 'choices').fill('red\ngreen\nblue');
    await page.getByLabel('Prompt', { exact: true }).fill('My favourite colour is');
    await page.getByRole('button', { name: 'Complete', exact: true }).click();
    const text = await finished(page, 'A');
    expect(['red', 'green', 'blue']).toContain(text);
    const r = await api<{ choices: { text: string }[] }>('/v1/completions', {
      model: 'tiny-a', prompt: 'My favourite colour is', max_tokens: 64, temperature: 1, seed: 3, structured_outputs: { choice: ['red', 'green', 'blue'] },
    });
    expect(r.choices[0]!.text).toBe(text);
    expect(problems).toEqual([]);
  });

  it("shows the server's 400, which names the parameter", async () => {
    const { page, problems } = await open('models=tiny-a&mode=completions');
    await option(page, 'top_p').fill('5');
    await page.getByLabel('Prompt', { exact: true }).fill('Hi');
    await page.getByRole('button', { name: 'Complete', exact: true }).click();
    await expect.poll(() => pane(page, 'A').getByRole('alert').textContent()).toContain('top_p');
    // The refused request is the only problem: its 400, and Chromium's console line about it.
    expect(problems.filter((p) => !p.includes('400'))).toEqual([]);
  });
});
