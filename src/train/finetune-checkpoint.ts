// Finetuning checkpoints in a work folder:
//
//   workDir/run.json                         what run this folder belongs to (a fingerprint of the spec)
//   workDir/checkpoints/step-000120/         a loadable Hugging Face folder (config.json +
//                                            model.safetensors, LoRA merged) + training_state.safetensors
//                                            + checkpoint.json (its report: step, epoch, losses)
//
// A checkpoint is written into a temporary folder beside the others and renamed into place, so a
// kill at any moment leaves either the previous checkpoints or the new one complete, plus perhaps
// a `.tmp-*` folder that the next start removes. The training state holds the trainable tensors
// themselves (LoRA adapters are not in the merged model), both AdamW moments and the position,
// so a resume needs nothing else from the folder; only the newest checkpoint keeps it (older
// ones stay as model folders).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { saveCheckpoint } from '../model/checkpoint.js';
import type { GPTConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { fsyncDir, writeFileAtomic } from '../model/durable.js';
import { openSafetensors, readTensorF32, writeSafetensors } from '../model/safetensors.js';
import { crashPoint } from '../faults/crash-point.js';
import type { FlatLayout } from './flat.js';

export const STATE_FILE = 'training_state.safetensors';
/** The checkpoint's report, as onCheckpoint got it, so a reader that missed the hook can recover it. */
export const REPORT_FILE = 'checkpoint.json';
const STATE_FORMAT = 'scratchgpt-finetune-state/1';
const RUN_FILE = 'run.json';

/** Where a run is, and the running sums its reports need; JSON numbers round-trip exactly. */
export interface FinetuneProgress {
  step: number;
  trainedTokens: number;
  optimizerStep: number;
  /** Step losses since the previous checkpoint (its trainLoss is their mean). */
  sinceCheckpoint: { lossSum: number; steps: number };
  /** The current epoch's step losses and (classification) training predictions. */
  epoch: { lossSum: number; steps: number; correct: number; seen: number };
  /** The latest epoch-end report. */
  last: { trainLoss?: number; valLoss?: number; valAccuracy?: number };
  /** Set when the run stopped during an epoch-end validation: that step's report, still to be completed. */
  pendingEpochEnd?: { trainLoss: number; tokensPerSecond: number };
}

export interface SavedState {
  format: typeof STATE_FORMAT;
  fingerprint: string;
  progress: FinetuneProgress;
}

export interface CheckpointReport {
  epoch: number;
  step: number;
  /** Mean step loss since the previous checkpoint. */
  trainLoss: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface TrainableBuffers {
  layout: FlatLayout;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

const checkpointsDir = (workDir: string) => path.join(workDir, 'checkpoints');
const stepName = (step: number) => `step-${String(step).padStart(6, '0')}`;

/**
 * Claims `workDir` for the run with `fingerprint`: records it on first use, refuses a folder that
 * holds another run (resuming someone else's state would silently train a different model).
 */
export function claimWorkDir(workDir: string, fingerprint: string, summary: Record<string, unknown>): void {
  fs.mkdirSync(checkpointsDir(workDir), { recursive: true });
  const file = path.join(workDir, RUN_FILE);
  if (fs.existsSync(file)) {
    const prev = JSON.parse(fs.readFileSync(file, 'utf8')) as { fingerprint?: string };
    if (prev.fingerprint !== fingerprint) {
      throw new Error(`${workDir} holds another finetuning run (different model, data or options): use a fresh work folder, or delete this one`);
    }
    return;
  }
  writeFileAtomic(file, JSON.stringify({ fingerprint, ...summary }, null, 2) + '\n');
}

/**
 * Writes checkpoint `step` (model folder + training state) atomically and drops the training
 * state of older checkpoints. Returns the checkpoint's folder.
 */
export function saveFinetuneCheckpoint(workDir: string, model: { config: GPTConfig; params: Params }, trainable: TrainableBuffers, state: SavedState, report: CheckpointReport): string {
  const root = checkpointsDir(workDir);
  const name = stepName(state.progress.step);
  const dir = path.join(root, name);
  const tmp = path.join(root, `.tmp-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    saveCheckpoint(tmp, model.config, model.params);
    const { layout } = trainable;
    const tensors = layout.segments.flatMap((s) =>
      (['p', 'm', 'v'] as const).map((k) => ({
        name: `${k}.${s.name}`,
        dtype: 'F32' as const,
        shape: s.shape,
        data: layout.view(k === 'p' ? trainable.params : trainable[k], s.name),
      })),
    );
    writeSafetensors(path.join(tmp, STATE_FILE), tensors, { metadata: { format: STATE_FORMAT, state: JSON.stringify(state) } });
    writeFileAtomic(path.join(tmp, REPORT_FILE), JSON.stringify(report) + '\n');
    crashPoint('checkpoint.tmp-written');
    // A folder cannot be renamed over a non-empty one. Replacing this step's checkpoint (taken
    // when a stop interrupted the epoch's validation) moves the old one aside first; a kill
    // between the two renames leaves it there, and the next start moves it back.
    const aside = `${dir}.replaced-${process.pid}`;
    if (fs.existsSync(dir)) fs.renameSync(dir, aside);
    fs.renameSync(tmp, dir);
    fsyncDir(root);
    fs.rmSync(aside, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  for (const other of fs.readdirSync(root)) {
    if (other !== name && /^step-\d+$/.test(other)) fs.rmSync(path.join(root, other, STATE_FILE), { force: true });
  }
  return dir;
}

/**
 * The newest checkpoint with a readable training state, after removing what interrupted writes
 * left behind (`.tmp-*` folders and files); undefined when there is none.
 */
export function latestFinetuneCheckpoint(workDir: string): { dir: string; state: SavedState } | undefined {
  const root = checkpointsDir(workDir);
  if (!fs.existsSync(root)) return undefined;
  const steps: string[] = [];
  for (const entry of fs.readdirSync(root)) {
    const full = path.join(root, entry);
    const replaced = /^(step-\d+)\.replaced-/.exec(entry)?.[1];
    if (replaced && !fs.existsSync(path.join(root, replaced))) fs.renameSync(full, path.join(root, replaced));
  }
  for (const entry of fs.readdirSync(root)) {
    const full = path.join(root, entry);
    if (entry.startsWith('.tmp-') || entry.includes('.replaced-')) fs.rmSync(full, { recursive: true, force: true });
    else if (/^step-\d+$/.test(entry)) {
      for (const f of fs.readdirSync(full)) if (f.includes('.tmp-')) fs.rmSync(path.join(full, f), { force: true });
      steps.push(entry);
    }
  }
  for (const name of steps.sort().reverse()) {
    const file = path.join(root, name, STATE_FILE);
    if (!fs.existsSync(file)) continue;
    const meta = openSafetensors(file).metadata;
    if (meta.format !== STATE_FORMAT || meta.state === undefined) throw new Error(`${file}: not a finetuning state (format '${meta.format}')`);
    return { dir: path.join(root, name), state: JSON.parse(meta.state) as SavedState };
  }
  return undefined;
}

/** The complete checkpoints in `workDir` with their reports, oldest first (those written before reports existed are left out). */
export function checkpointReports(workDir: string): (CheckpointReport & { dir: string })[] {
  const root = checkpointsDir(workDir);
  if (!fs.existsSync(root)) return [];
  const out: (CheckpointReport & { dir: string })[] = [];
  for (const name of fs.readdirSync(root).filter((n) => /^step-\d+$/.test(n)).sort()) {
    const dir = path.join(root, name);
    if (!fs.existsSync(path.join(dir, 'config.json')) || !fs.existsSync(path.join(dir, REPORT_FILE))) continue;
    out.push({ ...(JSON.parse(fs.readFileSync(path.join(dir, REPORT_FILE), 'utf8')) as CheckpointReport), dir });
  }
  return out;
}

/** Reads a checkpoint's trainable tensors and moments into the run's buffers. */
export function loadTrainingState(dir: string, trainable: TrainableBuffers): void {
  const file = openSafetensors(path.join(dir, STATE_FILE));
  const { layout } = trainable;
  for (const s of layout.segments) {
    for (const k of ['p', 'm', 'v'] as const) {
      const data = readTensorF32(file, `${k}.${s.name}`);
      if (data.length !== s.size) throw new Error(`${dir}: '${k}.${s.name}' has ${data.length} values, expected ${s.size}`);
      layout.view(k === 'p' ? trainable.params : trainable[k], s.name).set(data);
    }
  }
}
