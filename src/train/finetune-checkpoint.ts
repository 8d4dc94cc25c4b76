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
import { replaceDir, restoreReplacedDirs, writeFileAtomic } from '../model/durable.js';
import { crashPoint } from '../faults/crash-point.js';
import type { CheckpointReport, LoopSums } from './fit.js';
import { STATE_FILE, TrainingState, type StateRecord } from './state.js';

/** The checkpoint's report, as onCheckpoint got it, so a reader that missed the hook can recover it. */
export const REPORT_FILE = 'checkpoint.json';
const RUN_FILE = 'run.json';

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
export function saveFinetuneCheckpoint(workDir: string, model: { config: GPTConfig; params: Params }, state: TrainingState, record: { fingerprint: string; loop: LoopSums }, report: CheckpointReport): string {
  const root = checkpointsDir(workDir);
  const name = stepName(state.position.step);
  const dir = path.join(root, name);
  const tmp = path.join(root, `.tmp-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    saveCheckpoint(tmp, model.config, model.params);
    state.save(tmp, { ...record, run: {} });
    writeFileAtomic(path.join(tmp, REPORT_FILE), JSON.stringify(report) + '\n');
    crashPoint('checkpoint.tmp-written');
    // Replacing this step's checkpoint (taken when a stop interrupted the epoch's validation)
    // sets the old one aside; a kill between the two renames leaves it there, and the next
    // start moves it back.
    replaceDir(tmp, dir);
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
export function latestFinetuneCheckpoint(workDir: string): { dir: string; state: StateRecord } | undefined {
  const root = checkpointsDir(workDir);
  if (!fs.existsSync(root)) return undefined;
  restoreReplacedDirs(root);
  const steps: string[] = [];
  for (const entry of fs.readdirSync(root)) {
    const full = path.join(root, entry);
    if (entry.startsWith('.tmp-')) fs.rmSync(full, { recursive: true, force: true });
    else if (/^step-\d+$/.test(entry)) {
      for (const f of fs.readdirSync(full)) if (f.includes('.tmp-')) fs.rmSync(path.join(full, f), { force: true });
      steps.push(entry);
    }
  }
  for (const name of steps.sort().reverse()) {
    const dir = path.join(root, name);
    if (fs.existsSync(path.join(dir, STATE_FILE))) return { dir, state: TrainingState.record(dir) };
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
