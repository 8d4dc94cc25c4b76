// Options that several commands take, declared once for all of them.
import { DEVICES, type Device } from '../model/runtime.js';
import { DEFAULT_DRAFT_TOKENS, QUANTIZE } from '../model/session.js';
import { DEFAULT_LEASE_SECONDS } from '../jobs/lease.js';
import { choice, int, list, num, str } from './options.js';

/** How a model runs: every command that loads one. */
export const RUNTIME_OPTIONS = {
  device: choice(DEVICES as readonly Device[], { default: 'cpu', help: 'where the model runs' }),
  threads: int({ arg: 'N', min: 1, defaultText: 'all cores', help: 'intra-op threads' }),
  quantize: choice(QUANTIZE, { default: 'none', help: 'int8 / int4: decode with blockwise int8 / int4 weights (faster, not fp32-exact; prefill stays fp32; perplexity in docs/server.md)' }),
  draft: choice(QUANTIZE, {
    default: 'none',
    help: 'int8 / int4: speculative decoding: a sequence decoding alone drafts tokens on int8 / int4 weights and one fp32 call checks them (the same tokens as without, faster; not with --quantize)',
  }),
  draftTokens: int({ arg: 'K', min: 1, default: DEFAULT_DRAFT_TOKENS, help: 'most tokens the draft proposes per round (with --draft; fewer where they are rarely taken)' }),
};

/** Sampling, whose defaults come from the model's generation_config.json: generate and chat. */
export const SAMPLING_OPTIONS = {
  temperature: num({ arg: 'T', defaultText: "generation_config.json's, else 1", help: '0 = greedy' }),
  topK: int({ arg: 'K', min: 0, defaultText: "generation_config.json's, else off", help: 'keep the K most likely tokens' }),
  topP: num({ arg: 'P', defaultText: "generation_config.json's, else off", help: 'keep the most likely tokens up to probability P' }),
  seed: int({ arg: 'S', help: 'the same seed and input give the same tokens' }),
};

/** The models a server serves and a training worker trains from: serve and worker list the same ones. */
export const MODEL_LIST_OPTIONS = {
  model: list({
    arg: 'DIR',
    defaultText: 'the embedded models in weights/, the base and its instruction-tuned adapter scratchgpt-brown-instruct',
    help: 'Hugging Face GPT-2 folder to serve, and to finetune from (repeatable; id = folder name), or a Hub id ORG/NAME[@REV] (id = as given; downloaded once into the Hugging Face cache)',
  }),
  lora: list({
    arg: 'DIR',
    help: "also serve a PEFT LoRA adapter folder (or Hub id) applied to the --model (one --model; default the embedded base), whatever base it names; id = the adapter's folder name (repeatable)",
  }),
};

/** Where files, jobs and finetuned models live: every replica and worker of one service gives the same. */
export const STORAGE_OPTIONS = {
  dataDir: str({ arg: 'DIR', env: 'SCRATCHGPT_DATA_DIR', default: 'data', help: 'files, fine-tuning jobs and finetuned models; created if missing (with --database: a folder every replica and worker shares)' }),
  database: str({
    arg: 'URL',
    env: 'SCRATCHGPT_DATABASE_URL',
    help: 'postgres://USER:PASSWORD@HOST:PORT/DB: keep files, jobs and models in PostgreSQL, shared by replicas and training workers (default: SQLite in the data folder, one server)',
  }),
  leaseSeconds: int({ arg: 'S', min: 1, default: DEFAULT_LEASE_SECONDS, help: 'how long a job or batch stays with a process that stopped renewing it (died) before another takes it over' }),
};

/** How fine-tuning jobs train: serve (unless --no-train) and worker. */
export const TRAINING_OPTIONS = {
  finetuneThreads: int({ arg: 'N', min: 1, defaultText: 'all cores', help: 'ORT threads for the training worker' }),
  finetuneDevice: choice(DEVICES as readonly Device[], { defaultText: '--device', help: "where fine-tuning jobs' forward and backward passes run (AdamW stays on the host)" }),
};
