// The two checkpoint formats before the one in state.ts, read into its record so that runs saved
// by them resume (tests/fixtures/old-checkpoints holds one of each, written by the old code):
//
//   scratchgpt-training-state/1   pretraining: `m.`/`v.` tensors; the parameters are the model
//                                 folder's (its hash recorded), the data's identity a 32-bit FNV
//   scratchgpt-finetune-state/1   finetuning: `p.`/`m.`/`v.` tensors and a `progress` object
//                                 holding the position and the loop's running sums
import { emptyLoopSums, type LoopSums } from './fit.js';
import type { Position, StateRecord } from './state.js';

const PRETRAIN_V1 = 'scratchgpt-training-state/1';
const FINETUNE_V1 = 'scratchgpt-finetune-state/1';

interface PretrainV1 {
  position: Position;
  optimizerStep: number;
  options: unknown;
  config: unknown;
  paramsHash: string;
  extra: Record<string, unknown> & { dataHash?: string };
}

interface FinetuneV1 {
  fingerprint: string;
  progress: {
    step: number;
    trainedTokens: number;
    optimizerStep: number;
    sinceCheckpoint: LoopSums['sinceCheckpoint'];
    epoch: LoopSums['sinceEval'];
    last: LoopSums['last'];
    pendingEpochEnd?: LoopSums['pendingEval'];
  };
}

export function fromLegacyState(file: string, format: string | undefined, json: unknown): StateRecord {
  if (format === PRETRAIN_V1) {
    const s = json as PretrainV1;
    return {
      position: s.position,
      optimizerStep: s.optimizerStep,
      fingerprint: s.extra.dataHash ?? '',
      loop: emptyLoopSums(),
      run: { options: s.options, config: s.config, modelHash: s.paramsHash, extra: s.extra },
      legacy: PRETRAIN_V1,
    };
  }
  if (format === FINETUNE_V1) {
    const { fingerprint, progress: p } = json as FinetuneV1;
    return {
      position: { step: p.step, microBatches: p.step, tokensSeen: p.trainedTokens },
      optimizerStep: p.optimizerStep,
      fingerprint,
      loop: { sinceEval: p.epoch, sinceCheckpoint: p.sinceCheckpoint, last: p.last, ...(p.pendingEpochEnd && { pendingEval: p.pendingEpochEnd }) },
      run: {},
      legacy: FINETUNE_V1,
    };
  }
  throw new Error(`${file}: unknown training state format '${format}' (this version reads scratchgpt-training-state/2 and the older ${PRETRAIN_V1} and ${FINETUNE_V1})`);
}

/** The old pretraining data check: tokens' count and 32-bit FNV-1a, as its record stored it. */
export function legacyDataHash(tokens: Int32Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) h = Math.imul(h ^ tokens[i]!, 0x01000193);
  return `${tokens.length}:${(h >>> 0).toString(16)}`;
}
