// The fine-tuning side of the API as the console uses it: datasets (files), jobs, their events and
// checkpoints, with the shapes the server returns (src/server/files.ts, src/server/fine-tuning.ts).
import { getJson, postJson, request, type List } from './api.js';

export interface DatasetFile {
  id: string;
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
}

export type JobStatus = 'validating_files' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TERMINAL: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];
export const isTerminal = (status: JobStatus): boolean => TERMINAL.includes(status);

export interface Hyperparameters {
  n_epochs: number;
  batch_size: number;
  learning_rate_multiplier: number;
}

export interface Job {
  id: string;
  model: string;
  created_at: number;
  finished_at: number | null;
  fine_tuned_model: string | null;
  status: JobStatus;
  training_file: string;
  validation_file: string | null;
  hyperparameters: Hyperparameters;
  trained_tokens: number | null;
  error: { code: string; message: string; param: string | null } | null;
  seed: number;
  /** Unix seconds, from the runner's pace so far; null until it has one. */
  estimated_finish: number | null;
  method: { type: string; scratchgpt?: { task: string; method: string } & Record<string, unknown> };
  user_provided_suffix: string | null;
}

export interface Metrics {
  step: number;
  total_steps: number;
  epoch: number;
  /** null at step 0, where there is no training step yet (NaN on the server). */
  train_loss: number | null;
  valid_loss?: number | null;
  valid_accuracy?: number | null;
  tokens_per_second: number;
}

export interface JobEvent {
  id: string;
  created_at: number;
  level: 'info' | 'warn' | 'error';
  message: string;
  type: 'message' | 'metrics';
  data: Partial<Metrics> & Record<string, unknown>;
}

export interface Checkpoint {
  id: string;
  created_at: number;
  fine_tuned_model_checkpoint: string;
  step_number: number;
  metrics: Record<string, number>;
}

/** The create-job body the form builds; absent fields take the server's defaults. */
export interface CreateJob {
  model: string;
  training_file: string;
  validation_file?: string;
  suffix?: string;
  seed?: number;
  method: {
    type: 'supervised';
    supervised: { hyperparameters: Partial<Hyperparameters> };
    scratchgpt: Record<string, string | number | boolean>;
  };
}

const jobPath = (id: string) => `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`;

export const listFiles = async (): Promise<DatasetFile[]> => (await getJson<List<DatasetFile>>('/v1/files?purpose=fine-tune')).data;

export async function uploadDataset(file: File): Promise<DatasetFile> {
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', file, file.name);
  return (await request('/v1/files', { method: 'POST', body: form })).json() as Promise<DatasetFile>;
}

export const listJobs = async (): Promise<Job[]> => (await getJson<List<Job>>('/v1/fine_tuning/jobs?limit=100')).data;
export const getJob = (id: string): Promise<Job> => getJson<Job>(jobPath(id));
export const createJob = (body: CreateJob): Promise<Job> => postJson<Job>('/v1/fine_tuning/jobs', body);
export const cancelJob = (id: string): Promise<Job> => postJson<Job>(`${jobPath(id)}/cancel`, {});
export const listCheckpoints = async (id: string): Promise<Checkpoint[]> => (await getJson<List<Checkpoint>>(`${jobPath(id)}/checkpoints?limit=100`)).data;

/**
 * The job's events newer than any in `known`, newest first. Events are listed newest first in pages,
 * so this reads pages (each `after` the last) until it meets one it already has or the list ends.
 */
export async function newEvents(id: string, known: ReadonlySet<string>): Promise<JobEvent[]> {
  const fresh: JobEvent[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await getJson<List<JobEvent> & { last_id: string | null }>(`${jobPath(id)}/events?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    for (const e of page.data) {
      if (known.has(e.id)) return fresh;
      fresh.push(e);
    }
    if (!page.has_more || !page.last_id) return fresh;
    after = page.last_id;
  }
}

/** The sequence number an event id ends with ('ftevent-…-12' → 12): the events' order. */
export const eventSeq = (e: JobEvent): number => Number(e.id.slice(e.id.lastIndexOf('-') + 1));

/** The line a dataset error names ('… line 3: …', '… index 2 (line 3): …'), if any. */
export function lineOf(message: string): number | undefined {
  const m = /\bline (\d+)\b/.exec(message);
  return m ? Number(m[1]) : undefined;
}
