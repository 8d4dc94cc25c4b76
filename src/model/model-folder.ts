// What a model folder says without loading its weights: its config, chat template, sampling
// defaults and creation time (the server's /v1/models and request checks while a worker loads;
// the CLI's chat and generate). An adapter folder answers with its base's config.
import fs from 'node:fs';
import path from 'node:path';
import { loadChatTemplate, type ChatTemplate } from './chat-template.js';
import { fromHFConfig, type GPTConfig } from './config.js';
import { readGenerationDefaults, type GenerationDefaults } from './generation-config.js';
import { readJsonObject } from './json-file.js';
import { ADAPTER_CONFIG, modelFolders } from './peft-adapter.js';

export interface ModelFolder {
  config: GPTConfig;
  /** The chat template (`chatTemplateFile` instead when given); undefined for a base model. */
  chat?: ChatTemplate;
  /** generation_config.json's defaults for fields a request leaves unset. */
  generation: GenerationDefaults;
  /** Unix seconds: when config.json (an adapter's adapter_config.json) was written. */
  created: number;
}

/** `lora`: a PEFT adapter folder applied to `dir` (serve --lora); `dir` may itself be an adapter folder. */
export function readModelFolder(dir: string, chatTemplateFile?: string, lora?: string): ModelFolder {
  // An adapter runs on its base's config; its own prompt files come first, then the base's.
  const folders = modelFolders(dir, lora);
  const base = folders.at(-1)!;
  const configPath = path.join(base, 'config.json');
  if (!fs.existsSync(configPath)) throw new Error(`${base} is not a model folder: no config.json (expected a Hugging Face GPT-2 folder or a PEFT adapter folder)`);
  const config = fromHFConfig(readJsonObject(configPath), configPath);
  const withFile = (file: string) => folders.find((d) => fs.existsSync(path.join(d, file))) ?? folders[0]!;
  const chat = (): ChatTemplate | undefined => {
    if (chatTemplateFile) return loadChatTemplate(folders[0]!, chatTemplateFile);
    for (const d of folders) {
      const t = loadChatTemplate(d);
      if (t) return t;
    }
    return undefined;
  };
  const own = folders.length > 1 ? path.join(folders[0]!, ADAPTER_CONFIG) : configPath;
  return {
    config,
    chat: config.labels ? undefined : chat(),
    generation: readGenerationDefaults(withFile('generation_config.json')),
    created: Math.floor(fs.statSync(own).mtimeMs / 1000),
  };
}
