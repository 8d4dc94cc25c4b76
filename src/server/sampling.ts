// Request fields shared by /v1/completions and /v1/chat/completions (OpenAI names, plus the vLLM
// and llama.cpp extras top_k, min_p, repetition_penalty, ignore_eos), with OpenAI's ranges, and
// their mapping to the model layer's SamplingOptions.
import { z } from 'zod';
import { withGenerationDefaults, type GenerationDefaults } from '../model/generation-config.js';
import type { SamplingOptions } from '../model/sampler.js';

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

export type SamplingBody = z.infer<z.ZodObject<typeof samplingFields>>;

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

export function stopList(stop: string | string[] | null | undefined): string[] {
  return stop == null ? [] : typeof stop === 'string' ? [stop] : stop;
}

/** What a choice's options take from admission rather than from the body's sampling fields. */
export interface ChoiceSettings {
  maxTokens: number;
  stop: string[];
  logprobs?: number;
  /** logit_bias with its keys checked against the vocabulary (admission.ts). */
  logitBias?: Record<number, number>;
  defaults: GenerationDefaults;
}

/**
 * SamplingOptions for choice `index` of a request. With a seed, choice i uses seed + i: the n
 * choices differ, each is reproducible, and choice 0 equals the same request with n = 1.
 */
export function samplingOptions(b: SamplingBody, c: ChoiceSettings, index = 0): SamplingOptions {
  // The model's generation_config.json fills the fields the request leaves unset.
  return withGenerationDefaults(
    {
      maxTokens: c.maxTokens,
      temperature: opt(b.temperature),
      topP: opt(b.top_p),
      topK: opt(b.top_k),
      minP: opt(b.min_p),
      presencePenalty: opt(b.presence_penalty),
      frequencyPenalty: opt(b.frequency_penalty),
      repetitionPenalty: opt(b.repetition_penalty),
      logitBias: c.logitBias,
      seed: b.seed == null ? undefined : b.seed + index,
      logprobs: c.logprobs,
      ignoreEos: opt(b.ignore_eos),
      stop: c.stop,
    },
    c.defaults,
  );
}
