// The training loop's state and one optimizer step (nanoGPT's train.py, as an object): flat
// parameters and gradients, AdamW, the LR schedule, gradient accumulation and clipping, seeded
// dropout, evaluation, greedy samples, and checkpoints that resume bit for bit.
//
// Everything random is drawn from streams derived from (seed, position): the shuffle from the
// epoch, dropout masks from the micro-batch index. A checkpoint therefore stores positions,
// not generator states, and a resumed run sees exactly the batches and masks it would have.
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, materialize, saveCheckpoint, type WeightSource } from '../model/checkpoint.js';
import type { GPTConfig } from '../model/config.js';
import { generate } from '../model/generation.js';
import { parameterSpecs, type Params } from '../model/params.js';
import { Rng } from '../model/rng.js';
import type { RuntimeOptions } from '../model/runtime.js';
import { openSafetensors, readTensorF32, writeSafetensors } from '../model/safetensors.js';
import { ModelSession } from '../model/session.js';
import { ADAMW_DEFAULTS, AdamW, clipCoefficient, globalNorm, type AdamWConfig, type DecayPolicy } from './adamw.js';
import { BatchLoader, DROPOUT_STREAM, SlidingWindows, streamSeed } from './data.js';
import { FlatLayout } from './flat.js';
import { WasmArena } from './kernels.js';
import { learningRate } from './schedule.js';
import { TrainSession } from './session.js';

export interface TrainOptions {
  batchSize: number;
  /** Tokens per window (max_length); the graphs' T. */
  seqLen: number;
  stride: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Optimizer steps of the whole run (the cosine schedule ends here). */
  maxSteps: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  /** Global-norm clipping threshold; 0 = off. */
  gradClip: number;
  adamw: AdamWConfig;
  decay: DecayPolicy;
  seed: number;
  /** Validation batches per evaluation; 0 = the whole validation set. */
  evalBatches: number;
  /**
   * A regular expression over parameter names selecting the trainable ones (default: all). The
   * others are frozen: graph initializers, with no gradient computed or stored.
   */
  trainable?: string;
}

export const TRAIN_DEFAULTS: Omit<TrainOptions, 'seqLen' | 'stride' | 'maxSteps'> = {
  batchSize: 4,
  gradAccum: 1,
  lr: 4e-4,
  minLr: 4e-5,
  warmupSteps: 0,
  gradClip: 1,
  adamw: ADAMW_DEFAULTS,
  decay: 'matrices',
  seed: 123,
  evalBatches: 0,
};

export interface TrainData {
  train: Int32Array;
  val: Int32Array;
}

export interface StepResult {
  loss: number;
  lr: number;
  /** Global norm of the (micro-batch mean) gradient before clipping; NaN when clipping is off (not computed). */
  gradNorm: number;
  /** Milliseconds: ORT runs (forward, backward, output copies), gradient gathering, the norm, AdamW. */
  timings: { run: number; gather: number; clip: number; adamw: number };
}

/** Where a run is; all a resume needs besides parameters and moments. */
export interface Position {
  step: number; // optimizer steps done
  microBatches: number; // training batches consumed (the data position)
  tokensSeen: number;
}

export interface SavedState {
  position: Position;
  optimizerStep: number;
  options: TrainOptions;
  config: GPTConfig;
  paramsHash: string;
  extra: Record<string, unknown>;
}

export const STATE_FILE = 'training_state.safetensors';
const STATE_FORMAT = 'scratchgpt-training-state/1';

export class Trainer {
  readonly layout: FlatLayout;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly optimizer: AdamW;
  readonly trainLoader: BatchLoader;
  readonly valLoader: BatchLoader;
  position: Position = { step: 0, microBatches: 0, tokensSeen: 0 };
  private readonly arena: WasmArena | undefined;
  private evalSession: TrainSession | undefined;

  private constructor(
    readonly config: GPTConfig,
    readonly opts: TrainOptions,
    params: Params,
    private readonly frozen: Map<string, WeightSource>,
    data: TrainData,
    private readonly session: TrainSession,
    readonly runtime: RuntimeOptions,
  ) {
    this.layout = session.layout;
    // params, grads, m, v: one wasm memory, so AdamW runs as a SIMD kernel (plain arrays if too big)
    this.arena = WasmArena.create(4 * this.layout.size);
    const alloc = () => this.arena?.alloc(this.layout.size) ?? this.layout.alloc();
    this.params = this.layout.pack(params, alloc());
    this.grads = alloc();
    this.optimizer = new AdamW(this.layout, opts.adamw, opts.decay, this.arena);
    const loader = (tokens: Int32Array, train: boolean) =>
      new BatchLoader(new SlidingWindows(tokens, opts.seqLen, opts.stride), { batchSize: opts.batchSize, shuffle: train, dropLast: train, seed: opts.seed });
    this.trainLoader = loader(data.train, true);
    this.valLoader = loader(data.val, false);
    if (this.trainLoader.batchesPerEpoch === 0) {
      throw new Error(`the training text gives ${this.trainLoader.windows.length} windows of ${opts.seqLen + 1} tokens, fewer than one batch of ${opts.batchSize}: use more data, or a smaller --batch-size or --max-length`);
    }
  }

  /** A trainer over `params` (as loaded or freshly initialised; all of GPT-2's tensors). */
  static async create(config: GPTConfig, params: Params, data: TrainData, opts: TrainOptions, runtime: RuntimeOptions = {}, debug: { profile?: string } = {}): Promise<Trainer> {
    validate(config, opts);
    const pattern = opts.trainable === undefined ? undefined : new RegExp(opts.trainable);
    const specs = parameterSpecs(config);
    const trainable = specs.filter((s) => !pattern || pattern.test(s.name));
    if (trainable.length === 0) throw new Error(`no parameter name matches the trainable pattern /${opts.trainable}/`);
    const frozen = new Map<string, WeightSource>();
    for (const s of specs) {
      const t = params.get(s.name);
      if (!t) throw new Error(`missing parameter '${s.name}'`);
      if (pattern && !pattern.test(s.name)) frozen.set(s.name, { kind: 'memory', data: t.data, shape: t.shape });
    }
    const layout = new FlatLayout(trainable);
    const session = await TrainSession.create(config, layout, frozen, { ...runtime, ...debug, batchSize: opts.batchSize, seqLen: opts.seqLen, train: true });
    return new Trainer(config, opts, params, frozen, data, session, runtime);
  }

  get epoch(): number {
    return this.position.microBatches / this.trainLoader.batchesPerEpoch;
  }

  get done(): boolean {
    return this.position.step >= this.opts.maxSteps;
  }

  lrAt(step: number): number {
    const { lr, minLr, warmupSteps, maxSteps } = this.opts;
    return learningRate({ peakLr: lr, minLr, warmupSteps, totalSteps: maxSteps }, step);
  }

  /** One optimizer step over `gradAccum` micro-batches. */
  async step(): Promise<StepResult> {
    const { gradAccum: A, gradClip } = this.opts;
    const lr = this.lrAt(this.position.step);
    const timings = { run: 0, gather: 0, clip: 0, adamw: 0 };
    let loss = 0;
    for (let a = 0; a < A; a++) {
      const k = this.position.microBatches;
      const batch = this.trainLoader.batch(k);
      const rng = this.config.dropout > 0 ? new Rng(streamSeed(this.opts.seed, DROPOUT_STREAM, k)) : undefined;
      loss += (await this.session.run(this.params, batch, { grads: this.grads, accumulate: a > 0, rng, timings })) / A;
      this.position.microBatches++;
      this.position.tokensSeen += batch.count;
    }
    // The mean over micro-batches and the clipping factor scale the gradients inside AdamW's pass.
    let t = performance.now();
    const gradNorm = gradClip > 0 ? globalNorm(this.grads, this.arena) / A : NaN;
    const gradScale = (gradClip > 0 ? clipCoefficient(gradNorm, gradClip) : 1) / A;
    timings.clip = performance.now() - t;
    t = performance.now();
    this.optimizer.update(this.params, this.grads, lr, gradScale);
    timings.adamw = performance.now() - t;
    this.position.step++;
    return { loss, lr, gradNorm, timings };
  }

  /** Mean loss per target token over the validation set (or its first evalBatches batches); null without validation data. */
  async evaluate(): Promise<number | null> {
    const n = this.opts.evalBatches > 0 ? Math.min(this.opts.evalBatches, this.valLoader.batchesPerEpoch) : this.valLoader.batchesPerEpoch;
    if (n === 0) return null;
    this.evalSession ??= await TrainSession.create(this.config, this.layout, this.frozen, {
      ...this.runtime,
      batchSize: this.opts.batchSize,
      seqLen: this.opts.seqLen,
      train: false,
    });
    let sum = 0;
    let count = 0;
    for (let k = 0; k < n; k++) {
      const batch = this.valLoader.batch(k);
      sum += (await this.evalSession.run(this.params, batch)) * batch.count;
      count += batch.count;
    }
    return sum / count;
  }

  /** Greedy continuation of `prompt` by the current parameters (a short-lived inference session). */
  async sample(prompt: number[], maxTokens: number): Promise<number[]> {
    const weights = new Map<string, WeightSource>();
    for (const [name, t] of this.allParams()) weights.set(name, { kind: 'memory', data: t.data, shape: t.shape });
    const model = await ModelSession.create(this.config, weights, { ...this.runtime, slots: 1 });
    try {
      const room = Math.max(0, Math.min(maxTokens, this.config.contextLength - prompt.length));
      const out: number[] = [];
      for await (const s of generate(model, prompt.slice(-this.config.contextLength + 1), { maxTokens: room, temperature: 0, ignoreEos: true })) out.push(s.token);
      return out;
    } finally {
      await model.close();
    }
  }

  /** Every parameter in GPT-2 order: trainable ones as views into the flat buffer, frozen ones as given. */
  allParams(): Params {
    const trained = this.layout.params(this.params);
    const all: Params = new Map();
    for (const { name } of parameterSpecs(this.config)) {
      const frozen = this.frozen.get(name);
      all.set(name, frozen?.kind === 'memory' ? { shape: frozen.shape, data: frozen.data } : trained.get(name)!);
    }
    return all;
  }

  /**
   * A Hugging Face folder (config.json + model.safetensors) plus training_state.safetensors
   * (AdamW moments, position, options, `extra` for the caller). Each file is replaced
   * atomically, the model first; the state records a hash of the parameters it belongs to, so
   * a crash between the two writes is detected on resume instead of silently mixing steps.
   */
  save(dir: string, extra: Record<string, unknown> = {}): void {
    const params = this.allParams();
    saveCheckpoint(dir, this.config, params);
    const tensors = this.layout.segments.flatMap((s) => [
      { name: `m.${s.name}`, dtype: 'F32' as const, shape: s.shape, data: this.layout.view(this.optimizer.m, s.name) },
      { name: `v.${s.name}`, dtype: 'F32' as const, shape: s.shape, data: this.layout.view(this.optimizer.v, s.name) },
    ]);
    const state: SavedState = { position: this.position, optimizerStep: this.optimizer.step, options: this.opts, config: this.config, paramsHash: paramsHash(params), extra };
    writeSafetensors(path.join(dir, STATE_FILE), tensors, { metadata: { format: STATE_FORMAT, state: JSON.stringify(state) } });
  }

  /** What a checkpoint's training state says (options, position, the caller's `extra`), without loading tensors. */
  static savedState(dir: string): SavedState {
    const file = path.join(dir, STATE_FILE);
    if (!fs.existsSync(file)) throw new Error(`${dir} has no ${STATE_FILE}: nothing to resume (was it written by scratchgpt pretrain?)`);
    const meta = openSafetensors(file).metadata;
    if (meta.format !== STATE_FORMAT) throw new Error(`${file}: unknown format '${meta.format}' (expected ${STATE_FORMAT})`);
    return JSON.parse(meta.state!);
  }

  /**
   * Continues a run saved by save(): same parameters, moments, position and options (`overrides`
   * may extend maxSteps or change evaluation; anything else changes the run).
   */
  static async resume(dir: string, data: TrainData, overrides: Partial<TrainOptions> = {}, runtime: RuntimeOptions = {}): Promise<Trainer> {
    const saved = Trainer.savedState(dir);
    const file = path.join(dir, STATE_FILE);
    const ckpt = loadCheckpoint(dir);
    const config: GPTConfig = { ...saved.config, chatTemplate: ckpt.config.chatTemplate };
    for (const k of ['vocabSize', 'contextLength', 'nEmbd', 'nLayer', 'nHead', 'qkvBias', 'tieWordEmbeddings'] as const) {
      if (ckpt.config[k] !== saved.config[k]) throw new Error(`${dir}: config.json has ${k}=${ckpt.config[k]} but the training state has ${saved.config[k]}`);
    }
    const params = materialize(ckpt.weights);
    if (paramsHash(params) !== saved.paramsHash) {
      throw new Error(`${dir}: model.safetensors does not belong to ${STATE_FILE} (a save was interrupted between the two files); the model itself is usable, but this run cannot resume exactly`);
    }
    const trainer = await Trainer.create(config, params, data, { ...saved.options, ...overrides }, runtime);
    const state = openSafetensors(file);
    for (const s of trainer.layout.segments) {
      trainer.layout.view(trainer.optimizer.m, s.name).set(readTensorF32(state, `m.${s.name}`));
      trainer.layout.view(trainer.optimizer.v, s.name).set(readTensorF32(state, `v.${s.name}`));
    }
    trainer.optimizer.step = saved.optimizerStep;
    trainer.position = { ...saved.position };
    return trainer;
  }

  /** Stops ORT profiling (Trainer.create's debug.profile) and returns the trace file. */
  endProfiling(): string {
    return this.session.endProfiling();
  }

  async close(): Promise<void> {
    await this.session.close();
    await this.evalSession?.close();
  }
}

function validate(config: GPTConfig, o: TrainOptions): void {
  const positiveInt = { batchSize: o.batchSize, seqLen: o.seqLen, stride: o.stride, gradAccum: o.gradAccum };
  for (const [k, v] of Object.entries(positiveInt)) if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  if (o.seqLen > config.contextLength) throw new Error(`max length ${o.seqLen} exceeds the model's context length ${config.contextLength}`);
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < 0) throw new Error(`maxSteps must be a non-negative integer, got ${o.maxSteps}`);
  if (!(o.lr > 0) || !(o.minLr >= 0)) throw new Error(`learning rates must be positive (lr ${o.lr}, min lr ${o.minLr})`);
  if (!(o.gradClip >= 0)) throw new Error(`grad clip must be ≥ 0, got ${o.gradClip}`);
}

/** FNV-1a over the parameters' bits in GPT-2 order: identifies the exact weights a state belongs to. */
export function paramsHash(params: Params): string {
  let h = 0x811c9dc5;
  for (const name of [...params.keys()].sort()) {
    const d = params.get(name)!.data;
    const words = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
