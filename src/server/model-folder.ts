// What the HTTP thread knows of a model folder without loading it: its config, chat template,
// sampling defaults and creation time (for /v1/models and request checks while the worker
// loads, or before an on-demand one starts).
import fs from 'node:fs';
import path from 'node:path';
import { loadChatTemplate, type ChatTemplate } from '../model/chat-template.js';
import { fromHFConfig, type GPTConfig } from '../model/config.js';
import { readGenerationDefaults, type GenerationDefaults } from '../model/generation-config.js';

export interface ModelFolder {
  config: GPTConfig;
  /** The chat template (`chatTemplateFile` instead when given); undefined for a base model. */
  chat?: ChatTemplate;
  /** generation_config.json's defaults for fields a request leaves unset. */
  generation: GenerationDefaults;
  /** Unix seconds: when config.json was written. */
  created: number;
}

export function readModelFolder(dir: string, chatTemplateFile?: string): ModelFolder {
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new Error(`${dir} is not a model folder: no config.json (expected a Hugging Face GPT-2 folder)`);
  const config = fromHFConfig(JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>, configPath);
  return {
    config,
    chat: config.labels ? undefined : loadChatTemplate(dir, chatTemplateFile),
    generation: readGenerationDefaults(dir),
    created: Math.floor(fs.statSync(configPath).mtimeMs / 1000),
  };
}
