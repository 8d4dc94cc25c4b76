// Durability of the fine-tuning service, with the server as a real child process
// (`node bin/scratchgpt.js serve`): kill -9 in the middle of a job, start again on the same data
// folder, and the job resumes from its last checkpoint and succeeds, with every file and model
// intact; then SIGTERM mid-job, which checkpoints the step it stopped at before exiting.
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GPTConfig } from '../src/model/config.js';
import { childServersOnData } from './helpers/child-server.js';
import { RESUMED } from '../src/jobs/runner.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

let servers: ReturnType<typeof childServersOnData>;
let dataDir: string;
const serve = (env?: NodeJS.ProcessEnv) => servers.serve(env);

async function until(check: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out; server log:\n${servers.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const alpaca = (n: number) => Array.from({ length: n }, (_, i) => ({ instruction: `Repeat after me: ${i}`, input: '', output: `${i} ${i} ${i}` }));

beforeAll(() => {
  servers = childServersOnData('fine-tuning-restart', cfg, 5, ['--finetune-threads', '1']);
  dataDir = servers.dataDir;
});

afterAll(() => servers?.close());

const metricsSteps = async (client: OpenAI, id: string) =>
  (await client.fineTuning.jobs.listEvents(id, { limit: 1000 })).data.filter((e) => e.type === 'metrics').map((e) => (e.data as { step: number }).step);

it('a job survives kill -9 and SIGTERM mid-training, and files and models stay intact', async () => {
  let s = await serve();
  const content = jsonl(alpaca(64));
  const file = await s.client.files.create({ file: await toFile(Buffer.from(content), 'repeat.jsonl'), purpose: 'fine-tune' });
  // a first, short job: its model must survive everything that follows
  const first = await s.client.fineTuning.jobs.create({ model: 'tiny', training_file: file.id, suffix: 'first', hyperparameters: { n_epochs: 1, batch_size: 32 } });
  await until(async () => (await s.client.fineTuning.jobs.retrieve(first.id)).status === 'succeeded');
  const firstModel = (await s.client.fineTuning.jobs.retrieve(first.id)).fine_tuned_model!;

  // 64 examples / batch 2 = 32 steps per epoch, × 6 = 192 steps, a checkpoint every 10
  const job = await s.client.fineTuning.jobs.create({
    model: 'tiny',
    training_file: file.id,
    suffix: 'durable',
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 6, batch_size: 2 } }, scratchgpt: { checkpoint_every_steps: 10 } } as OpenAI.FineTuning.JobCreateParams.Method,
  });
  await until(async () => (await s.client.fineTuning.jobs.checkpoints.list(job.id)).data.length > 0 && Math.max(...(await metricsSteps(s.client, job.id))) >= 15);

  // kill -9 mid-step
  s.child.kill('SIGKILL');
  await s.exited;
  s = await serve();
  expect((await s.client.fineTuning.jobs.retrieve(job.id)).status).toBe('running');
  const lastCheckpoint = Math.max(...(await s.client.fineTuning.jobs.checkpoints.list(job.id)).data.map((c) => c.step_number));
  await until(async () => (await s.client.fineTuning.jobs.listEvents(job.id)).data.some((e) => e.message.startsWith(RESUMED)));
  await until(async () => Math.max(...(await metricsSteps(s.client, job.id))) >= lastCheckpoint + 20);
  const events = (await s.client.fineTuning.jobs.listEvents(job.id, { limit: 1000 })).data.reverse();
  const resumedAt = events.findIndex((e) => e.message.startsWith(RESUMED));
  expect(events[resumedAt]!.data).toEqual({ resumed_from_step: lastCheckpoint }); // from the checkpoint, not from step 0
  // the steps it redid up to the last one logged before the kill are not logged again
  const before = events.slice(0, resumedAt).filter((e) => e.type === 'metrics').map((e) => (e.data as { step: number }).step);
  const firstAfter = events.slice(resumedAt).find((e) => e.type === 'metrics')!;
  expect((firstAfter.data as { step: number }).step).toBe(Math.max(...before) + 1);

  // SIGTERM: the worker stops after its step and checkpoints it; the server exits cleanly
  s.child.kill('SIGTERM');
  expect((await s.exited).code).toBe(0);
  s = await serve();
  const stoppedAt = Math.max(...(await s.client.fineTuning.jobs.checkpoints.list(job.id, { limit: 100 })).data.map((c) => c.step_number));
  expect(stoppedAt).toBeGreaterThanOrEqual(lastCheckpoint + 20);

  await until(async () => ['succeeded', 'failed', 'cancelled'].includes((await s.client.fineTuning.jobs.retrieve(job.id)).status), 90_000);
  const done = await s.client.fineTuning.jobs.retrieve(job.id);
  expect([done.status, done.error]).toEqual(['succeeded', null]);
  expect(done.fine_tuned_model).toBe(`ft:tiny:durable:${job.id}`);
  const steps = await metricsSteps(s.client, job.id);
  expect(Math.max(...steps)).toBe(192);
  expect(steps.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: 193 }, (_, i) => i)); // each step logged once
  // SIGTERM lost no step: the checkpoint it wrote is the last step the stopped server logged,
  // and the third server went on from the next one
  const log3 = (await s.client.fineTuning.jobs.listEvents(job.id, { limit: 1000 })).data.reverse();
  const resumes = log3.map((e, i) => (e.message.startsWith(RESUMED) ? i : -1)).filter((i) => i >= 0);
  expect(resumes).toHaveLength(2);
  const stepsOf = (events: typeof log3) => events.filter((e) => e.type === 'metrics').map((e) => (e.data as { step: number }).step);
  expect(Math.max(...stepsOf(log3.slice(0, resumes[1])))).toBe(stoppedAt);
  expect(stepsOf(log3.slice(resumes[1]))[0]).toBe(stoppedAt + 1);

  // everything is still there and works
  expect(await (await s.client.files.content(file.id)).text()).toBe(content);
  expect((await s.client.models.list()).data.map((m) => m.id)).toEqual(['tiny', firstModel, done.fine_tuned_model]);
  for (const model of [firstModel, done.fine_tuned_model!]) {
    const r = await s.client.completions.create({ model, prompt: 'Repeat after me: 3', max_tokens: 3, temperature: 0 });
    expect(r.usage!.completion_tokens).toBe(3);
  }
  expect(fs.readdirSync(path.join(dataDir, 'jobs')).filter((n) => !n.startsWith('.'))).toEqual([]);
  s.child.kill('SIGTERM');
  expect((await s.exited).code).toBe(0);
}, 180_000);
