// What fine-tuning jobs need of the server's model registry, declared here so that jobs do not
// depend on the server: ModelRegistry (src/server/registry.ts) is one.
/**
 * Finetuned models kept loaded at once (the most recently used): each is a thread with its own
 * weights and V8 heap. Older ones load again at their next request (on demand).
 */
export const LOADED_FINETUNED = 4;

export interface ServedModels {
  /** What is known of a served model without starting it; undefined when none has this id. */
  info(id: string): { dir: string; lora?: string; kind: 'generator' | 'classifier' } | undefined;
  has(id: string): boolean;
  /** Whether `id` is a finetuned model (added while running), not a base model. */
  isFinetuned(id: string): boolean;
  find(id: string): { ready: Promise<void> };
  /** Serves a finetuned model from now on, loaded at once; `ready` settles when it has loaded or failed. */
  add(id: string, dir: string): { ready: Promise<void> };
  /** Serves a checkpoint that loads at its first request. */
  addOnDemand(id: string, dir: string): void;
  remove(id: string): Promise<void>;
}
