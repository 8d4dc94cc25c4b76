// The models that --model and --lora name, resolved to folders (Hub ids downloaded once): what a
// server serves, and what a training worker of the same service trains from.
import path from 'node:path';
import { DEFAULT_CHAT_MODEL_DIR } from '../model/default-model.js';
import { isPeftAdapterFolder } from '../model/peft-adapter.js';
import { resolveModel } from '../model/resolve.js';
import { downloadProgress } from './progress.js';

export interface ListedModel {
  id: string;
  dir: string;
  /** A PEFT LoRA adapter folder applied to `dir`. */
  lora?: string;
}

export async function resolveModelList(models: string[] | undefined, loras: string[] | undefined): Promise<ListedModel[]> {
  // Every option is checked before anything is downloaded.
  if (loras?.length && (models?.length ?? 0) > 1) throw new Error('--lora applies its adapters to one --model: give a single --model with --lora');
  const dirs: ListedModel[] = [];
  for (const m of models?.length ? models : [undefined]) dirs.push(await resolveModel(m, { onProgress: downloadProgress() }));
  // The embedded chat model is served beside the embedded base (chat out of the box).
  if (!models?.length && isPeftAdapterFolder(DEFAULT_CHAT_MODEL_DIR)) dirs.push({ id: path.basename(DEFAULT_CHAT_MODEL_DIR), dir: DEFAULT_CHAT_MODEL_DIR });
  for (const l of loras ?? []) {
    const { id, dir } = await resolveModel(l, { onProgress: downloadProgress(), withoutBase: true });
    dirs.push({ id, dir: dirs[0]!.dir, lora: dir });
  }
  return dirs;
}
