// scratchgpt serve: the OpenAI-compatible HTTP server (src/server) for one or more model folders.
import { DEFAULT_PREFIX_CACHE_MB } from '../model/prefix-cache.js';
import { DEFAULT_MAX_FILE_BYTES } from '../jobs/service.js';
import { DEFAULT_MAX_BODY_BYTES } from '../server/app.js';
import { startServer } from '../server/server.js';
import { DEFAULT_PREFILL_CALL_TOKENS } from '../server/scheduler.js';
import { MODEL_LIST_OPTIONS, RUNTIME_OPTIONS, STORAGE_OPTIONS, TRAINING_OPTIONS } from './common-options.js';
import { resolveModelList } from './model-list.js';
import { csv, flag, int, parseCommand, str } from './options.js';

const SERVE = {
  name: 'serve',
  usage: 'usage: scratchgpt serve [--model DIR]... [options]',
  options: {
    ...MODEL_LIST_OPTIONS,
    host: str({ arg: 'H', env: 'HOST', default: '127.0.0.1', help: 'address to bind (the container image binds 0.0.0.0)' }),
    port: int({ arg: 'P', min: 0, env: 'PORT', default: 8080, help: 'port' }),
    allowedHosts: csv({
      arg: 'H,...',
      env: 'SCRATCHGPT_ALLOWED_HOSTS',
      default: [],
      help: "without API keys, Host names answered besides localhost, IP addresses and the --host name ('.example.com' also matches subdomains; '*' any): a guard against DNS rebinding",
    }),
    corsOrigins: csv({
      arg: 'O,...',
      env: 'SCRATCHGPT_CORS_ORIGINS',
      default: [],
      help: "origins (scheme://host[:port]) that may send cross-site requests, answered with CORS headers ('*' any)",
    }),
    chatTemplate: str({ arg: 'FILE', help: "Jinja chat template used instead of the models' own (tokenizer_config.json)" }),
    slots: int({ arg: 'N', min: 1, default: 16, help: 'sequences decoded together per model (KV-cache slots)' }),
    queue: int({ arg: 'N', min: 0, default: 64, help: 'sequences that may wait for a slot before requests get 429' }),
    prefillTokens: int({ arg: 'N', min: 1, default: 512, help: 'prompt tokens prefilled per scheduler step' }),
    prefillCallTokens: int({ arg: 'N', min: 1, default: DEFAULT_PREFILL_CALL_TOKENS, help: "prompt tokens per prefill call: a step's newcomers prefill in calls of about this size, each call's sequences getting their first token when it ends (a longer prompt goes alone)" }),
    mixedPrefill: flag({ help: "prefill in the decode step's forward call instead of its own (rows are padded to the longest prompt: usually slower, see bench/server.ts)" }),
    prefixCacheMb: int({ arg: 'MB', min: 0, default: DEFAULT_PREFIX_CACHE_MB, help: "per model, MiB of prompts' K/V kept for reuse by later prompts that start the same way (automatic prefix caching; 0: off)" }),
    ...RUNTIME_OPTIONS,
    threads: { ...RUNTIME_OPTIONS.threads, help: 'ORT intra-op threads per model' },
    maxBodyBytes: int({ arg: 'N', min: 1, default: DEFAULT_MAX_BODY_BYTES, help: 'request body limit' }),
    shutdownTimeout: int({ arg: 'S', min: 0, default: 10, help: 'seconds in-flight requests may finish after SIGTERM' }),
    ...STORAGE_OPTIONS,
    maxFileBytes: int({ arg: 'N', min: 1, default: DEFAULT_MAX_FILE_BYTES, help: 'upload limit of POST /v1/files' }),
    ...TRAINING_OPTIONS,
    finetuneDevice: { ...TRAINING_OPTIONS.finetuneDevice, defaultText: '--device' },
    noTrain: flag({ help: 'never train here: fine-tuning jobs are created and queued, and `scratchgpt worker` processes (or replicas without --no-train) on the same --database train them' }),
    noAccessLog: flag({ help: 'do not log a line per request (method, path, status, duration, request id) to stderr' }),
    noConsole: flag({ help: 'do not serve the web console at / (the API reference stays at /docs)' }),
  },
  epilog: `environment:
  SCRATCHGPT_API_KEYS    comma-separated keys; when set, requests need 'Authorization: Bearer KEY'
                         (/health, the API reference at /docs and the console stay open); set but
                         without a key is an error`,
};

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(SERVE, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  const apiKeys = (process.env.SCRATCHGPT_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  // Set but empty (' , ') must not quietly mean "no auth".
  if (process.env.SCRATCHGPT_API_KEYS !== undefined && apiKeys.length === 0) {
    throw new Error('SCRATCHGPT_API_KEYS is set but contains no key: give comma-separated keys, or unset it to run without auth.');
  }
  const options = {
    host: a.host,
    port: a.port,
    chatTemplateFile: a.chatTemplate,
    slots: a.slots,
    queue: a.queue,
    prefillTokens: a.prefillTokens,
    prefillCallTokens: a.prefillCallTokens,
    mixedPrefill: a.mixedPrefill,
    prefixCacheMb: a.prefixCacheMb,
    device: a.device,
    threads: a.threads,
    quantize: a.quantize,
    draft: a.draft,
    draftTokens: a.draftTokens,
    apiKeys,
    allowedHosts: a.allowedHosts,
    corsOrigins: a.corsOrigins,
    maxBodyBytes: a.maxBodyBytes,
    shutdownTimeoutMs: 1000 * a.shutdownTimeout,
    dataDir: a.dataDir,
    databaseUrl: a.database,
    leaseMs: 1000 * a.leaseSeconds,
    train: !a.noTrain,
    maxFileBytes: a.maxFileBytes,
    finetuneThreads: a.finetuneThreads,
    finetuneDevice: a.finetuneDevice,
    accessLog: !a.noAccessLog,
    console: !a.noConsole,
  };

  const listed = await resolveModelList(a.model, a.lora);
  const server = await startServer({ modelDirs: listed, ...options });
  console.error(`scratchgpt serve: listening on ${server.url} (${apiKeys.length ? 'API keys required' : 'no auth'}); loading ${server.models.list().map((m) => m.id).join(', ')}…${server.finetuning ? `; data in ${server.finetuning.dirs.root}` : ''}`);

  const stopped = new Promise<number>((resolve) => {
    let signalled = false;
    const stop = (signal: string) => {
      if (signalled) {
        console.error(`scratchgpt serve: ${signal} again: ending in-flight requests now…`);
        server.hurry();
        return;
      }
      signalled = true;
      console.error(`scratchgpt serve: ${signal}: finishing in-flight requests… (again to end them now)`);
      server.shutdown().then(() => resolve(0), (e) => {
        console.error(`scratchgpt serve: shutdown failed: ${(e as Error).message}`);
        resolve(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  try {
    await server.ready;
    console.error('scratchgpt serve: ready');
  } catch (e) {
    console.error(`scratchgpt serve: ${(e as Error).message}`);
    await server.shutdown();
    return 1;
  }
  return stopped;
}
