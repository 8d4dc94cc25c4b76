// The embedded default model that ships in weights/ so a fresh checkout serves something offline.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_MODEL_NAME = 'scratchgpt-brown';
export const DEFAULT_MODEL_DIR = path.join(REPO_ROOT, 'weights', DEFAULT_MODEL_NAME);

/** The folder to load when the user names none; a clear error when the embedded model is missing. */
export function resolveModelDir(dir: string | undefined): string {
  if (dir) return path.resolve(dir);
  if (!fs.existsSync(path.join(DEFAULT_MODEL_DIR, 'config.json'))) {
    throw new Error(`no --model given and the embedded default model is missing (${DEFAULT_MODEL_DIR}); pass --model DIR with a Hugging Face GPT-2 folder`);
  }
  return DEFAULT_MODEL_DIR;
}
