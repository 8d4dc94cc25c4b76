// scratchgpt generate: stream a completion to stdout, or print one JSON object with --json.
import { resolveModel } from '../model/resolve.js';
import { generate } from '../model/generation.js';
import { withGenerationDefaults } from '../model/generation-config.js';
import { readModelFolder } from '../model/model-folder.js';
import type { SamplingOptions } from '../model/sampler.js';
import { ModelSession } from '../model/session.js';
import { encode } from '../model/tokenizer.js';
import { integer, progressLine } from './args.js';
import { RUNTIME_OPTIONS, SAMPLING_OPTIONS } from './common-options.js';
import { flag, int, list, parseCommand, str } from './options.js';
import { downloadProgress } from './progress.js';

const GENERATE = {
  name: 'generate',
  usage: 'usage: scratchgpt generate [--model DIR] (--prompt TEXT | --prompt-tokens 15496,11,995) [options]',
  options: {
    model: str({
      arg: 'DIR',
      defaultText: 'the embedded model in weights/',
      help: 'Hugging Face GPT-2 folder (config.json + model.safetensors), or a Hub id ORG/NAME[@REV] (downloaded once into the Hugging Face cache)',
    }),
    lora: str({ arg: 'DIR', help: "a PEFT LoRA adapter folder (or Hub id) merged into --model's weights at load, whatever base the adapter names" }),
    prompt: str({ arg: 'TEXT', help: "prompt text ('<|endoftext|>' is the special token)" }),
    promptTokens: str({ arg: 'IDS', help: 'prompt as comma-separated token ids' }),
    maxTokens: int({ arg: 'N', min: 0, defaultText: "generation_config.json's max_new_tokens, else 64", help: 'tokens to generate' }),
    ...SAMPLING_OPTIONS,
    stop: list({ arg: 'STR', help: 'stop string (repeatable; not included in the output)' }),
    logprobs: int({ arg: 'N', min: 0, help: 'top-N log-probabilities per token (with --json)' }),
    ...RUNTIME_OPTIONS,
    json: flag({ help: 'print one JSON object instead of streaming text' }),
  },
};

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(GENERATE, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  if ((a.prompt === undefined) === (a.promptTokens === undefined)) throw new Error('give exactly one of --prompt and --prompt-tokens');
  const { device, quantize, draft, draftTokens, threads } = a;
  const promptTokens =
    a.prompt !== undefined ? encode(a.prompt) : a.promptTokens!.split(',').map((s) => integer('--prompt-tokens', s.trim(), 0));

  // Checked before anything is downloaded; the model's generation_config.json fills the rest.
  const given: SamplingOptions = { maxTokens: a.maxTokens ?? -1, temperature: a.temperature, topK: a.topK, topP: a.topP, seed: a.seed, stop: a.stop, logprobs: a.logprobs };

  const { dir } = await resolveModel(a.model, { onProgress: downloadProgress() });
  const lora = a.lora === undefined ? undefined : (await resolveModel(a.lora, { onProgress: downloadProgress(), withoutBase: true })).dir;
  const { generation: d } = readModelFolder(dir, undefined, lora);
  const options = withGenerationDefaults({ ...given, maxTokens: given.maxTokens >= 0 ? given.maxTokens : (d.maxTokens ?? 64) }, d);
  const model = await ModelSession.load(dir, {
    lora,
    device,
    threads,
    quantize,
    draft,
    draftTokens,
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
