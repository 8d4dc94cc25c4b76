// Pretraining (the book's chapter 5, nanoGPT's train.py): next-token prediction on sliding
// windows of a text, every parameter trainable (or those a pattern selects), warmup + cosine
// learning rate, gradient accumulation and clipping, evaluation every N steps with a greedy
// sample, and the checkpoint in the run's folder: a Hugging Face model folder plus the one
// training state (state.ts). The loop, the step and the state are the ones finetuning uses (fit.ts).
import { loadCheckpoint, materialize, saveCheckpoint, type WeightSource } from '../model/checkpoint.js';
import type { GPTConfig } from '../model/config.js';
import { parameterSpecs } from '../model/gpt.js';
import { generate } from '../model/generation.js';
import type { Params } from '../model/params.js';
import type { RuntimeOptions } from '../model/runtime.js';
import { ModelSession } from '../model/session.js';
import { decode, encode } from '../model/tokenizer.js';
import { ADAMW_DEFAULTS, type AdamWConfig, type DecayPolicy } from './adamw.js';
import { BatchLoader, SlidingWindows } from './data.js';
import { Fingerprint, paramsHash } from './fingerprint.js';
import { emptyLoopSums, fit, trainStep, type FitEvent, type LoopSums, type StepResult, type TrainBatches } from './fit.js';
import { FlatLayout } from './flat.js';
import { legacyDataHash } from './legacy-state.js';
import { learningRate } from './schedule.js';
import { SessionPool } from './session-pool.js';
import { TrainSession } from './session.js';
import { STATE_FILE, TrainingState, type Position, type StateRecord } from './state.js';

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

/** Pretraining's own part of a checkpoint's record. */
export interface PretrainRun {
  options: TrainOptions;
  config: GPTConfig;
  /** paramsHash of the model folder written with the state. */
  modelHash: string;
  /** The caller's (the CLI's: data files, evaluation settings). */
  extra: Record<string, unknown>;
}

export type SavedPretrain = PretrainRun & Pick<StateRecord, 'position' | 'fingerprint' | 'loop' | 'legacy'>;

/** How `fit` evaluates and checkpoints. */
export interface PretrainCadence {
  /** Evaluate, sample and checkpoint every N steps (and after the last). */
  evalEvery: number;
  samplePrompt: string;
  /** Tokens per greedy sample; 0 = none. */
  sampleTokens: number;
}

export class Pretrainer {
  readonly trainLoader: BatchLoader;
  readonly valLoader: BatchLoader;
  /** The loop's running sums (a resumed checkpoint's). */
  loop: LoopSums = emptyLoopSums();
  private readonly batches: TrainBatches;

  private constructor(
    readonly config: GPTConfig,
    readonly opts: TrainOptions,
    readonly state: TrainingState,
    private readonly frozen: Map<string, WeightSource>,
    data: TrainData,
    private readonly sessions: SessionPool,
    readonly runtime: RuntimeOptions,
  ) {
    const loader = (tokens: Int32Array, train: boolean) =>
      new BatchLoader(new SlidingWindows(tokens, opts.seqLen, opts.stride), { batchSize: opts.batchSize, shuffle: train, dropLast: train, seed: opts.seed });
    this.trainLoader = loader(data.train, true);
    this.valLoader = loader(data.val, false);
    if (this.trainLoader.batchesPerEpoch === 0) {
      throw new Error(`the training text gives ${this.trainLoader.windows.length} windows of ${opts.seqLen + 1} tokens, fewer than one batch of ${opts.batchSize}: use more data, or a smaller --batch-size or --max-length`);
    }
    const train = this.trainLoader;
    this.batches = { batchesPerEpoch: train.batchesPerEpoch, batch: (k) => { const batch = train.batch(k); return { batch, seqLen: opts.seqLen, tokens: batch.count }; } };
    this.fingerprint = dataFingerprint(data.train);
  }

  /** Identifies the run's training data (a resume with other data is refused). */
  readonly fingerprint: string;

  /** A trainer over `params` (as loaded or freshly initialised; all of GPT-2's tensors). */
  static async create(config: GPTConfig, params: Params, data: TrainData, opts: TrainOptions, runtime: RuntimeOptions = {}, debug: { profile?: string } = {}): Promise<Pretrainer> {
    checkOptions(config, opts);
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
    const state = new TrainingState(layout, params, opts.adamw, opts.decay);
    const sessions = new SessionPool((seqLen, train) =>
      TrainSession.create(config, layout, frozen, { ...runtime, ...(train && debug), batchSize: opts.batchSize, seqLen, train }),
    );
    await sessions.get(opts.seqLen, true); // built now: a wrong shape fails here, and a timed first step is a step
    return new Pretrainer(config, opts, state, frozen, data, sessions, runtime);
  }

  get layout(): FlatLayout {
    return this.state.layout;
  }

  get params(): Float32Array {
    return this.state.params;
  }

  get optimizer(): TrainingState['optimizer'] {
    return this.state.optimizer;
  }

  get position(): Position {
    return this.state.position;
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
  step(): Promise<StepResult> {
    return trainStep(this.state, this.batches, this.sessions, this.lrAt(this.position.step), this.stepOptions());
  }

  private stepOptions() {
    const { gradAccum, gradClip, seed } = this.opts;
    return { gradAccum, gradClip, seed, dropout: this.config.dropout };
  }

  /**
   * Trains to maxSteps with the one loop: every `evalEvery` steps (and after the last, and at a
   * cancel with saveOnCancel) the validation loss and a sample, then a checkpoint into `dir`.
   * Throws TrainingCancelled when `signal` stopped it.
   */
  async fit(dir: string, cadence: PretrainCadence, extra: Record<string, unknown>, hooks: { onEvent?(e: FitEvent): void; signal?: AbortSignal; saveOnCancel?: boolean } = {}): Promise<void> {
    const { maxSteps } = this.opts;
    const plan = {
      totalSteps: maxSteps,
      lr: (step: number) => this.lrAt(step),
      step: this.stepOptions(),
      evaluateAfter: (step: number) => step > 0 && (step % cadence.evalEvery === 0 || step === maxSteps),
      checkpointAfter: () => false,
      evaluateOnCancel: true,
      divergedHint: 'lower --lr or raise --warmup-steps',
    };
    this.loop = await fit(this.state, this.batches, this.sessions, plan, {
      evaluate: async () => {
        const valLoss = await this.evaluate();
        const sample = cadence.sampleTokens > 0 ? cadence.samplePrompt + decode(await this.sample(encode(cadence.samplePrompt), cadence.sampleTokens)) : undefined;
        return { ...(valLoss !== null && { valLoss }), ...(sample !== undefined && { sample }) };
      },
      checkpoint: (loop) => this.save(dir, extra, loop),
      ...hooks,
    }, this.loop);
  }

  /** Mean loss per target token over the validation set (or its first evalBatches batches); null without validation data. */
  async evaluate(): Promise<number | null> {
    const n = this.opts.evalBatches > 0 ? Math.min(this.opts.evalBatches, this.valLoader.batchesPerEpoch) : this.valLoader.batchesPerEpoch;
    if (n === 0) return null;
    const session = await this.sessions.get(this.opts.seqLen, false);
    let sum = 0;
    let count = 0;
    for (let k = 0; k < n; k++) {
      const batch = this.valLoader.batch(k);
      sum += (await session.run(this.params, batch)) * batch.count;
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
   * A Hugging Face folder (config.json + model.safetensors) plus the training state (`extra` for
   * the caller). Each file is replaced atomically, the model first; the state records a hash of
   * the model it belongs to, so a crash between the two writes is detected on resume instead of
   * silently mixing steps.
   */
  save(dir: string, extra: Record<string, unknown> = {}, loop: LoopSums = this.loop): void {
    const params = this.allParams();
    saveCheckpoint(dir, this.config, params);
    const run: PretrainRun = { options: this.opts, config: this.config, modelHash: paramsHash(params), extra };
    this.state.save(dir, { fingerprint: this.fingerprint, loop, run });
  }

  /** What a checkpoint's training state says (options, position, the caller's `extra`), without loading tensors. */
  static savedState(dir: string): SavedPretrain {
    const r = TrainingState.record<PretrainRun>(dir);
    if (r.run.options === undefined) throw new Error(`${dir}: its training state is not a pretraining run's (was it written by scratchgpt finetune?)`);
    return { ...r.run, position: r.position, fingerprint: r.fingerprint, loop: r.loop, ...(r.legacy !== undefined && { legacy: r.legacy }) };
  }

  /**
   * Continues a run saved by save() (or by the pretraining of earlier versions): same parameters,
   * moments, position and options (`overrides` may extend maxSteps or change evaluation;
   * anything else changes the run).
   */
  static async resume(dir: string, data: TrainData, overrides: Partial<TrainOptions> = {}, runtime: RuntimeOptions = {}): Promise<Pretrainer> {
    const saved = Pretrainer.savedState(dir);
    const ckpt = loadCheckpoint(dir);
    const config: GPTConfig = { ...saved.config, chatTemplate: ckpt.config.chatTemplate };
    for (const k of ['vocabSize', 'contextLength', 'nEmbd', 'nLayer', 'nHead', 'qkvBias', 'tieWordEmbeddings'] as const) {
      if (ckpt.config[k] !== saved.config[k]) throw new Error(`${dir}: config.json has ${k}=${ckpt.config[k]} but the training state has ${saved.config[k]}`);
    }
    const params = materialize(ckpt.weights);
    if (paramsHash(params) !== saved.modelHash) {
      throw new Error(`${dir}: model.safetensors does not belong to ${STATE_FILE} (a save was interrupted between the two files); the model itself is usable, but this run cannot resume exactly`);
    }
    const expected = saved.legacy ? legacyDataHash(data.train) : dataFingerprint(data.train);
    if (saved.fingerprint && saved.fingerprint !== expected) throw new Error('the training data differs from the saved run\'s (files changed?): cannot resume exactly');
    const trainer = await Pretrainer.create(config, params, data, { ...saved.options, ...overrides }, runtime);
    trainer.loop = trainer.state.load(dir).loop;
    return trainer;
  }

  /** Stops ORT profiling (Pretrainer.create's debug.profile) and returns the trace file. */
  async endProfiling(): Promise<string> {
    return (await this.sessions.get(this.opts.seqLen, true)).endProfiling();
  }

  async close(): Promise<void> {
    await this.sessions.close();
  }
}

function dataFingerprint(tokens: Int32Array): string {
  return new Fingerprint().bytes(tokens).digest();
}

function checkOptions(config: GPTConfig, o: TrainOptions): void {
  const positiveInt = { batchSize: o.batchSize, seqLen: o.seqLen, stride: o.stride, gradAccum: o.gradAccum };
  for (const [k, v] of Object.entries(positiveInt)) if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  if (o.seqLen > config.contextLength) throw new Error(`max length ${o.seqLen} exceeds the model's context length ${config.contextLength}`);
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < 0) throw new Error(`maxSteps must be a non-negative integer, got ${o.maxSteps}`);
  if (!(o.lr > 0) || !(o.minLr >= 0)) throw new Error(`learning rates must be positive (lr ${o.lr}, min lr ${o.minLr})`);
  if (!(o.gradClip >= 0)) throw new Error(`grad clip must be ≥ 0, got ${o.gradClip}`);
}
