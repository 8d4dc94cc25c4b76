// Request fields shared by /v1/completions and /v1/chat/completions (OpenAI names, plus the vLLM
// and llama.cpp extras top_k, min_p, repetition_penalty, ignore_eos, and structured outputs), with
// OpenAI's ranges, and their mapping to the model layer's SamplingOptions.
import { z } from 'zod';
import { compileConstraint, ConstraintError, type ConstraintSpec } from '../model/constraint.js';
import { withGenerationDefaults, type GenerationDefaults } from '../model/generation-config.js';
import type { SamplingOptions } from '../model/sampler.js';
import { badRequest } from './errors.js';

const jsonSchema = z.record(z.string(), z.unknown());

/** OpenAI's rule for the names of schemas (response_format) and functions (tools). */
export const OPENAI_NAME = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 characters of a-z, A-Z, 0-9, _ and -');

/** OpenAI's response_format. */
const responseFormat = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({
    type: z.literal('json_schema'),
    json_schema: z.strictObject({
      name: OPENAI_NAME,
      description: z.string().nullish(),
      schema: jsonSchema.nullish(),
      strict: z.boolean().nullish(),
    }),
  }),
]);

/** vLLM's structured_outputs: exactly one kind of constraint. */
const structuredOutputs = z
  .strictObject({
    json: z.union([jsonSchema, z.string()]).nullish(), // vLLM also takes the schema as a JSON string
    regex: z.string().nullish(),
    choice: z.array(z.string()).min(1).nullish(),
    json_object: z.boolean().nullish(),
  })
  .refine((o) => [o.json, o.regex, o.choice, o.json_object || undefined].filter((v) => v != null).length === 1, 'must set exactly one of json, regex, choice, json_object');

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
  response_format: responseFormat.nullish(),
  structured_outputs: structuredOutputs.nullish(),
  // vLLM's older names for structured_outputs' fields.
  guided_json: z.union([jsonSchema, z.string()]).nullish(),
  guided_regex: z.string().nullish(),
  guided_choice: z.array(z.string()).min(1).nullish(),
};

export type SamplingBody = z.infer<z.ZodObject<typeof samplingFields>>;

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

export function stopList(stop: string | string[] | null | undefined): string[] {
  return stop == null ? [] : typeof stop === 'string' ? [stop] : stop;
}

/** A schema given as a JSON string (vLLM accepts both), parsed, or the 400 naming `param`. */
function schemaOf(s: Record<string, unknown> | string, param: string): object {
  if (typeof s !== 'string') return s;
  try {
    const parsed: unknown = JSON.parse(s);
    if (typeof parsed === 'object' && parsed !== null) return parsed;
  } catch {
    // reported below
  }
  throw badRequest(`Invalid '${param}': not a JSON Schema object`, param);
}

/** The request's structured-output constraint with the field it came from, before compiling. */
function requestedConstraint(b: SamplingBody): { spec: ConstraintSpec; param: string } | undefined {
  const found: { spec: ConstraintSpec; param: string }[] = [];
  const rf = b.response_format;
  if (rf?.type === 'json_object') found.push({ spec: { type: 'json_object' }, param: 'response_format' });
  if (rf?.type === 'json_schema') found.push({ spec: { type: 'json_schema', schema: rf.json_schema.schema ?? {} }, param: 'response_format' });
  const so = b.structured_outputs;
  if (so?.json != null) found.push({ spec: { type: 'json_schema', schema: schemaOf(so.json, 'structured_outputs') }, param: 'structured_outputs' });
  if (so?.regex != null) found.push({ spec: { type: 'regex', pattern: so.regex }, param: 'structured_outputs' });
  if (so?.choice != null) found.push({ spec: { type: 'choice', choices: so.choice }, param: 'structured_outputs' });
  if (so?.json_object) found.push({ spec: { type: 'json_object' }, param: 'structured_outputs' });
  if (b.guided_json != null) found.push({ spec: { type: 'json_schema', schema: schemaOf(b.guided_json, 'guided_json') }, param: 'guided_json' });
  if (b.guided_regex != null) found.push({ spec: { type: 'regex', pattern: b.guided_regex }, param: 'guided_regex' });
  if (b.guided_choice != null) found.push({ spec: { type: 'choice', choices: b.guided_choice }, param: 'guided_choice' });
  if (found.length > 1) throw badRequest(`Only one structured-output constraint may be given; got ${found.map((f) => f.param).join(' and ')}.`, found[1]!.param);
  return found[0];
}

/**
 * The request's constraint, compiled here once so that a schema or regex the engine cannot take
 * is the client's 400 naming the field, not a failed sequence on the model thread.
 */
export function requestConstraint(b: SamplingBody): ConstraintSpec | undefined {
  const r = requestedConstraint(b);
  return r && checkConstraint(r.spec, r.param);
}

/** `spec` once it compiles (then cached for this thread), or the 400 that names `param` and what the engine refused. */
export function checkConstraint(spec: ConstraintSpec, param: string): ConstraintSpec {
  try {
    compileConstraint(spec);
  } catch (e) {
    if (e instanceof ConstraintError) throw badRequest(`Invalid '${param}': ${e.message}`, param, 'invalid_parameter');
    throw e;
  }
  return spec;
}

/** What a choice's options take from admission rather than from the body's sampling fields. */
export interface ChoiceSettings {
  maxTokens: number;
  stop: string[];
  logprobs?: number;
  /** logit_bias with its keys checked against the vocabulary (admission.ts). */
  logitBias?: Record<number, number>;
  /** From requestConstraint: checked to compile. */
  constraint?: ConstraintSpec;
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
      constraint: c.constraint,
    },
    c.defaults,
  );
}
