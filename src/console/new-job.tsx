// The form that creates a fine-tuning job. An empty field is left out of the request, so the server
// applies its default (src/train/finetune-defaults.ts), which the field shows as its placeholder.
import { useState } from 'preact/hooks';
import { FINETUNE_DEFAULTS as D } from '../train/finetune-defaults.js';
import { ApiError, type Model } from './api.js';
import { createJob, type CreateJob, type DatasetFile, type Job } from './fine-tuning-api.js';
import { bytes, ErrorLine, Field } from './ui.js';

type Method = '' | 'full' | 'last_blocks' | 'lora';

/** The form's text fields, as typed. */
interface Values {
  model: string;
  training_file: string;
  validation_file: string;
  task: '' | 'instruction' | 'classification';
  method: Method;
  last_blocks: string;
  lora_rank: string;
  lora_alpha: string;
  n_epochs: string;
  batch_size: string;
  learning_rate_multiplier: string;
  weight_decay: string;
  max_length: string;
  mask_prompt: '' | 'true' | 'false';
  checkpoint_every_steps: string;
  suffix: string;
  seed: string;
}

const EMPTY: Values = {
  model: '',
  training_file: '',
  validation_file: '',
  task: '',
  method: '',
  last_blocks: '',
  lora_rank: '',
  lora_alpha: '',
  n_epochs: '',
  batch_size: '',
  learning_rate_multiplier: '',
  weight_decay: '',
  max_length: '',
  mask_prompt: '',
  checkpoint_every_steps: '',
  suffix: '',
  seed: '',
};

/** The request for the form's values: only the fields that were filled in. */
function requestOf(v: Values): CreateJob {
  const num = (s: string) => (s.trim() === '' ? undefined : Number(s));
  const given = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
  const method = v.method || undefined;
  return {
    model: v.model,
    training_file: v.training_file,
    ...given({ validation_file: v.validation_file || undefined, suffix: v.suffix.trim() || undefined, seed: num(v.seed) }),
    method: {
      type: 'supervised',
      supervised: { hyperparameters: given({ n_epochs: num(v.n_epochs), batch_size: num(v.batch_size), learning_rate_multiplier: num(v.learning_rate_multiplier) }) },
      scratchgpt: given({
        task: v.task || undefined,
        method,
        last_blocks: method === 'last_blocks' ? num(v.last_blocks) : undefined,
        lora_rank: method === 'lora' ? num(v.lora_rank) : undefined,
        lora_alpha: method === 'lora' ? num(v.lora_alpha) : undefined,
        mask_prompt: v.mask_prompt === '' ? undefined : v.mask_prompt === 'true',
        max_length: num(v.max_length),
        weight_decay: num(v.weight_decay),
        checkpoint_every_steps: num(v.checkpoint_every_steps),
      }),
    },
  };
}

/** 'method.scratchgpt.lora_rank' → 'lora_rank': the form field a server error's param names. */
const fieldOf = (param: string | null): string | undefined => param?.split('.').pop();

export function NewJobForm({ models, files, onCreated }: { models: Model[]; files: DatasetFile[]; onCreated: (job: Job) => void }) {
  const [v, setV] = useState<Values>(EMPTY);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const bases = models.filter((m) => m.task !== 'classification');
  const model = v.model || bases[0]?.id || '';
  const trainingFile = v.training_file || files[0]?.id || '';
  const bad = error instanceof ApiError ? fieldOf(error.param) : undefined;

  /** The props that bind a control to the form field `k`, with its error state. */
  const bind = <K extends keyof Values>(k: K) => ({
    name: k,
    value: v[k],
    'aria-invalid': bad === k ? ('true' as const) : undefined,
    'aria-describedby': bad === k ? 'new-job-error' : undefined,
    onInput: (e: Event) => setV((old) => ({ ...old, [k]: (e.currentTarget as HTMLInputElement).value })),
  });
  const number = { type: 'number', inputMode: 'decimal' } as const;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await createJob(requestOf({ ...v, model, training_file: trainingFile })));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const fileOptions = files.map((f) => (
    <option value={f.id}>
      {f.filename} · {bytes(f.bytes)} · {f.id}
    </option>
  ));

  return (
    <form class="new-job" onSubmit={submit} aria-describedby={error ? 'new-job-error' : undefined}>
      <div class="grid wide">
        <Field label="Base model">
          <select {...bind('model')} value={model} required>
            {bases.map((m) => (
              <option value={m.id}>{m.id}</option>
            ))}
          </select>
        </Field>
        <Field label="Training file">
          <select {...bind('training_file')} value={trainingFile} required>
            {files.length === 0 && <option value="">Upload a dataset first</option>}
            {fileOptions}
          </select>
        </Field>
        <Field label="Validation file (optional)">
          <select {...bind('validation_file')}>
            <option value="">None</option>
            {fileOptions}
          </select>
        </Field>
      </div>
      <div class="grid">
        <Field label="Task" hint="Auto: from the training file's records">
          <select {...bind('task')}>
            <option value="">Auto</option>
            <option value="instruction">Instruction</option>
            <option value="classification">Classification</option>
          </select>
        </Field>
        <Field label="Method" hint={`Default: ${D.method.instruction.replace('_', ' ')} for instruction, ${D.method.classification.replace('_', ' ')} for classification`}>
          <select {...bind('method')}>
            <option value="">Default</option>
            <option value="full">Full</option>
            <option value="last_blocks">Last blocks</option>
            <option value="lora">LoRA</option>
          </select>
        </Field>
        {v.method === 'last_blocks' && (
          <Field label="Blocks to train">
            <input {...bind('last_blocks')} {...number} min={1} step={1} placeholder={String(D.lastBlocks)} />
          </Field>
        )}
        {v.method === 'lora' && (
          <>
            <Field label="LoRA rank">
              <input {...bind('lora_rank')} {...number} min={1} step={1} placeholder={String(D.lora.rank)} />
            </Field>
            <Field label="LoRA alpha">
              <input {...bind('lora_alpha')} {...number} min={0} step="any" placeholder={String(D.lora.alpha)} />
            </Field>
          </>
        )}
      </div>
      <fieldset>
        <legend>Hyperparameters</legend>
        <div class="grid">
          <Field label="Epochs">
            <input {...bind('n_epochs')} {...number} min={1} step={1} placeholder={`${D.epochs.instruction} (classification ${D.epochs.classification})`} />
          </Field>
          <Field label="Batch size">
            <input {...bind('batch_size')} {...number} min={1} step={1} placeholder={String(D.batchSize)} />
          </Field>
          <Field label="Learning-rate multiplier">
            <input {...bind('learning_rate_multiplier')} {...number} min={0} step="any" placeholder="1" />
          </Field>
          <Field label="Weight decay">
            <input {...bind('weight_decay')} {...number} min={0} step="any" placeholder={String(D.weightDecay)} />
          </Field>
          <Field label="Max length (tokens)">
            <input {...bind('max_length')} {...number} min={2} step={1} placeholder="model's context" />
          </Field>
          <Field label="Mask prompt" hint="On: learn the responses only">
            <select {...bind('mask_prompt')}>
              <option value="">Default ({D.maskPrompt ? 'on' : 'off'})</option>
              <option value="true">On</option>
              <option value="false">Off</option>
            </select>
          </Field>
          <Field label="Checkpoint every N steps">
            <input {...bind('checkpoint_every_steps')} {...number} min={1} step={1} placeholder="epoch ends only" />
          </Field>
        </div>
      </fieldset>
      <div class="grid">
        <Field label="Suffix" hint="Part of the model's name: ft:base:suffix:job">
          <input {...bind('suffix')} type="text" placeholder="none" autocomplete="off" />
        </Field>
        <Field label="Seed">
          <input {...bind('seed')} {...number} min={0} step={1} placeholder="random" />
        </Field>
      </div>
      <div class="row">
        <button type="submit" disabled={busy || !model || !trainingFile}>
          {busy ? 'Creating…' : 'Create job'}
        </button>
      </div>
      <div id="new-job-error">
        <ErrorLine error={error} />
      </div>
    </form>
  );
}
