// The playground's option fields → the request body. Every field is text as typed; an empty one
// is left out, so the server's (or the model's generation_config's) default applies. Ranges are
// the server's to check: its 400 names the parameter.

export type Mode = 'chat' | 'completions';

/** OpenAI's response_format types, and vLLM's structured_outputs regex and choice. */
export type ResponseFormatType = '' | 'text' | 'json_object' | 'json_schema' | 'regex' | 'choice';

export interface OptionsForm {
  max_tokens: string;
  temperature: string;
  top_p: string;
  top_k: string;
  min_p: string;
  presence_penalty: string;
  frequency_penalty: string;
  repetition_penalty: string;
  seed: string;
  n: string;
  /** Up to 4; `\n` and `\t` typed as escapes. */
  stop: string[];
  /** A JSON object of token id → bias. */
  logit_bias: string;
  ignore_eos: boolean;
  /** Chat: logprobs on, with `top_logprobs` alternatives. */
  logprobs: boolean;
  top_logprobs: string;
  /** Completions: logprobs 0..5 (empty: off). */
  completion_logprobs: string;
  echo: boolean;
  response_format: ResponseFormatType;
  schema_name: string;
  schema: string;
  regex: string;
  /** One choice per line. */
  choices: string;
}

export const DEFAULT_OPTIONS: OptionsForm = {
  max_tokens: '64',
  temperature: '',
  top_p: '',
  top_k: '',
  min_p: '',
  presence_penalty: '',
  frequency_penalty: '',
  repetition_penalty: '',
  seed: '',
  n: '',
  stop: ['', '', '', ''],
  logit_bias: '',
  ignore_eos: false,
  logprobs: false,
  top_logprobs: '',
  completion_logprobs: '',
  echo: false,
  response_format: '',
  schema_name: 'answer',
  schema: '{\n  "type": "object",\n  "properties": { "answer": { "type": "string" } },\n  "required": ["answer"]\n}',
  regex: '',
  choices: '',
};

/** A field the page could not turn into JSON; `field` is the control's name, to focus it. */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function numberOf(form: OptionsForm, field: keyof OptionsForm, label: string): number | undefined {
  const s = String(form[field]).trim();
  if (s === '') return undefined;
  const v = Number(s);
  if (!Number.isFinite(v)) throw new FieldError(field, `${label} must be a number; got '${s}'.`);
  return v;
}

/** `\n`, `\t` and `\\` as typed in a one-line field → the characters. */
export function unescape(s: string): string {
  return s.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}

function jsonObjectOf(text: string, field: string, label: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FieldError(field, `${label} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FieldError(field, `${label} must be a JSON object.`);
  return v as Record<string, unknown>;
}

/** The sampling fields of a request in `mode` (everything but model and prompt/messages). */
export function samplingBody(form: OptionsForm, mode: Mode): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const numbers: [keyof OptionsForm, string][] = [
    ['max_tokens', 'Max tokens'],
    ['temperature', 'Temperature'],
    ['top_p', 'Top p'],
    ['top_k', 'Top k'],
    ['min_p', 'Min p'],
    ['presence_penalty', 'Presence penalty'],
    ['frequency_penalty', 'Frequency penalty'],
    ['repetition_penalty', 'Repetition penalty'],
    ['seed', 'Seed'],
    ['n', 'Choices (n)'],
  ];
  for (const [field, label] of numbers) {
    const v = numberOf(form, field, label);
    if (v !== undefined) body[field] = v;
  }
  const stop = form.stop.filter((s) => s !== '').map(unescape);
  if (stop.length) body.stop = stop;
  if (form.logit_bias.trim()) body.logit_bias = jsonObjectOf(form.logit_bias, 'logit_bias', 'Logit bias');
  if (form.ignore_eos) body.ignore_eos = true;
  if (mode === 'chat') {
    if (form.logprobs) {
      body.logprobs = true;
      const top = numberOf(form, 'top_logprobs', 'Alternatives');
      if (top !== undefined) body.top_logprobs = top;
    }
  } else {
    const lp = numberOf(form, 'completion_logprobs', 'Logprobs');
    if (lp !== undefined) body.logprobs = lp;
    if (form.echo) body.echo = true;
  }
  if (form.response_format === 'json_schema') {
    body.response_format = {
      type: 'json_schema',
      json_schema: { name: form.schema_name.trim(), schema: jsonObjectOf(form.schema, 'schema', 'JSON schema'), strict: true },
    };
  } else if (form.response_format === 'regex') {
    body.structured_outputs = { regex: form.regex };
  } else if (form.response_format === 'choice') {
    body.structured_outputs = { choice: form.choices.split('\n').filter((c) => c !== '') };
  } else if (form.response_format) {
    body.response_format = { type: form.response_format };
  }
  return body;
}

/** Whether the answer comes with per-token logprobs, so the token view can show them. */
export function wantsLogprobs(form: OptionsForm, mode: Mode): boolean {
  return mode === 'chat' ? form.logprobs : form.completion_logprobs.trim() !== '';
}
