// The embedded default model that ships in weights/ so a fresh checkout serves something offline.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_MODEL_NAME = 'scratchgpt-brown';
export const DEFAULT_MODEL_DIR = path.join(REPO_ROOT, 'weights', DEFAULT_MODEL_NAME);
/** The embedded chat model (`scratchgpt chat`'s default): an instruction-tuned LoRA adapter on the base. */
export const DEFAULT_CHAT_MODEL_DIR = path.join(REPO_ROOT, 'weights', 'scratchgpt-brown-instruct');

/** The folder to load when the user names none (`fallback`); a clear error when that embedded model is missing. */
export function resolveModelDir(dir: string | undefined, fallback = DEFAULT_MODEL_DIR): string {
  if (dir) return path.resolve(dir);
  if (!['config.json', 'adapter_config.json'].some((f) => fs.existsSync(path.join(fallback, f)))) {
    throw new Error(`no --model given and the embedded default model is missing (${fallback}); pass --model DIR with a Hugging Face GPT-2 folder`);
  }
  return fallback;
}
