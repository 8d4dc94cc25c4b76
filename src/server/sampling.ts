// Request fields shared by /v1/completions and /v1/chat/completions (OpenAI names, plus the vLLM
// and llama.cpp extras top_k, min_p, repetition_penalty, ignore_eos) and their mapping to the
// model layer's SamplingOptions.
import { z } from 'zod';
import { InvalidParameterError } from '../model/errors.js';
import { withGenerationDefaults, type GenerationDefaults } from '../model/generation-config.js';
import { validateSamplingOptions, type SamplingOptions } from '../model/sampler.js';

export const samplingFields = {
  model: z.string(),
  max_tokens: z.number().int().min(0).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.number().int().min(1).max(128).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().nullish() }).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string(), z.number().min(-100).max(100)).nullish(),
  seed: z.number().int().nullish(),
  user: z.string().nullish(), // accepted for compatibility; not used
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  ignore_eos: z.boolean().nullish(),
};

type SamplingBody = z.infer<z.ZodObject<typeof samplingFields>>;

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

export function stopList(stop: string | string[] | null | undefined): string[] {
  return stop == null ? [] : typeof stop === 'string' ? [stop] : stop;
}

/**
 * SamplingOptions for choice `index` of a request. With a seed, choice i uses seed + i: the n
 * choices differ, each is reproducible, and choice 0 equals the same request with n = 1.
 * Throws InvalidParameterError (→ 400 naming the parameter) for values the model rejects.
 */
export function samplingOptions(
  b: SamplingBody,
  extra: { maxTokens: number; stop: string[]; logprobs?: number; vocabSize: number; defaults?: GenerationDefaults },
  index = 0,
): SamplingOptions {
  // The model's generation_config.json fills the fields the request leaves unset.
  const o: SamplingOptions = withGenerationDefaults({
    maxTokens: extra.maxTokens,
    temperature: opt(b.temperature),
    topP: opt(b.top_p),
    topK: opt(b.top_k),
    minP: opt(b.min_p),
    presencePenalty: opt(b.presence_penalty),
    frequencyPenalty: opt(b.frequency_penalty),
    repetitionPenalty: opt(b.repetition_penalty),
    logitBias: b.logit_bias ? Object.fromEntries(Object.entries(b.logit_bias).map(([k, v]) => [Number(k), v])) : undefined,
    seed: b.seed == null ? undefined : b.seed + index,
    logprobs: extra.logprobs,
    ignoreEos: opt(b.ignore_eos),
    stop: extra.stop,
  }, extra.defaults ?? {});
  if (b.logit_bias) {
    // Keys must be token ids written as integers ('50256'), not '1e3' or ' 7'.
    for (const k of Object.keys(b.logit_bias)) if (!/^\d+$/.test(k)) throw new InvalidParameterError('logit_bias', `invalid token id '${k}'`);
  }
  validateSamplingOptions(o, extra.vocabSize);
  return o;
}
