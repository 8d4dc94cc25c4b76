// scratchgpt serve: the OpenAI-compatible HTTP server (src/server) for one or more model folders.
import path from 'node:path';
import { DEFAULT_CHAT_MODEL_DIR } from '../model/default-model.js';
import { isPeftAdapterFolder } from '../model/peft-adapter.js';
import { resolveModel, type ResolvedModel } from '../model/resolve.js';
import { DEFAULT_MAX_FILE_BYTES } from '../jobs/service.js';
import { DEFAULT_MAX_BODY_BYTES } from '../server/app.js';
import { startServer } from '../server/server.js';
import { integer, parseOptions, runtimeFlags } from './args.js';
import { downloadProgress } from './progress.js';

const HELP = `usage: scratchgpt serve [--model DIR]... [options]

  --model DIR            Hugging Face GPT-2 folder to serve (repeatable; id = folder name), or a
                         Hub id ORG/NAME[@REV] (id = as given; downloaded once into the Hugging
                         Face cache); default: the embedded models in weights/ (the base and
                         its instruction-tuned adapter, scratchgpt-brown-instruct)
  --lora DIR             also serve a PEFT LoRA adapter folder (or Hub id) applied to the --model
                         (one --model; default the embedded base), whatever base it names; id =
                         the adapter's folder name (repeatable)
  --host H               address to bind (env HOST, default 127.0.0.1; 0.0.0.0 in containers)
  --port P               port (env PORT, default 8080)
  --allowed-hosts H,...  without API keys, Host names answered besides localhost, IP addresses and
                         the --host name (env SCRATCHGPT_ALLOWED_HOSTS; '.example.com' also
                         matches subdomains; '*' any): a guard against DNS rebinding
  --cors-origins O,...   origins (scheme://host[:port]) that may send cross-site requests, answered
                         with CORS headers (env SCRATCHGPT_CORS_ORIGINS; '*' any; default none)
  --chat-template FILE   Jinja chat template used instead of the models' own (tokenizer_config.json)
  --slots N              sequences decoded together per model (KV-cache slots, default 16)
  --queue N              sequences that may wait for a slot before requests get 429 (default 64)
  --prefill-tokens N     prompt tokens prefilled per scheduler step (default 512)
  --mixed-prefill        prefill in the decode step's forward call instead of its own (rows are
                         padded to the longest prompt: usually slower, see bench/server.ts)
  --device D             cpu | cuda | webgpu (default cpu)
  --threads N            ORT intra-op threads per model (default: all cores)
  --quantize Q           none | int8: decode with blockwise int8 weights (about 2x faster at batch 1
                         on CPU, not fp32-exact; prefill stays fp32). Default none
  --max-body-bytes N     request body limit (default ${DEFAULT_MAX_BODY_BYTES})
  --shutdown-timeout S   seconds in-flight requests may finish after SIGTERM (default 10)
  --data-dir DIR         files, fine-tuning jobs and finetuned models (env SCRATCHGPT_DATA_DIR,
                         default ./data); created if missing
  --max-file-bytes N     upload limit of POST /v1/files (default ${DEFAULT_MAX_FILE_BYTES})
  --finetune-threads N   ORT threads for the training worker (default: all cores)

environment:
  SCRATCHGPT_API_KEYS    comma-separated keys; when set, requests need 'Authorization: Bearer KEY'
                         (/health stays open); set but without a key is an error
  SCRATCHGPT_ALLOWED_HOSTS, SCRATCHGPT_CORS_ORIGINS   the lists when the flags are not given
  SCRATCHGPT_DATA_DIR    the data folder when --data-dir is not given`;

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseOptions('serve', {
    args: argv,
    options: {
      model: { type: 'string', multiple: true },
      lora: { type: 'string', multiple: true },
      host: { type: 'string' },
      port: { type: 'string' },
      'allowed-hosts': { type: 'string' },
      'cors-origins': { type: 'string' },
      'chat-template': { type: 'string' },
      slots: { type: 'string', default: '16' },
      queue: { type: 'string', default: '64' },
      'prefill-tokens': { type: 'string', default: '512' },
      'mixed-prefill': { type: 'boolean', default: false },
      device: { type: 'string', default: 'cpu' },
      threads: { type: 'string' },
      quantize: { type: 'string', default: 'none' },
      'max-body-bytes': { type: 'string', default: String(DEFAULT_MAX_BODY_BYTES) },
      'shutdown-timeout': { type: 'string', default: '10' },
      'data-dir': { type: 'string' },
      'max-file-bytes': { type: 'string', default: String(DEFAULT_MAX_FILE_BYTES) },
      'finetune-threads': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  // Every option is checked before anything is downloaded.
  if (a.lora?.length && (a.model?.length ?? 0) > 1) throw new Error('--lora applies its adapters to one --model: give a single --model with --lora');
  const list = (s: string | undefined) => (s ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  const apiKeys = list(process.env.SCRATCHGPT_API_KEYS);
  // Set but empty (' , ') must not quietly mean "no auth".
  if (process.env.SCRATCHGPT_API_KEYS !== undefined && apiKeys.length === 0) {
    throw new Error('SCRATCHGPT_API_KEYS is set but contains no key: give comma-separated keys, or unset it to run without auth.');
  }
  const options = {
    host: a.host ?? process.env.HOST ?? '127.0.0.1',
    port: integer('--port', a.port ?? process.env.PORT ?? '8080', 0),
    chatTemplateFile: a['chat-template'],
    slots: integer('--slots', a.slots!, 1),
    queue: integer('--queue', a.queue!, 0),
    prefillTokens: integer('--prefill-tokens', a['prefill-tokens']!, 1),
    mixedPrefill: a['mixed-prefill'],
    ...runtimeFlags(a),
    apiKeys,
    allowedHosts: list(a['allowed-hosts'] ?? process.env.SCRATCHGPT_ALLOWED_HOSTS),
    corsOrigins: list(a['cors-origins'] ?? process.env.SCRATCHGPT_CORS_ORIGINS),
    maxBodyBytes: integer('--max-body-bytes', a['max-body-bytes']!, 1),
    shutdownTimeoutMs: 1000 * integer('--shutdown-timeout', a['shutdown-timeout']!, 0),
    dataDir: a['data-dir'] ?? process.env.SCRATCHGPT_DATA_DIR ?? 'data',
    maxFileBytes: integer('--max-file-bytes', a['max-file-bytes']!, 1),
    finetuneThreads: a['finetune-threads'] === undefined ? undefined : integer('--finetune-threads', a['finetune-threads'], 1),
  };

  const dirs: ResolvedModel[] = [];
  for (const m of a.model?.length ? a.model : [undefined]) dirs.push(await resolveModel(m, { onProgress: downloadProgress() }));
  // The embedded chat model is served beside the embedded base (chat out of the box).
  if (!a.model?.length && isPeftAdapterFolder(DEFAULT_CHAT_MODEL_DIR)) dirs.push({ id: path.basename(DEFAULT_CHAT_MODEL_DIR), dir: DEFAULT_CHAT_MODEL_DIR });
  const adapters: { id: string; dir: string; lora: string }[] = [];
  for (const l of a.lora ?? []) {
    const { id, dir } = await resolveModel(l, { onProgress: downloadProgress(), withoutBase: true });
    adapters.push({ id, dir: dirs[0]!.dir, lora: dir });
  }
  const server = await startServer({ modelDirs: [...dirs, ...adapters], ...options });
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
