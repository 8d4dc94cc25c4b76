// scratchgpt convert: rewrite a Hugging Face GPT-2 folder with another storage dtype — how a
// float32 training checkpoint becomes the half-size float16 folder that ships in weights/.
// Only config.json + model.safetensors are written (no optimizer state, no metrics).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadCheckpoint, materialize, saveCheckpoint } from '../model/checkpoint.js';

const DTYPES = ['F32', 'F16', 'BF16'] as const;
type Dtype = (typeof DTYPES)[number];

const HELP = `usage: scratchgpt convert --model DIR --out DIR [--dtype F32|F16|BF16]

  --model DIR   a Hugging Face GPT-2 folder (config.json + model.safetensors)
  --out DIR     where to write the converted folder (may not be --model)
  --dtype D     storage dtype of the new model.safetensors (default F16)`;

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseArgs({
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
  if (path.resolve(a.model) === path.resolve(a.out)) throw new Error('--out must differ from --model');
  const ckpt = loadCheckpoint(path.resolve(a.model));
  saveCheckpoint(path.resolve(a.out), ckpt.config, materialize(ckpt.weights), { dtype });
  console.error(`wrote ${a.out} (${dtype})`);
  return 0;
}
