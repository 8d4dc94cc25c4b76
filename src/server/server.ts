// Serving: model workers + the Hono app on @hono/node-server, and graceful shutdown.
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { FineTuning } from '../jobs/service.js';
import { createApp } from './app.js';
import { batchDispatch } from './batch-dispatch.js';
import { onClientError, requestErrorResponse } from './errors.js';
import { Metrics } from './metrics.js';
import type { AccessLog } from './middleware/access-log.js';
import { normalizeHosts, normalizeOrigins } from './middleware/host-guard.js';
import type { Device } from '../model/runtime.js';
import type { ModelOptions } from './model-worker.js';
import { ModelRegistry } from './registry.js';

export interface ServerOptions extends ModelOptions {
  /** The base models: a folder (id = its name), or a folder with the id to serve it as (a Hub id) and optionally a PEFT adapter applied to it (serve --lora). */
  modelDirs: (string | { id: string; dir: string; lora?: string })[];
  host?: string;
  port?: number; // 0: any free port
  apiKeys?: string[];
  /** Without keys, Host names answered besides localhost, IP addresses and `host` ('*': any): see middleware/host-guard.ts. */
  allowedHosts?: string[];
  /** Origins that may send cross-site requests, with CORS headers ('*': any). */
  corsOrigins?: string[];
  maxBodyBytes?: number;
  /** How long in-flight requests may run on after a shutdown begins. */
  shutdownTimeoutMs?: number;
  /** Data folder for files, fine-tuning jobs and finetuned models; none: fine-tuning is off. */
  dataDir?: string;
  /** PostgreSQL URL shared with other replicas and workers (default: SQLite in dataDir). */
  databaseUrl?: string;
  /** Lease length of a claimed job or batch (lease.ts). */
  leaseMs?: number;
  /** Whether this server trains fine-tuning jobs (default true; false: only workers and other replicas do). */
  train?: boolean;
  /** Upload limit of POST /v1/files (default 50 MiB). */
  maxFileBytes?: number;
  /** ORT threads for training (default: all cores). */
  finetuneThreads?: number;
  /** Where fine-tuning jobs train (default: the models' device). */
  finetuneDevice?: Device;
  /** One line per request to stderr (or to a function); default off, so tests stay quiet (serve turns it on). */
  accessLog?: AccessLog;
  /** Serve the web console at '/' (default true). */
  console?: boolean;
}

export interface RunningServer {
  url: string;
  port: number;
  models: ModelRegistry;
  metrics: Metrics;
  finetuning: FineTuning | undefined;
  /** Resolves when every model is loaded (the server answers, with 503s, before that). */
  ready: Promise<void>;
  /** Stops accepting, lets in-flight requests finish within the deadline, ends the rest cleanly. */
  shutdown(): Promise<void>;
  /** Ends a shutdown's grace period now (a second Ctrl-C): what still runs is ended as at the deadline. */
  hurry(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  // Checked before anything starts: a bad entry must not leave model workers running.
  const allowedHosts = normalizeHosts(o.allowedHosts ?? []);
  const corsOrigins = normalizeOrigins(o.corsOrigins ?? []);
  const metrics = new Metrics();
  const models = new ModelRegistry(o.modelDirs, o, metrics);
  let finetuning: FineTuning | undefined;
  try {
    if (o.dataDir !== undefined) {
      finetuning = await FineTuning.open(models, {
        dataDir: o.dataDir,
        databaseUrl: o.databaseUrl,
        leaseMs: o.leaseMs,
        train: o.train,
        maxFileBytes: o.maxFileBytes,
        threads: o.finetuneThreads,
        device: o.finetuneDevice ?? o.device,
      });
    }
  } catch (e) {
    await models.close();
    throw e;
  }
  let draining = false;
  const host = o.host ?? '127.0.0.1';
  const app = createApp({ models, metrics, apiKeys: o.apiKeys, allowedHosts, corsOrigins, boundHost: host, maxBodyBytes: o.maxBodyBytes, draining: () => draining, finetuning, accessLog: o.accessLog, console: o.console });
  finetuning?.batches.attach(batchDispatch(app, models, o.apiKeys ?? []));
  let server!: Server;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      // node-server's serve(), plus an errorHandler (it has no option for one): the OpenAI error
      // shape, not a bare 400, for what Node's parser (clientError) or node-server cannot take.
      server = createServer(getRequestListener(app.fetch, { hostname: host, errorHandler: requestErrorResponse }));
      server.on('clientError', onClientError);
      server.listen(o.port ?? 8080, host, () => resolve((server.address() as AddressInfo).port));
      server.once('error', reject);
    });
  } catch (e) {
    await finetuning?.close();
    await models.close(); // e.g. the port is taken: the worker threads would keep the process alive
    throw e;
  }
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));

  let stopping: Promise<void> | undefined;
  let hurried: () => void = () => {};
  const hurry = new Promise<void>((resolve) => (hurried = resolve));
  const shutdown = () =>
    (stopping ??= (async () => {
      draining = true; // new requests on open connections get 503
      server.close(); // no new connections
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, o.shutdownTimeoutMs ?? 10_000)));
      let late = false;
      void Promise.race([deadline, hurry]).then(() => (late = true));
      // Training stops now (its job resumes at the next start), and so does the batch line in
      // flight (it runs again at the next start); requests get the deadline.
      await Promise.all([finetuning?.runner.close(), finetuning?.batches.close()]);
      while (models.activeRequests > 0 && !late) await Promise.race([sleep(50), deadline, hurry]);
      clearTimeout(timer);
      await models.close();
      await finetuning?.close(); // ends what is left: streams get an error chunk and [DONE]
      server.closeIdleConnections();
      await Promise.race([closed, sleep(1000)]); // let those last chunks flush
      server.closeAllConnections();
    })());

  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, port, models, metrics, finetuning, ready: models.ready(), shutdown, hurry: () => hurried() };
}
