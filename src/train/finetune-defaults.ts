// The finetuning defaults: one object for `scratchgpt finetune`, the fine-tuning jobs API
// (src/server/fine-tuning.ts, where "auto" and absent fields resolve to it) and so for the jobs it
// runs. The book's settings where it has one. Documented in src/train/README.md.
import type { FinetuneMethod, FinetuneTask } from './finetune.js';

type Task = FinetuneTask['type'];
type Method = FinetuneMethod['type'];

export const FINETUNE_DEFAULTS = {
  /** Chapter 7 trains its instruction model 2 epochs, chapter 6 its spam classifier 5. */
  epochs: { instruction: 2, classification: 5 } satisfies Record<Task, number>,
  /** Chapter 7 trains every parameter; chapter 6 the last block, the final LayerNorm and the new head. */
  method: { instruction: 'full', classification: 'last_blocks' } satisfies Record<Task, Method>,
  lastBlocks: 1,
  lora: { rank: 16, alpha: 16 },
  batchSize: 8,
  /** The book's AdamW step for full and last-blocks; LoRA's adapters start at zero and want a larger one. */
  lr: { full: 5e-5, last_blocks: 5e-5, lora: 2e-4 } satisfies Record<Method, number>,
  /** AdamW decoupled weight decay, the book's, on every trainable tensor. */
  weightDecay: 0.1,
  maskPrompt: false,
  /** The book's; the jobs API draws one per job instead when none is given, as OpenAI's does. */
  seed: 123,
} as const;
