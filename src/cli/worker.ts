// scratchgpt worker: trains the fine-tuning jobs that servers on the same --database queue, without
// serving the API. Jobs are claimed with leases in the database (src/jobs/lease.ts); a worker that
// dies loses its job to another after --lease-seconds, which resumes it from its last checkpoint.
// GET /health on --port answers 200 while the database answers (for container probes).
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { FineTuning } from '../jobs/service.js';
import { WorkerModels } from '../jobs/worker-models.js';
import { MODEL_LIST_OPTIONS, STORAGE_OPTIONS, TRAINING_OPTIONS } from './common-options.js';
import { resolveModelList } from './model-list.js';
import { int, parseCommand, str } from './options.js';

const WORKER = {
  name: 'worker',
  usage: 'usage: scratchgpt worker --database URL [--model DIR]... [options]',
  options: {
    ...MODEL_LIST_OPTIONS,
    ...STORAGE_OPTIONS,
    ...TRAINING_OPTIONS,
    finetuneDevice: { ...TRAINING_OPTIONS.finetuneDevice, defaultText: 'cpu' },
    // No HOST/PORT environment: the image sets PORT for the server.
    host: str({ arg: 'H', default: '127.0.0.1', help: 'address of the health endpoint' }),
    port: int({ arg: 'P', min: 0, default: 8081, help: 'port of GET /health (200 while the database answers)' }),
  },
  epilog: `The --model list must be the servers' own: a job names its base model by id.
Without --database the worker shares nothing: it trains the jobs of the SQLite store in --data-dir,
which a server must not have open at the same time.`,
};

const log = (line: string) => console.error(`scratchgpt worker: ${line}`);

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(WORKER, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  const models = new WorkerModels(await resolveModelList(a.model, a.lora));
  const ft = await FineTuning.open(models, {
    dataDir: a.dataDir,
    databaseUrl: a.database,
    leaseMs: 1000 * a.leaseSeconds,
    train: true,
    threads: a.finetuneThreads,
    device: a.finetuneDevice,
    log,
  });
  const app = new Hono().get('/health', async (c) => {
    try {
      await ft.store.ping();
      return c.json({ status: 'ok', job: ft.runner.active ?? null });
    } catch (e) {
      return c.json({ status: 'failed', error: (e as Error).message }, 503);
    }
  });
  const server = serve({ fetch: app.fetch, hostname: a.host, port: a.port });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  }).catch(async (e) => {
    await ft.close();
    throw e;
  });
  const address = server.address();
  log(`training jobs from ${a.database ? 'the shared database' : ft.dirs.root}; health on http://${a.host}:${typeof address === 'object' && address ? address.port : a.port}/health`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: stopping after the current training step (the job goes back to the queue)…`);
      server.close();
      ft.close().then(
        () => resolve(0),
        (e) => {
          log(`shutdown failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
