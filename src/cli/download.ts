// scratchgpt download: fetch a GPT-2 (or a PEFT LoRA adapter and its base) from the Hugging Face
// Hub into the Hugging Face cache without running it, and print its snapshot folder.
import { formatRepoSpec, hubSettings, parseRepoSpec } from '../hub/index.js';
import { fetchHubModel } from '../model/resolve.js';
import { parseCommand } from './options.js';
import { downloadProgress } from './progress.js';

const DOWNLOAD = {
  name: 'download',
  usage: 'usage: scratchgpt download ORG/NAME[@REVISION]',
  options: {},
  positionals: true,
  epilog: `Fetches a model from the Hugging Face Hub into the Hugging Face cache (shared with Python's
transformers) and prints its snapshot folder. Only what a GPT-2 needs is fetched: config.json,
model.safetensors (or its shards and index), tokenizer_config.json and generation_config.json;
for a PEFT LoRA adapter, adapter_config.json and adapter_model.safetensors, then its base model.
The Hub is always asked for the revision's current commit, and cached files are checked against
its sizes and hashes (a corrupt one is fetched again). Other commands take the same ids with
--model and use the cache without asking the Hub once the model is there.

  REVISION               a branch, tag or commit hash (default main)

environment:
  HF_TOKEN               access token for gated or private models
  HF_ENDPOINT            the Hub's address (a mirror; default https://huggingface.co)
  HF_HOME, HF_HUB_CACHE  the cache folder (default ~/.cache/huggingface/hub)
  HF_HUB_OFFLINE=1       no network: only check that the model is in the cache`,
};

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(DOWNLOAD, argv);
  if (!parsed) return 0; // --help
  const { positionals } = parsed;
  if (positionals.length !== 1) throw new Error('give one model id, ORG/NAME[@REVISION] (see --help)');
  const spec = parseRepoSpec(positionals[0]!);
  if (!spec) throw new Error(`'${positionals[0]}' is not a Hugging Face model id: expected ORG/NAME[@REVISION], e.g. openai-community/gpt2`);
  const dir = await fetchHubModel(spec, { refresh: true, onProgress: downloadProgress() });
  console.error(`${formatRepoSpec(spec)} is in ${hubSettings().cacheDir}`);
  console.log(dir);
  return 0;
}
