// Where the Hub is and who we are to it, from the same environment variables Python's
// huggingface_hub reads, so one configuration serves both.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getHFHubCachePath } from '@huggingface/hub';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubSettings {
  /** HF_ENDPOINT (a mirror), without a trailing slash. */
  endpoint: string;
  /** HF_TOKEN, else the token file `huggingface-cli login` writes. */
  token?: string;
  /** HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE): the cache only, no request at all. */
  offline: boolean;
  /** HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir: string;
}

const truthy = (v: string | undefined): boolean => ['1', 'ON', 'YES', 'TRUE'].includes((v ?? '').trim().toUpperCase());

function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
}

function readToken(env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = (env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN)?.trim();
  if (fromEnv) return fromEnv;
  try {
    return fs.readFileSync(env.HF_TOKEN_PATH ?? path.join(hfHome(env), 'token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The settings in force now (read at each call: tests and long-lived servers may change them). */
export function hubSettings(overrides: Partial<HubSettings> = {}): HubSettings {
  const env = process.env;
  return {
    endpoint: (overrides.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    token: 'token' in overrides ? overrides.token : readToken(env),
    offline: overrides.offline ?? truthy(env.HF_HUB_OFFLINE ?? env.TRANSFORMERS_OFFLINE),
    cacheDir: overrides.cacheDir ?? getHFHubCachePath(),
  };
}
