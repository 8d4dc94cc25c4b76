// scratchgpt generate: stream a completion to stdout, or print one JSON object with --json.
import { resolveModel } from '../model/resolve.js';
import { generate } from '../model/generation.js';
import { withGenerationDefaults } from '../model/generation-config.js';
import { readModelFolder } from '../model/model-folder.js';
import type { SamplingOptions } from '../model/sampler.js';
import { ModelSession } from '../model/session.js';
import { encode } from '../model/tokenizer.js';
import { integer, number, parseOptions, progressLine, runtimeFlags } from './args.js';
import { downloadProgress } from './progress.js';

const HELP = `usage: scratchgpt generate [--model DIR] (--prompt TEXT | --prompt-tokens 15496,11,995) [options]

  --model DIR            Hugging Face GPT-2 folder (config.json + model.safetensors), or a Hub
                         id ORG/NAME[@REV] (downloaded once into the Hugging Face cache);
                         default: the embedded model in weights/
  --lora DIR             a PEFT LoRA adapter folder (or Hub id) merged into --model's weights at
                         load, whatever base the adapter names
  --prompt TEXT          prompt text ('<|endoftext|>' is the special token)
  --prompt-tokens IDS    prompt as comma-separated token ids
  --max-tokens N         tokens to generate (default: generation_config.json's max_new_tokens, else 64)
  --temperature T        0 = greedy (default: generation_config.json's, else 1)
  --top-k K, --top-p P   sampling filters (default: generation_config.json's, else off)
  --seed S               same seed and inputs → same tokens
  --stop STR             stop string (repeatable; not included in the output)
  --logprobs N           top-N log-probabilities per token (with --json)
  --device D             cpu | cuda | webgpu (default cpu)
  --threads N            intra-op threads (default: all cores)
  --quantize int8        decode with blockwise int8 weights (faster, not fp32-exact)
  --json                 print one JSON object instead of streaming text`;

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseOptions('generate', {
    args: argv,
    options: {
      model: { type: 'string' },
      lora: { type: 'string' },
      prompt: { type: 'string' },
      'prompt-tokens': { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      logprobs: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      threads: { type: 'string' },
      quantize: { type: 'string', default: 'none' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  if ((a.prompt === undefined) === (a['prompt-tokens'] === undefined)) throw new Error('give exactly one of --prompt and --prompt-tokens');
  const { device, quantize, threads } = runtimeFlags(a);
  const promptTokens =
    a.prompt !== undefined ? encode(a.prompt) : a['prompt-tokens']!.split(',').map((s) => integer('--prompt-tokens', s.trim(), 0));

  // Checked before anything is downloaded; the model's generation_config.json fills the rest.
  const given: SamplingOptions = {
    maxTokens: a['max-tokens'] === undefined ? -1 : integer('--max-tokens', a['max-tokens'], 0),
    temperature: a.temperature === undefined ? undefined : number('--temperature', a.temperature),
    topK: a['top-k'] === undefined ? undefined : integer('--top-k', a['top-k'], 0),
    topP: a['top-p'] === undefined ? undefined : number('--top-p', a['top-p']),
    seed: a.seed === undefined ? undefined : integer('--seed', a.seed),
    stop: a.stop,
    logprobs: a.logprobs === undefined ? undefined : integer('--logprobs', a.logprobs, 0),
  };

  const { dir } = await resolveModel(a.model, { onProgress: downloadProgress() });
  const lora = a.lora === undefined ? undefined : (await resolveModel(a.lora, { onProgress: downloadProgress(), withoutBase: true })).dir;
  const { generation: d } = readModelFolder(dir, undefined, lora);
  const options = withGenerationDefaults({ ...given, maxTokens: given.maxTokens >= 0 ? given.maxTokens : (d.maxTokens ?? 64) }, d);
  const model = await ModelSession.load(dir, {
    lora,
    device,
    threads,
    quantize,
    onProgress: progressLine('loading weights'),
  });
  if (promptTokens.some((t) => t >= model.config.vocabSize)) throw new Error(`--prompt-tokens: ids must be below the vocabulary size ${model.config.vocabSize}`);

  const steps = [];
  for await (const step of generate(model, promptTokens, options)) {
    if (!a.json) process.stdout.write(step.text);
    steps.push(step);
  }
  if (a.json) {
    const out: Record<string, unknown> = {
      prompt_tokens: promptTokens,
      tokens: steps.map((s) => s.token),
      text: steps.map((s) => s.text).join(''),
      finish_reason: steps.at(-1)?.finishReason ?? 'length',
    };
    if (options.logprobs !== undefined) {
      out.logprobs = steps.map((s) => ({ token: s.token, logprob: s.logprob, top_logprobs: s.topLogprobs ?? [] }));
    }
    console.log(JSON.stringify(out));
  } else process.stdout.write('\n');
  await model.close();
  return 0;
}
