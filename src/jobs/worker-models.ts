// The models a training worker knows, as fine-tuning jobs need them (ServedModels) without serving
// any: the base models of its --model list, and the finetuned ones in the store (a job may start
// from one). Before a job's model is published, `add` checks that its folder reads as a model
// (config, tokenizer, safetensors headers); the replicas load it once the store announces it.
import path from 'node:path';
import { weightFiles } from '../model/checkpoint.js';
import { readModelFolder } from '../model/model-folder.js';
import { ADAPTER_WEIGHTS, isPeftAdapterFolder } from '../model/peft-adapter.js';
import { openSafetensors } from '../model/safetensors.js';
import type { ServedModels } from './served-models.js';

interface Known {
  dir: string;
  lora?: string;
  kind: 'generator' | 'classifier';
}

function describe(dir: string, lora?: string): Known {
  const folder = readModelFolder(dir, undefined, lora);
  for (const d of lora === undefined ? [dir] : [dir, lora]) {
    for (const file of isPeftAdapterFolder(d) ? [path.join(d, ADAPTER_WEIGHTS)] : weightFiles(d).filter((f) => f.endsWith('.safetensors'))) openSafetensors(file);
  }
  return { dir, ...(lora !== undefined && { lora }), kind: folder.config.labels ? 'classifier' : 'generator' };
}

export class WorkerModels implements ServedModels {
  private readonly models = new Map<string, Known>();
  private readonly finetuned = new Set<string>();

  constructor(bases: { id: string; dir: string; lora?: string }[]) {
    for (const b of bases) {
      if (this.models.has(b.id)) throw new Error(`two models are named '${b.id}': model ids (folder names, or Hub ids as given) must differ`);
      this.models.set(b.id, describe(path.resolve(b.dir), b.lora === undefined ? undefined : path.resolve(b.lora)));
    }
  }

  info(id: string): Known | undefined {
    return this.models.get(id);
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  isFinetuned(id: string): boolean {
    return this.finetuned.has(id);
  }

  find(id: string): { ready: Promise<void> } {
    if (!this.models.has(id)) throw new Error(`no model '${id}'`);
    return { ready: Promise.resolve() };
  }

  add(id: string, dir: string): { ready: Promise<void> } {
    this.finetuned.add(id);
    const ready = Promise.resolve().then(() => {
      this.models.set(id, describe(path.resolve(dir)));
    });
    ready.catch(() => this.finetuned.delete(id));
    return { ready };
  }

  addOnDemand(id: string, dir: string): void {
    try {
      this.models.set(id, describe(path.resolve(dir)));
      this.finetuned.add(id);
    } catch {
      // not a readable model: a job that names it as its base fails with model_not_found
    }
  }

  async remove(id: string): Promise<void> {
    this.finetuned.delete(id);
    this.models.delete(id);
  }
}
