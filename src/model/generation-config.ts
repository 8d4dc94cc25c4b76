// A model folder's generation_config.json: the sampling defaults its authors chose, applied where
// a request leaves a field unset (as vLLM does with `--generation-config auto`). Only the fields
// with a meaning here are read; the rest (beam search, lengths in other units) are ignored.
import path from 'node:path';
import { readJsonIfExists } from './json-file.js';
import type { SamplingOptions } from './sampler.js';

export type GenerationDefaults = Pick<SamplingOptions, 'temperature' | 'topK' | 'topP' | 'minP' | 'repetitionPenalty'> & {
  /** max_new_tokens: the completion length when a request gives none. */
  maxTokens?: number;
};

export function readGenerationDefaults(dir: string): GenerationDefaults {
  const file = path.join(dir, 'generation_config.json');
  const j = readJsonIfExists(file);
  if (!j) return {};
  const num = (k: string, ok: (v: number) => boolean): number | undefined => {
    const v = j[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !ok(v)) throw new Error(`${file}: ${k} must be a number in range, got ${JSON.stringify(v)}`);
    return v;
  };
  const out: GenerationDefaults = {
    // do_sample false is transformers' greedy decoding; its temperature then does not apply.
    temperature: j.do_sample === false ? 0 : num('temperature', (v) => v >= 0),
    topK: j.do_sample === false ? undefined : num('top_k', (v) => Number.isInteger(v) && v >= 0),
    topP: j.do_sample === false ? undefined : num('top_p', (v) => v > 0 && v <= 1),
    minP: j.do_sample === false ? undefined : num('min_p', (v) => v >= 0 && v <= 1),
    repetitionPenalty: num('repetition_penalty', (v) => v > 0),
    maxTokens: num('max_new_tokens', (v) => Number.isInteger(v) && v >= 0),
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as GenerationDefaults;
}

type Defaulted = Pick<SamplingOptions, 'temperature' | 'topK' | 'topP' | 'minP' | 'repetitionPenalty'>;

/** `given` with the model's defaults in the sampling fields it leaves unset (maxTokens is each caller's rule). */
export function withGenerationDefaults<T extends Defaulted>(given: T, d: GenerationDefaults): T {
  return {
    ...given,
    temperature: given.temperature ?? d.temperature,
    topK: given.topK ?? d.topK,
    topP: given.topP ?? d.topP,
    minP: given.minP ?? d.minP,
    repetitionPenalty: given.repetitionPenalty ?? d.repetitionPenalty,
  };
}
