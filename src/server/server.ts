// Serving: model workers + the Hono app on @hono/node-server, and graceful shutdown.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createApp } from './app.js';
import { Metrics } from './metrics.js';
import type { ModelOptions } from './model-worker.js';
import { ModelRegistry } from './registry.js';

export interface ServerOptions extends ModelOptions {
  modelDirs: string[];
  host?: string;
  port?: number; // 0: any free port
  apiKeys?: string[];
  maxBodyBytes?: number;
  /** How long in-flight requests may run on after a shutdown begins. */
  shutdownTimeoutMs?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  models: ModelRegistry;
  metrics: Metrics;
  /** Resolves when every model is loaded (the server answers, with 503s, before that). */
  ready: Promise<void>;
  /** Stops accepting, lets in-flight requests finish within the deadline, ends the rest cleanly. */
  shutdown(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const metrics = new Metrics();
  const models = new ModelRegistry(o.modelDirs, o, metrics);
  let draining = false;
  const app = createApp({ models, metrics, apiKeys: o.apiKeys, maxBodyBytes: o.maxBodyBytes, draining: () => draining });
  const host = o.host ?? '127.0.0.1';
  let server!: Server;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server = serve({ fetch: app.fetch, hostname: host, port: o.port ?? 8080 }, (info: AddressInfo) => resolve(info.port)) as Server;
      server.once('error', reject);
    });
  } catch (e) {
    await models.close(); // e.g. the port is taken: the worker threads would keep the process alive
    throw e;
  }
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      draining = true; // new requests on open connections get 503
      server.close(); // no new connections
      server.closeIdleConnections();
      const deadline = Date.now() + (o.shutdownTimeoutMs ?? 10_000);
      while (models.activeJobs > 0 && Date.now() < deadline) await sleep(50);
      await models.close(); // ends what is left: streams get an error chunk and [DONE]
      server.closeIdleConnections();
      await Promise.race([closed, sleep(1000)]); // let those last chunks flush
      server.closeAllConnections();
    })());

  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, port, models, metrics, ready: models.ready(), shutdown };
}
