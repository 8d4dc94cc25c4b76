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
import { choice, parseCommand, str } from './options.js';
import { downloadProgress } from './progress.js';

const CONVERT = {
  name: 'convert',
  usage: 'usage: scratchgpt convert --model DIR --out DIR [--dtype F32|F16|BF16]',
  options: {
    model: str({ arg: 'DIR', required: true, help: 'a Hugging Face GPT-2 folder (config.json + model.safetensors) or Hub id ORG/NAME[@REV]' }),
    out: str({ arg: 'DIR', required: true, help: 'where to write the converted folder (may not be --model)' }),
    dtype: choice(['F32', 'F16', 'BF16'], { default: 'F16', ignoreCase: true, help: 'storage dtype of the new model.safetensors' }),
  },
};

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(CONVERT, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  const { dtype } = a;
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
