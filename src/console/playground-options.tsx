// The playground's sampling options: the common ones in view, the rarely used under "More
// options". Every field may be left empty: then it is not sent and the server's default applies.
import type { Mode, OptionsForm, ResponseFormatType } from './request-body.js';
import { Field } from './ui.js';

type Set = <K extends keyof OptionsForm>(key: K, value: OptionsForm[K]) => void;

/** A number field; `name` is the option's own, so an error about it can focus it. */
function NumberField({ form, set, name, label, hint, min, max, step, disabled }: { form: OptionsForm; set: Set; name: keyof OptionsForm; label: string; hint?: string; min?: number; max?: number; step?: number | 'any'; disabled?: boolean }) {
  return (
    <Field id={`pg-${name}`} label={label} hint={hint}>
      <input type="number" name={name} inputMode="decimal" min={min} max={max} step={step ?? 'any'} placeholder="default" disabled={disabled} value={form[name] as string} onInput={(e) => set(name, e.currentTarget.value as never)} />
    </Field>
  );
}

export function PlaygroundOptions({ form, set, mode }: { form: OptionsForm; set: Set; mode: Mode }) {
  return (
    <>
      <h2 id="options-title">Options</h2>
      <p class="hint">Empty fields are not sent: the server's defaults apply.</p>
      <div class="options-grid">
        <NumberField form={form} set={set} name="max_tokens" label="Max tokens" min={0} step={1} />
        <NumberField form={form} set={set} name="temperature" label="Temperature" hint="0–2; 0 is greedy" min={0} max={2} step={0.1} />
        <NumberField form={form} set={set} name="top_p" label="Top p" min={0} max={1} step={0.05} />
        <NumberField form={form} set={set} name="seed" label="Seed" step={1} />
        <NumberField form={form} set={set} name="n" label="Choices (n)" min={1} max={128} step={1} />
        {mode === 'chat' ? (
          <>
            <label class="field check">
              <input type="checkbox" name="logprobs" checked={form.logprobs} onChange={(e) => set('logprobs', e.currentTarget.checked)} />
              <span class="field-label">Token probabilities (logprobs)</span>
            </label>
            <NumberField form={form} set={set} name="top_logprobs" label="Alternatives (top_logprobs)" hint="0–20, with logprobs" min={0} max={20} step={1} disabled={!form.logprobs} />
          </>
        ) : (
          <NumberField form={form} set={set} name="completion_logprobs" label="Logprobs" hint="0–5 alternatives; empty: off" min={0} max={5} step={1} />
        )}
      </div>
      <fieldset class="stops">
        <legend>Stop sequences (up to 4)</legend>
        <div class="options-grid">
          {form.stop.map((s, i) => (
            <Field id={`pg-stop-${i}`} label={`Stop ${i + 1}`}>
              <input
                type="text"
                name={`stop-${i}`}
                value={s}
                onInput={(e) => {
                  const stop = [...form.stop];
                  stop[i] = e.currentTarget.value;
                  set('stop', stop);
                }}
              />
            </Field>
          ))}
        </div>
        <small class="hint">Type \n for a newline, \t for a tab.</small>
      </fieldset>
      <details class="more">
        <summary>More options</summary>
        <div class="options-grid">
          <NumberField form={form} set={set} name="top_k" label="Top k" hint="-1 or 0: off" min={-1} step={1} />
          <NumberField form={form} set={set} name="min_p" label="Min p" min={0} max={1} step={0.01} />
          <NumberField form={form} set={set} name="presence_penalty" label="Presence penalty" min={-2} max={2} step={0.1} />
          <NumberField form={form} set={set} name="frequency_penalty" label="Frequency penalty" min={-2} max={2} step={0.1} />
          <NumberField form={form} set={set} name="repetition_penalty" label="Repetition penalty" hint="> 0; 1 is off" min={0} step={0.05} />
          <label class="field check">
            <input type="checkbox" name="ignore_eos" checked={form.ignore_eos} onChange={(e) => set('ignore_eos', e.currentTarget.checked)} />
            <span class="field-label">Ignore end of text (ignore_eos)</span>
          </label>
          {mode === 'completions' && (
            <label class="field check">
              <input type="checkbox" name="echo" checked={form.echo} onChange={(e) => set('echo', e.currentTarget.checked)} />
              <span class="field-label">Echo the prompt</span>
            </label>
          )}
        </div>
        <Field id="pg-logit-bias" label="Logit bias (JSON: token id → -100..100)">
          <textarea name="logit_bias" rows={2} class="mono" placeholder='{"50256": -100}' value={form.logit_bias} onInput={(e) => set('logit_bias', e.currentTarget.value)} />
        </Field>
        <Field id="pg-response-format" label="Response format or constraint">
          <select name="response_format" value={form.response_format} onChange={(e) => set('response_format', e.currentTarget.value as ResponseFormatType)}>
            <option value="">default (not sent)</option>
            <option value="text">text</option>
            <option value="json_object">json_object</option>
            <option value="json_schema">json_schema</option>
            <option value="regex">regex (structured_outputs)</option>
            <option value="choice">choice (structured_outputs)</option>
          </select>
        </Field>
        {form.response_format === 'regex' && (
          <Field id="pg-regex" label="Regular expression" hint="The whole output matches it.">
            <input type="text" name="regex" class="mono" value={form.regex} onInput={(e) => set('regex', e.currentTarget.value)} />
          </Field>
        )}
        {form.response_format === 'choice' && (
          <Field id="pg-choices" label="Choices (one per line)" hint="The output is exactly one of them.">
            <textarea name="choices" rows={3} value={form.choices} onInput={(e) => set('choices', e.currentTarget.value)} />
          </Field>
        )}
        {form.response_format === 'json_schema' && (
          <>
            <Field id="pg-schema-name" label="Schema name">
              <input type="text" name="schema_name" value={form.schema_name} onInput={(e) => set('schema_name', e.currentTarget.value)} />
            </Field>
            <Field id="pg-schema" label="JSON schema">
              <textarea name="schema" rows={7} class="mono" value={form.schema} onInput={(e) => set('schema', e.currentTarget.value)} />
            </Field>
          </>
        )}
      </details>
    </>
  );
}
