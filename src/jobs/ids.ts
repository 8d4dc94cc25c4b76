// Generated ids ('file-…', 'ftjob-…', 'batch_…') and the strict checks every id passes before it is used in a
// path or a query. Ids are 24 base62 characters after the prefix, like OpenAI's.
import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const LENGTH = 24;

function random62(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248 && out.length < n) out += ALPHABET[b % 62]; // 248 = 4 × 62: no modulo bias
    }
  }
  return out;
}

export const FILE_ID = /^file-[A-Za-z0-9]{24}$/;
export const JOB_ID = /^ftjob-[A-Za-z0-9]{24}$/;
export const BATCH_ID = /^batch_[A-Za-z0-9]{24}$/;
/** Event and checkpoint ids carry their job's id and a sequence number: cursors for `after`. */
export const EVENT_ID = /^ftevent-([A-Za-z0-9]{24})-(\d{1,9})$/;
export const CHECKPOINT_ID = /^ftckpt-([A-Za-z0-9]{24})-(\d{1,9})$/;

export const newFileId = () => `file-${random62(LENGTH)}`;
export const newJobId = () => `ftjob-${random62(LENGTH)}`;
export const newBatchId = () => `batch_${random62(LENGTH)}`;
/** The id of one line's result in a batch's output or error file (OpenAI's 'batch_req_…'). */
export const newBatchRequestId = () => `batch_req_${random62(LENGTH)}`;

const jobKey = (jobId: string) => jobId.slice('ftjob-'.length);
export const eventId = (jobId: string, seq: number) => `ftevent-${jobKey(jobId)}-${seq}`;
export const checkpointId = (jobId: string, step: number) => `ftckpt-${jobKey(jobId)}-${step}`;

/** The sequence number in an event or checkpoint id of this job, or undefined when it is not one. */
export function cursorSeq(re: RegExp, id: string, jobId: string): number | undefined {
  const m = re.exec(id);
  return m && m[1] === jobKey(jobId) ? Number(m[2]) : undefined;
}

/**
 * The id of a finetuned model, OpenAI style: `ft:<base>:<suffix>:<job-id>` (an empty suffix gives
 * `ft:<base>::<job-id>`). Finetuning a finetuned model names the original base.
 */
export function fineTunedModelId(base: string, suffix: string | null, jobId: string): string {
  const root = base.startsWith('ft:') ? base.split(':')[1]! : base;
  return `ft:${root}:${suffix ?? ''}:${jobId}`;
}

/** The model id of a job's checkpoint (OpenAI's `fine_tuned_model_checkpoint`), servable like the final model. */
export function checkpointModelId(fineTunedModel: string, step: number): string {
  return `${fineTunedModel}:ckpt-step-${step}`;
}

export const isCheckpointModelId = (id: string): boolean => /:ckpt-step-\d+$/.test(id);

/** A folder name for a finetuned model: its id with anything outside [A-Za-z0-9._-] as '_'. */
export function modelFolderName(modelId: string): string {
  const safe = modelId.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return safe.length <= 200 ? safe : safe.slice(-200); // the job id at the end keeps it unique
}
