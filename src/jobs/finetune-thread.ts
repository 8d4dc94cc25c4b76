// The body of a fine-tuning job's thread: one per running job, started by JobRunner (runner.ts) through
// src/threads/boot.js. It reads and parses the job's files, calls runFinetune, and posts
// progress back; it never touches the database (the runner, on the HTTP thread, is its only
// writer). Cancel arrives as a message and becomes the engine's AbortSignal.
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { DatasetError, parseDataset, type ClassificationRecord, type InstructionRecord } from '../datasets/index.js';
import { runFinetune, type FinetuneCheckpoint, type FinetuneSpec } from '../train/finetune.js';
import type { FitEvent } from '../train/fit.js';

export interface FinetuneWorkerData {
  /** This module (threads/boot.js imports it). */
  entry: string;
  spec: Omit<FinetuneSpec, 'train' | 'validation' | 'labels'>;
  trainingFile: { path: string; name: string };
  validationFile?: { path: string; name: string };
  /** Classification: the class names, in class-id order (the training file's sorted labels). */
  labels?: string[];
}

/**
 * cancel: the job is cancelled (its work is thrown away). stop: the server is shutting down; the
 * engine checkpoints before it stops, so the next start resumes where this one stopped. Both take
 * effect after the current step: a worker must never be terminated while ORT runs (onnxruntime's
 * asynchronous run calls back into the dead thread and aborts the process).
 */
export type ToFinetuneWorker = { type: 'cancel' } | { type: 'stop' };
export type FromFinetuneWorker =
  | { type: 'started' }
  | { type: 'event'; event: FitEvent }
  | { type: 'checkpoint'; checkpoint: FinetuneCheckpoint }
  | { type: 'done'; result: { outDir: string; trainedTokens: number; steps: number; finalTrainLoss: number; finalValLoss?: number; finalValAccuracy?: number } }
  | { type: 'cancelled' }
  | { type: 'stopped' }
  | { type: 'failed'; code: string; message: string; param: string | null };

const port = parentPort!;
const cfg = workerData as FinetuneWorkerData;
const post = (msg: FromFinetuneWorker) => port.postMessage(msg);
const abort = new AbortController();
let stopping = false;
// Read by the engine when it sees the signal: only a stop (not a cancel) is worth a checkpoint.
const hooks = { saveOnCancel: false };
port.on('message', (msg: ToFinetuneWorker) => {
  if (msg.type === 'stop') stopping = hooks.saveOnCancel = true;
  abort.abort();
});

class FileProblem extends Error {
  constructor(
    readonly param: 'training_file' | 'validation_file',
    message: string,
  ) {
    super(message);
  }
}

function records(file: { path: string; name: string }, param: 'training_file' | 'validation_file', task: FinetuneSpec['task']['type']) {
  let dataset;
  try {
    dataset = parseDataset(fs.readFileSync(file.path), file.name);
  } catch (e) {
    if (e instanceof DatasetError) throw new FileProblem(param, e.message);
    throw new FileProblem(param, `cannot read ${file.name}: ${(e as Error).message}`);
  }
  const isClassification = dataset.format === 'classification';
  if (isClassification !== (task === 'classification')) {
    throw new FileProblem(param, `${file.name} holds ${dataset.format} records, which a ${task} job cannot train on`);
  }
  return dataset.records as InstructionRecord[] | ClassificationRecord[];
}

try {
  post({ type: 'started' });
  const task = cfg.spec.task.type;
  const train = records(cfg.trainingFile, 'training_file', task);
  const validation = cfg.validationFile ? records(cfg.validationFile, 'validation_file', task) : undefined;
  const spec = { ...cfg.spec, train, validation, labels: cfg.labels } as FinetuneSpec;
  const result = await runFinetune(
    spec,
    Object.assign(hooks, {
      onEvent: (event: FitEvent) => post({ type: 'event', event }),
      onCheckpoint: (checkpoint: FinetuneCheckpoint) => post({ type: 'checkpoint', checkpoint }),
      signal: abort.signal,
    }),
  );
  post({ type: 'done', result });
} catch (e) {
  const err = e as Error;
  if (abort.signal.aborted || err?.name === 'TrainingCancelled') post({ type: stopping ? 'stopped' : 'cancelled' });
  else if (e instanceof FileProblem) post({ type: 'failed', code: e.param === 'training_file' ? 'invalid_training_file' : 'invalid_validation_file', message: e.message, param: e.param });
  else post({ type: 'failed', code: 'training_failed', message: err?.message ?? String(e), param: null });
}
port.close(); // nothing runs any more: let the thread end
