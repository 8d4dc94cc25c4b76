// scratchgpt convert: rewrite a Hugging Face GPT-2 folder with another storage dtype — how a
// float32 training checkpoint becomes the half-size float16 folder that ships in weights/.
// config.json + model.safetensors are written, the prompt files (chat template, generation
// defaults) copied; no optimizer state, no metrics.
import fs from 'node:fs';
import path from 'node:path';
import { PROMPT_FILES } from '../model/chat-template.js';
import { loadCheckpoint, materialize, saveCheckpoint } from '../model/checkpoint.js';
import { modelFolders } from '../model/peft-adapter.js';
import { writeFileAtomic } from '../model/durable.js';
import { resolveModel } from '../model/resolve.js';
import { parseOptions } from './args.js';
import { downloadProgress } from './progress.js';

const DTYPES = ['F32', 'F16', 'BF16'] as const;
type Dtype = (typeof DTYPES)[number];

const HELP = `usage: scratchgpt convert --model DIR --out DIR [--dtype F32|F16|BF16]

  --model DIR   a Hugging Face GPT-2 folder (config.json + model.safetensors) or Hub id ORG/NAME[@REV]
  --out DIR     where to write the converted folder (may not be --model)
  --dtype D     storage dtype of the new model.safetensors (default F16)`;

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseOptions('convert', {
    args: argv,
    options: { model: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string', default: 'F16' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  if (!a.model || !a.out) throw new Error('--model DIR and --out DIR are required (see --help)');
  const dtype = a.dtype!.toUpperCase() as Dtype;
  if (!DTYPES.includes(dtype)) throw new Error(`--dtype must be one of ${DTYPES.join(', ')}, got '${a.dtype}'`);
  // Converting in place would overwrite the file the weights are still being read from.
  const modelDir = (await resolveModel(a.model, { onProgress: downloadProgress() })).dir;
  if (modelDir === path.resolve(a.out)) throw new Error('--out must differ from --model');
  const ckpt = loadCheckpoint(modelDir);
  const out = path.resolve(a.out);
  // Before saveCheckpoint, whose config.json is written last and marks the folder complete; each
  // file from the first folder that has it (an adapter's own, else its base's), as they are read.
  const folders = modelFolders(modelDir);
  fs.mkdirSync(out, { recursive: true });
  for (const f of PROMPT_FILES) {
    const from = folders.map((d) => path.join(d, f)).find((p) => fs.existsSync(p));
    if (from) writeFileAtomic(path.join(out, f), fs.readFileSync(from));
  }
  saveCheckpoint(out, ckpt.config, materialize(ckpt.weights), { dtype });
  console.error(`wrote ${a.out} (${dtype})`);
  return 0;
}
