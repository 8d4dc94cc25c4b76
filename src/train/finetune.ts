// Finetuning a pretrained GPT-2, the book's chapters 6 (classification), 7 (instructions) and
// appendix E (LoRA), as one resumable run:
//
//   runFinetune(spec, hooks) → the finetuned model, a Hugging Face folder in spec.outDir.
//
// The loop is the book's train_classifier_simple / train_model_simple: one AdamW step per batch
// at a constant learning rate (no warmup, no clipping unless asked), evaluation at each epoch's
// end: the one loop (fit.ts) with the book's schedule. What finetuning adds: the data (examples
// padded to bucketed lengths, one ORT session per length: finetune-data.ts, session-pool.ts),
// the trainable selection (method), the head (a new classifier, or the LM head) and the work
// folder of checkpoints (finetune-checkpoint.ts). Frozen tensors are graph initializers. Every
// random draw comes from (seed, position) streams, so a run resumed from a checkpoint ends with
// the same parameters, bit for bit, as an uninterrupted one.
import fs from 'node:fs';
import path from 'node:path';
import { writeAlpacaChatFiles } from '../model/chat-template.js';
import { loadCheckpoint, materialize, saveCheckpoint, weightFiles as baseWeightFiles, type WeightSource } from '../model/checkpoint.js';
import type { GPTConfig } from '../model/config.js';
import { CLASSIFIER_HEAD, LM_HEAD, parameterSpecs } from '../model/gpt.js';
import { replaceDir, restoreReplacedDirs } from '../model/durable.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, isPeftAdapterFolder, modelFolders, writePeftAdapter } from '../model/peft-adapter.js';
import type { ParamSpec, Params } from '../model/params.js';
import { Rng } from '../model/rng.js';
import type { Device } from '../model/runtime.js';
import { writeSafetensors } from '../model/safetensors.js';
import { crashPoint } from '../faults/crash-point.js';
import { sortedLabels, type ClassificationRecord, type InstructionRecord } from '../datasets/index.js';
import { ADAMW_DEFAULTS, type DecayPolicy } from './adamw.js';
import { claimWorkDir, latestFinetuneCheckpoint, saveFinetuneCheckpoint } from './finetune-checkpoint.js';
import { FINETUNE_DEFAULTS } from './finetune-defaults.js';
import { batchLength, ClassificationExamples, classificationTokens, evalBatches, InstructionExamples, TrainOrder, type Examples } from './finetune-data.js';
import { Fingerprint } from './fingerprint.js';
import { countCorrect, emptyLoopSums, fit, TrainingCancelled, type CheckpointReport, type FitEvent, type FitPlan, type TrainBatches } from './fit.js';
import { FlatLayout } from './flat.js';
import { loraInit, loraSpecs, mergeLora, validateLora, type LoraConfig } from './lora.js';
import { SessionPool } from './session-pool.js';
import { TrainSession } from './session.js';
import { TrainingState } from './state.js';
import { HEAD_STREAM, LORA_STREAM, streamSeed } from './streams.js';

export type FinetuneTask = { type: 'instruction'; maskPrompt?: boolean } | { type: 'classification' };
export type FinetuneMethod = { type: 'full' } | { type: 'last_blocks'; n: number } | { type: 'lora'; rank: number; alpha: number };

export interface FinetuneSpec {
  /** Hugging Face GPT-2 folder (config.json + model.safetensors), or a PEFT adapter folder, to start from. */
  baseModelDir: string;
  /** Optional: a PEFT LoRA adapter folder applied to baseModelDir first (a model served with --lora). */
  baseLora?: string;
  /** The finetuned model's folder, written at the end (temporary folder + rename). */
  outDir: string;
  /**
   * Optional, LoRA on instructions: outDir becomes a PEFT adapter folder (adapter_config.json naming
   * `base` as base_model_name_or_path, adapter_model.safetensors, the chat files) instead of the
   * merged model. Classification always writes the merged model: its new head is no LoRA factor.
   */
  adapter?: { base: string; revision?: string };
  /** Checkpoints and resume state; a folder holding an earlier run of the same spec is resumed. */
  workDir: string;
  task: FinetuneTask;
  /** Callers default classification to last_blocks n=1 (the book: last block + final LayerNorm + head). */
  method: FinetuneMethod;
  /** Records as parseDataset returns them (instruction: chat, prompt/completion or Alpaca). */
  train: InstructionRecord[] | ClassificationRecord[];
  validation?: InstructionRecord[] | ClassificationRecord[];
  /** Classification: label order = class ids (default: sortedLabels of train). */
  labels?: string[];
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** AdamW decoupled weight decay (default 0.1, the book's). */
  weightDecay?: number;
  /**
   * Rows are truncated to this many tokens (default: the context length; classification: the
   * longest training example, at most the context length, as the book's SpamDataset).
   */
  maxLength?: number;
  /** Also checkpoint every N steps (default: at epoch ends only). */
  checkpointEverySteps?: number;
  threads?: number;
  /** Where the forward and backward graphs run (default cpu); AdamW stays on the host. */
  device?: Device;
  /** Optional: global gradient-norm clipping (default 0 = off, as the book's chapters 6 and 7). */
  gradClip?: number;
  /** Optional: which tensors weight decay applies to (default 'all': the book decays every trainable parameter). */
  decay?: DecayPolicy;
  /** Optional: validation batches per evaluation (default: the whole validation set). */
  evalBatches?: number;
}

export interface FinetuneCheckpoint extends CheckpointReport {
  /** A loadable Hugging Face model folder for this checkpoint. */
  dir: string;
}

export interface FinetuneHooks {
  /** Every step's event; at step 0 and each epoch's end with the validation loss (and accuracy). */
  onEvent?(e: FitEvent): void;
  onCheckpoint?(c: FinetuneCheckpoint): void;
  /** Cancel: stop after the current step, throw TrainingCancelled. */
  signal?: AbortSignal;
  /** Optional: write a checkpoint before throwing TrainingCancelled (the CLI's Ctrl-C), so a resume loses nothing. */
  saveOnCancel?: boolean;
}

export interface FinetuneResult {
  outDir: string;
  /** Example tokens processed (padding excluded), over all epochs. */
  trainedTokens: number;
  steps: number;
  /** Mean step loss over the last epoch. */
  finalTrainLoss: number;
  finalValLoss?: number;
  finalValAccuracy?: number;
}

/** Training batches behind the step-0 training loss (the book's eval_iter). */
const INITIAL_TRAIN_BATCHES = 5;

export async function runFinetune(spec: FinetuneSpec, hooks: FinetuneHooks = {}): Promise<FinetuneResult> {
  const run = prepare(spec);
  const pool = new SessionPool((seqLen, train) =>
    TrainSession.create(run.config, run.state.layout, run.frozen, {
      threads: spec.threads,
      device: spec.device,
      batchSize: spec.batchSize,
      seqLen,
      train,
      head: run.classify ? 'classify' : 'lm',
      lora: run.lora,
    }),
  );
  try {
    return await train(spec, run, pool, hooks);
  } finally {
    await pool.close();
  }
}

/** Everything a run needs before its first step: model, data, trainable set. */
interface Run {
  config: GPTConfig;
  classify: boolean;
  lora: LoraConfig | undefined;
  /** Every GPT-2 tensor of the output model at its starting value (trainable ones are in `state`). */
  base: Params;
  state: TrainingState;
  frozen: Map<string, WeightSource>;
  train: Examples;
  validation: Examples | undefined;
  order: TrainOrder;
  totalSteps: number;
  fingerprint: string;
}

function prepare(spec: FinetuneSpec): Run {
  validateSpec(spec);
  const out = path.resolve(spec.outDir);
  restoreReplacedDirs(path.dirname(out), path.basename(out)); // a previous output set aside by a run killed mid-swap
  const base = loadCheckpoint(spec.baseModelDir, { lora: spec.baseLora });
  const classify = spec.task.type === 'classification';
  let config: GPTConfig;
  let labels: string[] | undefined;
  if (classify) {
    const train = spec.train as ClassificationRecord[];
    labels = spec.labels ?? sortedLabels(train, train.every((r) => typeof r.label === 'number') ? 'integer' : 'string');
    if (labels.length < 2) throw new Error(`classification needs at least 2 labels, the data has ${JSON.stringify(labels)}`);
    if (base.config.labels && JSON.stringify(base.config.labels) !== JSON.stringify(labels)) {
      throw new Error(`the base model is a classifier for ${JSON.stringify(base.config.labels)}, not ${JSON.stringify(labels)}`);
    }
    // A classifier has no language-model head: an untied base's lm_head is dropped below.
    const { chatTemplate: _, tieWordEmbeddings: __, ...lm } = base.config;
    config = { ...lm, labels };
  } else {
    if (base.config.labels) throw new Error('the base model is a classifier: instruction finetuning needs a language model');
    config = { ...base.config, chatTemplate: 'alpaca' }; // saved as the Alpaca Jinja template in tokenizer_config.json
  }
  const C = config.contextLength;
  const encoded = classify ? classificationTokens(spec.train as ClassificationRecord[]) : [];
  const maxLength = spec.maxLength ?? (classify ? Math.min(C, encoded.reduce((m, t) => Math.max(m, t.length), 0)) : C);
  if (maxLength > C) throw new Error(`maxLength ${maxLength} exceeds the model's context length ${C}`);
  const examples = (records: FinetuneSpec['train'], tokens?: number[][]): Examples =>
    classify
      ? new ClassificationExamples(records as ClassificationRecord[], tokens ?? classificationTokens(records as ClassificationRecord[]), labels!, maxLength)
      : new InstructionExamples(records as InstructionRecord[], maxLength, spec.task.type === 'instruction' && spec.task.maskPrompt === true);
  const train = examples(spec.train, encoded);
  const validation = spec.validation?.length ? examples(spec.validation) : undefined;

  // The output model's tensors: the base's, plus a new seeded head (HF's init: N(0, 0.02)).
  const params = materialize(base.weights);
  if (classify) params.delete(LM_HEAD);
  if (classify && !params.has(CLASSIFIER_HEAD)) {
    const rng = new Rng(streamSeed(spec.seed, HEAD_STREAM));
    const data = Float32Array.from({ length: labels!.length * config.nEmbd }, () => 0.02 * rng.normal());
    params.set(CLASSIFIER_HEAD, { shape: [labels!.length, config.nEmbd], data });
  }
  const method = spec.method;
  const lora = method.type === 'lora' ? { rank: method.rank, alpha: method.alpha } : undefined;
  const trainable = trainableSpecs(config, method, classify);
  const layout = new FlatLayout(trainable);
  const initial = lora ? new Map([...params, ...loraInit(config, lora, streamSeed(spec.seed, LORA_STREAM))]) : params;
  const state = new TrainingState(layout, initial, { ...ADAMW_DEFAULTS, weightDecay: spec.weightDecay ?? FINETUNE_DEFAULTS.weightDecay }, spec.decay ?? 'all');
  for (const s of layout.segments) params.delete(s.name); // lives in the state now (outputParams reads it there)
  // Frozen tensors straight from the base file where they are float32 there (ORT maps it; every
  // session shares the same pages), else from memory.
  const frozen = new Map<string, WeightSource>();
  for (const s of parameterSpecs(config)) {
    if (layout.byName.has(s.name)) continue;
    const t = params.get(s.name)!;
    frozen.set(s.name, base.weights.get(s.name) ?? { kind: 'memory', data: t.data, shape: t.shape });
  }
  const order = new TrainOrder(train.size, spec.batchSize, spec.seed);
  return {
    config,
    classify,
    lora,
    base: params,
    state,
    frozen,
    train,
    validation,
    order,
    totalSteps: spec.epochs * order.batchesPerEpoch,
    fingerprint: fingerprint(spec, config, maxLength),
  };
}

/**
 * The tensors that train, by method. Embeddings never train except in 'full'; the classifier
 * head always trains (it starts random); an untied lm_head trains with the last blocks, as the
 * book's out_head does.
 */
function trainableSpecs(config: GPTConfig, method: FinetuneMethod, classify: boolean): ParamSpec[] {
  const specs = parameterSpecs(config);
  const head = specs.filter((s) => s.name === CLASSIFIER_HEAD);
  switch (method.type) {
    case 'full':
      return specs;
    case 'last_blocks': {
      const L = config.nLayer;
      if (!(Number.isInteger(method.n) && method.n >= 1 && method.n <= L)) throw new Error(`last_blocks n must be an integer in 1…${L}, got ${method.n}`);
      const first = L - method.n;
      return specs.filter((s) => {
        const layer = /^h\.(\d+)\./.exec(s.name)?.[1];
        return layer !== undefined ? Number(layer) >= first : s.name.startsWith('ln_f.') || s.name === CLASSIFIER_HEAD || s.name === LM_HEAD;
      });
    }
    case 'lora':
      validateLora(method);
      return [...loraSpecs(config, method.rank), ...(classify ? head : [])];
  }
}

async function train(spec: FinetuneSpec, run: Run, pool: SessionPool, hooks: FinetuneHooks): Promise<FinetuneResult> {
  const { state, order, totalSteps } = run;
  claimWorkDir(spec.workDir, run.fingerprint, { task: spec.task, method: spec.method, base: path.resolve(spec.baseModelDir) });
  let loop = emptyLoopSums();
  const resumed = latestFinetuneCheckpoint(spec.workDir);
  if (resumed) {
    if (resumed.state.fingerprint !== run.fingerprint) throw new Error(`${resumed.dir} belongs to another finetuning run: use a fresh work folder`);
    loop = state.load(resumed.dir).loop;
  }
  const B = spec.batchSize;
  const bpe = order.batchesPerEpoch;
  const batches: TrainBatches = {
    batchesPerEpoch: bpe,
    batch(k) {
      const indices = order.indices(k);
      const seqLen = batchLength(run.train, indices);
      return { batch: run.train.batch(indices, B, seqLen), seqLen, tokens: indices.reduce((n, i) => n + run.train.length(i), 0) };
    },
  };
  // The book's loop: constant learning rate, evaluation before the first step and at each epoch's end.
  const every = spec.checkpointEverySteps;
  const plan: FitPlan = {
    totalSteps,
    lr: () => spec.lr,
    step: { gradAccum: 1, gradClip: spec.gradClip ?? 0, seed: spec.seed, dropout: run.config.dropout, ...(run.classify && { classes: run.config.labels!.length }) },
    evaluateAfter: (step) => step % bpe === 0,
    checkpointAfter: (step) => every !== undefined && step % every === 0,
    divergedHint: 'lower the learning rate',
  };
  loop = await fit(state, batches, pool, plan, {
    async evaluate(step, signal) {
      if (step > 0) return validationScores(run, pool, spec, signal);
      const first = Array.from({ length: Math.min(INITIAL_TRAIN_BATCHES, bpe) }, (_, k) => order.indices(k));
      const initial = await evaluate(run, pool, run.train, first, B, signal);
      return { trainLoss: initial.loss, ...(await validationScores(run, pool, spec, signal)) };
    },
    checkpoint(sums, report) {
      const dir = saveFinetuneCheckpoint(spec.workDir, { config: run.config, params: outputParams(run) }, state, { fingerprint: run.fingerprint, loop: sums }, report);
      hooks.onCheckpoint?.({ ...report, dir });
    },
    onEvent: (e) => hooks.onEvent?.(e),
    signal: hooks.signal,
    get saveOnCancel() {
      return hooks.saveOnCancel; // read when the signal fires: a jobs thread decides it then (stop, not cancel)
    },
  }, loop);

  writeOutput(spec, run);
  return {
    outDir: spec.outDir,
    trainedTokens: state.position.tokensSeen,
    steps: totalSteps,
    finalTrainLoss: loop.last.trainLoss ?? NaN,
    ...(loop.last.valLoss !== undefined && { finalValLoss: loop.last.valLoss }),
    ...(loop.last.valAccuracy !== undefined && { finalValAccuracy: loop.last.valAccuracy }),
  };
}

/** Validation loss (and accuracy for classification) over the validation set, or nothing without one. */
async function validationScores(run: Run, pool: SessionPool, spec: FinetuneSpec, signal?: AbortSignal): Promise<{ valLoss?: number; valAccuracy?: number }> {
  if (!run.validation) return {};
  const r = await evaluate(run, pool, run.validation, evalBatches(run.validation, spec.batchSize, spec.evalBatches), spec.batchSize, signal);
  return { valLoss: r.loss, ...(r.accuracy !== undefined && { valAccuracy: r.accuracy }) };
}

/**
 * Mean loss per target (per predicted token for instructions, per example for classification)
 * over the given batches, and classification accuracy. Token-weighted, so it does not depend on
 * how examples fall into batches (the book averages per-batch means instead).
 */
async function evaluate(run: Run, pool: SessionPool, examples: Examples, batches: number[][], B: number, signal?: AbortSignal): Promise<{ loss: number; accuracy?: number }> {
  let sum = 0;
  let count = 0;
  let correct = 0;
  const K = run.config.labels?.length ?? 0;
  for (const indices of batches) {
    if (signal?.aborted) throw new TrainingCancelled(run.state.position.step);
    const T = batchLength(examples, indices);
    const batch = examples.batch(indices, B, T);
    const logits = run.classify ? new Float32Array(B * K) : undefined;
    const loss = await (await pool.get(T, false)).run(run.state.params, batch, { logits });
    sum += loss * batch.count;
    count += batch.count;
    if (logits) correct += countCorrect(logits, batch.targets, K).correct;
  }
  return { loss: sum / count, ...(run.classify && { accuracy: correct / count }) };
}

/** The model as it stands: base tensors with the trained ones in place, LoRA merged into W. */
function outputParams(run: Run): Params {
  const trained = run.state.layout.params(run.state.params);
  if (run.lora) {
    const head = trained.get(CLASSIFIER_HEAD);
    const merged = mergeLora(run.config, run.base, trained, run.lora);
    if (head) merged.set(CLASSIFIER_HEAD, head);
    return merged;
  }
  const out: Params = new Map();
  for (const { name } of parameterSpecs(run.config)) out.set(name, trained.get(name) ?? run.base.get(name)!);
  return out;
}

/**
 * The final model into outDir, atomically: written beside it, then renamed over it (a previous
 * folder there is moved aside first, since a folder cannot be renamed over a non-empty one).
 * With spec.adapter, a LoRA run's outDir is a PEFT adapter folder; otherwise the merged model, and
 * the adapters are also kept in workDir/adapter.safetensors (a few MB) for inspection or reuse.
 */
function writeOutput(spec: FinetuneSpec, run: Run): void {
  const out = path.resolve(spec.outDir);
  const parent = path.dirname(out);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const adapter = spec.adapter && run.lora && !run.classify ? spec.adapter : undefined;
  try {
    if (adapter) {
      // F32: the factors exactly as trained (a few MB), so loading merges to the weights training evaluated.
      const adapters = new Map([...run.state.layout.params(run.state.params)].filter(([name]) => name.includes('.lora_')));
      writePeftAdapter(tmp, { base: adapter.base, ...(adapter.revision !== undefined && { revision: adapter.revision }), rank: run.lora!.rank, alpha: run.lora!.alpha, adapters });
      writeAlpacaChatFiles(tmp, run.config.contextLength);
    } else saveCheckpoint(tmp, run.config, outputParams(run));
    crashPoint('output.tmp-written');
    replaceDir(tmp, out);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (run.lora && !adapter) {
    const tensors = [...run.state.layout.params(run.state.params)].filter(([name]) => name.includes('.lora_')).map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data }));
    writeSafetensors(path.join(spec.workDir, 'adapter.safetensors'), tensors, {
      metadata: { format: 'scratchgpt-lora/1', rank: String(run.lora.rank), alpha: String(run.lora.alpha), scale: 'alpha/rank' },
    });
  }
}

function validateSpec(s: FinetuneSpec): void {
  const positiveInt = { epochs: s.epochs, batchSize: s.batchSize, ...(s.maxLength !== undefined && { maxLength: s.maxLength }), ...(s.checkpointEverySteps !== undefined && { checkpointEverySteps: s.checkpointEverySteps }), ...(s.threads !== undefined && { threads: s.threads }), ...(s.evalBatches !== undefined && { evalBatches: s.evalBatches }) };
  for (const [k, v] of Object.entries(positiveInt)) if (!(Number.isInteger(v) && v >= 1)) throw new Error(`${k} must be a positive integer, got ${v}`);
  if (!(s.lr > 0 && Number.isFinite(s.lr))) throw new Error(`lr must be a positive number, got ${s.lr}`);
  if (!Number.isSafeInteger(s.seed)) throw new Error(`seed must be an integer, got ${s.seed}`);
  if (s.weightDecay !== undefined && !(s.weightDecay >= 0)) throw new Error(`weightDecay must be ≥ 0, got ${s.weightDecay}`);
  if (s.gradClip !== undefined && !(s.gradClip >= 0)) throw new Error(`gradClip must be ≥ 0, got ${s.gradClip}`);
  if (s.train.length === 0) throw new Error('no training records');
  const records = [...s.train, ...(s.validation ?? [])];
  const classification = (r: object) => 'text' in r && 'label' in r;
  if (s.task.type === 'classification' && !records.every(classification)) throw new Error('classification needs {text, label} records');
  if (s.task.type === 'instruction' && records.some(classification)) throw new Error('instruction finetuning needs chat, prompt/completion or Alpaca records, not {text, label}');
  if (path.resolve(s.outDir) === path.resolve(s.workDir)) throw new Error('outDir and workDir must differ');
}

/**
 * Identifies a run: everything that changes its parameters (base weights, data, task, method,
 * hyperparameters), not what only changes where or how fast it runs (outDir, threads, device,
 * checkpoint interval).
 */
function fingerprint(spec: FinetuneSpec, config: GPTConfig, maxLength: number): string {
  const h = new Fingerprint().json({
    format: 1,
    config,
    task: spec.task,
    method: spec.method,
    epochs: spec.epochs,
    batchSize: spec.batchSize,
    lr: spec.lr,
    seed: spec.seed,
    weightDecay: spec.weightDecay ?? FINETUNE_DEFAULTS.weightDecay,
    maxLength,
    gradClip: spec.gradClip ?? 0,
    decay: spec.decay ?? 'all',
    evalBatches: spec.evalBatches ?? null,
  });
  h.json(spec.train).json(spec.validation ?? []);
  for (const file of weightFiles(spec.baseModelDir, spec.baseLora)) h.file(file);
  return h.digest();
}

/** The files that hold a model's weights: each adapter's two files, then the base's safetensors (one file, or the index and its shards). */
function weightFiles(dir: string, lora?: string): string[] {
  return modelFolders(dir, lora).flatMap((d) => {
    if (isPeftAdapterFolder(d)) return [path.join(d, ADAPTER_CONFIG), path.join(d, ADAPTER_WEIGHTS)];
    return baseWeightFiles(d);
  });
}
