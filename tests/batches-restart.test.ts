// Durability of batches, with the server as a real child process (`node bin/scratchgpt.js serve`):
// killed by the crash point between a line's durable append and its commit (the worst moment), then
// by a plain kill -9 while in progress; each restart goes on from the lines on disk, and the
// batch completes with every custom_id exactly once and the same results as direct requests.
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GPTConfig } from '../src/model/config.js';
import { childServersOnData } from './helpers/child-server.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

let servers: ReturnType<typeof childServersOnData>;
let dataDir: string;
const serve = (env?: NodeJS.ProcessEnv) => servers.serve(env);

/** Polls without a deadline of its own (the test's timeout bounds it). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

beforeAll(() => {
  servers = childServersOnData('batches-restart', cfg, 5);
  dataDir = servers.dataDir;
});

afterAll(() => servers?.close());

const LINES = 40;
const body = (i: number) => ({ model: 'tiny', prompt: `Line ${i}:`, max_tokens: 48, temperature: 0 });
const request = (i: number) => ({ custom_id: `line-${i}`, method: 'POST', url: '/v1/completions', body: body(i) });
const outputPart = (batch: string) => path.join(dataDir, 'batches', batch, 'output.jsonl');
/** The whole records of a batch's output part (a record a kill tore has no newline yet). */
const partLines = (batch: string) => fs.readFileSync(outputPart(batch), 'utf8').split('\n').slice(0, -1);

it('a batch survives a kill between append and commit and a kill -9 mid-line, running each line exactly once', async () => {
  // 1. dies at the third line's commit: its result is on disk, the store still counts 2
  let s = await serve({ SCRATCHGPT_CRASH_AT: 'batch.line-appended:3' });
  const input = await s.client.files.create({ file: await toFile(Buffer.from(Array.from({ length: LINES }, (_, i) => JSON.stringify(request(i))).join('\n')), 'in.jsonl'), purpose: 'batch' });
  const batch = await s.client.batches.create({ input_file_id: input.id, endpoint: '/v1/completions', completion_window: '24h' });
  expect((await s.exited).signal).toBe('SIGKILL');
  expect(partLines(batch.id)).toHaveLength(3);

  // 2. the restart counts the third line from the part instead of running it again; then a plain kill -9 mid-batch
  s = await serve();
  await until(async () => (await s.client.batches.retrieve(batch.id)).request_counts!.completed >= 8);
  expect(servers.log()).toMatch(new RegExp(`batch ${batch.id}: recovered 1 finished line`));
  const firstLines = partLines(batch.id).slice(0, 3);
  s.child.kill('SIGKILL');
  await s.exited;
  const beforeKill = partLines(batch.id);
  expect(beforeKill.length).toBeLessThan(LINES); // killed mid-batch, not after it
  expect(beforeKill.slice(0, 3)).toEqual(firstLines);

  // 3. the last restart finishes it
  s = await serve();
  const retrieve = () => s.client.batches.retrieve(batch.id);
  await until(async () => (await retrieve()).status === 'completed');
  const done = await retrieve();
  expect([done.request_counts, done.error_file_id]).toEqual([{ total: LINES, completed: LINES, failed: 0 }, null]);
  const output = (await (await s.client.files.content(done.output_file_id!)).text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: OpenAI.Completion } });
  expect(output.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: LINES }, (_, i) => `line-${i}`).sort()); // each exactly once
  expect(output.slice(0, beforeKill.length).map((l) => JSON.stringify(l))).toEqual(beforeKill); // nothing finished was lost or redone
  for (const l of output) {
    const i = Number(l.custom_id.slice('line-'.length));
    const direct = await s.client.completions.create(body(i));
    expect([l.custom_id, l.response.status_code, l.response.body.choices[0]!.text]).toEqual([l.custom_id, 200, direct.choices[0]!.text]);
  }
  expect(fs.readdirSync(path.join(dataDir, 'batches'))).toEqual([]);
  s.child.kill('SIGTERM');
  expect((await s.exited).code).toBe(0);
}, 120_000);

it('a kill after the result files are saved but before the batch is marked completed makes no second file', async () => {
  let s = await serve({ SCRATCHGPT_CRASH_AT: 'batch.files-saved' });
  const content = [0, 1].map((i) => JSON.stringify(request(i))).join('\n') + '\n' + JSON.stringify({ ...request(2), body: { ...body(2), model: 'nope' } });
  const input = await s.client.files.create({ file: await toFile(Buffer.from(content), 'in.jsonl'), purpose: 'batch' });
  const batch = await s.client.batches.create({ input_file_id: input.id, endpoint: '/v1/completions', completion_window: '24h' });
  expect((await s.exited).signal).toBe('SIGKILL');

  s = await serve();
  const before = (await s.client.files.list({ purpose: 'batch_output' })).data.map((f) => f.id);
  await until(async () => (await s.client.batches.retrieve(batch.id)).status === 'completed');
  const done = await s.client.batches.retrieve(batch.id);
  expect(done.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
  // the files saved before the kill are the batch's files: the restart reused their ids
  const results = [done.output_file_id!, done.error_file_id!];
  expect(before.filter((id) => results.includes(id)).sort()).toEqual([...results].sort());
  const after = (await s.client.files.list({ purpose: 'batch_output' })).data.map((f) => f.id);
  expect(after.sort()).toEqual(before.sort());
  const custom = async (id: string) => (await (await s.client.files.content(id)).text()).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { custom_id: string }).custom_id);
  expect([await custom(done.output_file_id!), await custom(done.error_file_id!)]).toEqual([['line-0', 'line-1'], ['line-2']]);
  s.child.kill('SIGTERM');
  expect((await s.exited).code).toBe(0);
}, 60_000);
