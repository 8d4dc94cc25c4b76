// The training state (llm.c's buffers, nanoGPT's ckpt.pt): the trainable parameters, their
// gradients and both AdamW moments in one flat layout, and where the run is. The four buffers
// share one wasm memory so the update and the gradient norm run as SIMD kernels (plain arrays
// when the model is too big for one).
//
// One checkpoint format, training_state.safetensors: `p.NAME`, `m.NAME`, `v.NAME` for every
// trainable tensor (float32, so a resume continues bit for bit without the model folder beside
// it) and a JSON record in the metadata (position, AdamW's step count, the run's fingerprint, the
// loop's running sums, the configuration's own fields). Both old formats are read too
// (legacy-state.ts).
import fs from 'node:fs';
import path from 'node:path';
import type { Params } from '../model/params.js';
import { openSafetensors, readTensorF32, writeSafetensors } from '../model/safetensors.js';
import { AdamW, type AdamWConfig, type DecayPolicy } from './adamw.js';
import type { LoopSums } from './fit.js';
import { FlatLayout } from './flat.js';
import { WasmArena } from './kernels.js';
import { fromLegacyState } from './legacy-state.js';

export const STATE_FILE = 'training_state.safetensors';
export const STATE_FORMAT = 'scratchgpt-training-state/2';

/** Where a run is; with the buffers, all a resume needs. */
export interface Position {
  /** Optimizer steps done. */
  step: number;
  /** Training batches consumed (the data position). */
  microBatches: number;
  /** Tokens trained on so far (as the data source counts them). */
  tokensSeen: number;
}

/** The JSON half of a checkpoint. `run` is the configuration's own (pretraining: its options and model). */
export interface StateRecord<R = unknown> {
  position: Position;
  optimizerStep: number;
  /** Identifies the run (data, options, starting weights): a resume of another is refused. */
  fingerprint: string;
  loop: LoopSums;
  run: R;
  /** Set when the record was read from an older format (which one, for messages). */
  legacy?: string;
}

export class TrainingState {
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly optimizer: AdamW;
  readonly arena: WasmArena | undefined;
  position: Position = { step: 0, microBatches: 0, tokensSeen: 0 };

  /** A state over `layout`'s tensors, copied from `initial`, with zero moments at position 0. */
  constructor(
    readonly layout: FlatLayout,
    initial: Params,
    adamw: AdamWConfig,
    decay: DecayPolicy,
  ) {
    this.arena = WasmArena.create(4 * layout.size);
    const alloc = () => this.arena?.alloc(layout.size) ?? layout.alloc();
    this.params = layout.pack(initial, alloc());
    this.grads = alloc();
    this.optimizer = new AdamW(layout, adamw, decay, this.arena);
  }

  /** Writes DIR/training_state.safetensors atomically. */
  save(dir: string, record: Omit<StateRecord, 'position' | 'optimizerStep' | 'legacy'>): void {
    const { layout } = this;
    const buffers = { p: this.params, m: this.optimizer.m, v: this.optimizer.v };
    const tensors = layout.segments.flatMap((s) =>
      (['p', 'm', 'v'] as const).map((k) => ({ name: `${k}.${s.name}`, dtype: 'F32' as const, shape: s.shape, data: layout.view(buffers[k], s.name) })),
    );
    const full: StateRecord = { position: this.position, optimizerStep: this.optimizer.step, ...record };
    writeSafetensors(path.join(dir, STATE_FILE), tensors, { metadata: { format: STATE_FORMAT, state: JSON.stringify(full) } });
  }

  /** The record of DIR's checkpoint (any format), without reading its tensors. */
  static record<R = unknown>(dir: string): StateRecord<R> {
    const file = path.join(dir, STATE_FILE);
    if (!fs.existsSync(file)) throw new Error(`${dir} has no ${STATE_FILE}: nothing to resume`);
    const meta = openSafetensors(file).metadata;
    if (meta.state === undefined) throw new Error(`${file}: no training state in its metadata (format '${meta.format}')`);
    const json: unknown = JSON.parse(meta.state);
    if (meta.format === STATE_FORMAT) return json as StateRecord<R>;
    return fromLegacyState(file, meta.format, json) as StateRecord<R>;
  }

  /**
   * Continues from DIR's checkpoint: its tensors into the buffers (parameters only where the
   * format holds them: the old pretraining one kept them in model.safetensors alone, which the
   * caller packed), its position and AdamW step count. Returns the record.
   */
  load<R = unknown>(dir: string): StateRecord<R> {
    const record = TrainingState.record<R>(dir);
    const file = openSafetensors(path.join(dir, STATE_FILE));
    const buffers = { p: this.params, m: this.optimizer.m, v: this.optimizer.v };
    for (const s of this.layout.segments) {
      for (const k of ['p', 'm', 'v'] as const) {
        if (k === 'p' && !file.tensors.has(`p.${s.name}`)) continue;
        const data = readTensorF32(file, `${k}.${s.name}`);
        if (data.length !== s.size) throw new Error(`${dir}: '${k}.${s.name}' has ${data.length} values, expected ${s.size}`);
        this.layout.view(buffers[k], s.name).set(data);
      }
    }
    this.optimizer.step = record.optimizerStep;
    this.position = { ...record.position };
    return record;
  }
}
