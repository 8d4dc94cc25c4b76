// scratchgpt pretrain: train a GPT-2 on raw text files (next-token prediction), the book's
// chapter 5 loop: evaluation every N steps, greedy samples, checkpoints that resume exactly.
// Writes DIR/config.json + model.safetensors (a Hugging Face GPT-2 folder), DIR/training_state.safetensors,
// DIR/metrics.jsonl (one object per evaluation) and DIR/loss.svg.
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, materialize } from '../model/checkpoint.js';
import { presetConfig, PRESETS, validateConfig, type GPTConfig } from '../model/config.js';
import { INIT_SCHEMES, randomInit } from '../model/gpt.js';
import type { Params } from '../model/params.js';
import { resolveModel } from '../model/resolve.js';
import { EOT_TEXT, VOCAB_SIZE } from '../model/tokenizer.js';
import { DECAY_POLICIES } from '../train/adamw.js';
import { SlidingWindows, splitText, tokenize } from '../train/data.js';
import { mallocTuned, rerunWithMallocTuning } from '../train/malloc.js';
import { TrainingCancelled } from '../train/fit.js';
import { Pretrainer, TRAIN_DEFAULTS, type TrainData, type TrainOptions } from '../train/pretrain.js';
import { Reporter } from '../train/reporter.js';
import { RUNTIME_OPTIONS } from './common-options.js';
import { choice, flag, flagName, group, int, list, num, parseCommand, str, type Values } from './options.js';
import { interruptSignal } from './interrupt.js';
import { downloadProgress } from './progress.js';

const T = TRAIN_DEFAULTS;

const PRETRAIN = {
  name: 'pretrain',
  usage: 'usage: scratchgpt pretrain --data FILE [--data FILE…] --out DIR (--init DIR | --config NAME | --n-layer N --n-head H --n-embd C) [options]',
  options: {
    ...group('model (a new run)', {
      init: str({ arg: 'DIR', help: 'start from a Hugging Face GPT-2 folder or Hub id ORG/NAME[@REV]' }),
      config: choice(Object.keys(PRESETS), { arg: 'NAME', help: `start from random weights in a preset's shape: ${Object.keys(PRESETS).join(', ')}` }),
      nLayer: int({ arg: 'N', min: 1, help: 'start from random weights in a custom shape: N blocks (with --n-head and --n-embd)' }),
      nHead: int({ arg: 'H', min: 1, help: 'a custom shape: H attention heads' }),
      nEmbd: int({ arg: 'C', min: 1, help: 'a custom shape: C channels' }),
      contextLength: int({ arg: 'N', min: 1, defaultText: "the preset's, or 256 for a custom shape", help: 'positions' }),
      dropout: num({ arg: 'P', default: 0, help: 'dropout rate while training' }),
      qkvBias: flag({ help: "biases on q, k, v (default: the preset's; off for a custom shape, as the book)" }),
      noQkvBias: flag({ help: 'no biases on q, k, v' }),
      untiedHead: flag({
        help: "an output head of its own (lm_head.weight, config.json tie_word_embeddings false), as the book's GPTModel; default: tied to the token embedding, as GPT-2",
      }),
      initScheme: choice(INIT_SCHEMES, {
        arg: 'S',
        default: 'gpt2',
        help: "random initialisation: gpt2 (N(0, 0.02), residual projections scaled) or pytorch (the book's GPTModel under PyTorch defaults: embeddings N(0, 1), linear weights and biases U(±1/√fan_in))",
      }),
    }),
    ...group('data', {
      data: list({ arg: 'FILE', help: 'UTF-8 text (repeatable; files are joined with <|endoftext|>)' }),
      valRatio: num({ arg: 'R', default: 0.1, help: 'the last R of the characters are the validation set' }),
      maxLength: int({ arg: 'L', min: 1, defaultText: 'the context length', help: 'tokens per training window' }),
      stride: int({ arg: 'S', min: 1, defaultText: 'max length', help: 'tokens between window starts' }),
    }),
    ...group('training', {
      batchSize: int({ arg: 'B', min: 1, default: T.batchSize, help: 'windows per micro-batch' }),
      gradAccum: int({ arg: 'A', min: 1, default: T.gradAccum, help: 'micro-batches per optimizer step' }),
      epochs: num({ arg: 'E', defaultText: '1', help: 'length of the run in passes over the data (or --max-steps)' }),
      maxSteps: int({ arg: 'N', min: 0, help: 'length of the run in optimizer steps (or --epochs)' }),
      lr: num({ arg: 'LR', default: T.lr, help: 'peak learning rate' }),
      minLr: num({ arg: 'M', defaultText: 'lr/10', help: 'cosine decay floor' }),
      warmupSteps: int({ arg: 'W', min: 0, default: T.warmupSteps, help: 'linear warmup steps' }),
      weightDecay: num({ arg: 'WD', default: T.adamw.weightDecay, help: 'AdamW decoupled weight decay' }),
      decay: choice(DECAY_POLICIES, { default: T.decay, help: 'tensors that decay' }),
      beta1: num({ arg: 'B1', default: T.adamw.beta1, help: "AdamW's first-moment decay" }),
      beta2: num({ arg: 'B2', default: T.adamw.beta2, help: "AdamW's second-moment decay" }),
      gradClip: num({ arg: 'C', default: T.gradClip, help: 'global gradient-norm clipping, 0 = off' }),
      seed: int({ arg: 'S', default: T.seed, help: 'initialisation, shuffling and dropout' }),
    }),
    ...group('evaluation and output', {
      out: str({ arg: 'DIR', required: true, help: 'checkpoint folder (model, training state, metrics.jsonl, loss.svg)' }),
      evalEvery: int({ arg: 'N', min: 1, default: 100, help: 'evaluate, sample and save every N steps' }),
      evalBatches: int({ arg: 'N', min: 0, default: T.evalBatches, help: 'validation batches per evaluation, 0 = all' }),
      samplePrompt: str({ arg: 'TEXT', default: 'Every effort moves you', help: 'greedy sample at each evaluation' }),
      sampleTokens: int({ arg: 'N', min: 0, default: 20, help: 'tokens per sample, 0 = none' }),
      resume: flag({
        help: "continue the run saved in --out (same data, options and batches; only --max-steps/--epochs, --eval-*, --sample-*, --device, --threads and --data's location may change)",
      }),
      device: { ...RUNTIME_OPTIONS.device, help: 'where the forward and backward passes run (AdamW stays on the host)' },
      threads: RUNTIME_OPTIONS.threads,
    }),
  },
  epilog: 'Ctrl-C saves a checkpoint at the end of the current step and exits; --resume continues it.',
};

/** What may change on --resume. */
const ADJUSTABLE = new Set<string>(['out', 'resume', 'data', 'maxSteps', 'epochs', 'evalEvery', 'evalBatches', 'samplePrompt', 'sampleTokens', 'device', 'threads']);

interface RunRecord {
  data: string[];
  valRatio: number;
  evalEvery: number;
  samplePrompt: string;
  sampleTokens: number;
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(PRETRAIN, argv);
  if (!parsed) return 0; // --help
  const { values: a, given } = parsed;
  if (!mallocTuned()) return rerunWithMallocTuning(); // heap reuse for the per-step gradient buffers
  const out = path.resolve(a.out);
  const runtime = { threads: a.threads, device: a.device };
  if (a.epochs !== undefined && a.maxSteps !== undefined) throw new Error('give --epochs or --max-steps, not both');

  let trainer: Pretrainer;
  let record: RunRecord;
  if (a.resume) {
    for (const k of given) if (!ADJUSTABLE.has(k)) throw new Error(`${flagName(k)} cannot change on --resume (the run continues with its saved options)`);
    const saved = Pretrainer.savedState(out);
    const prev = saved.extra as unknown as RunRecord;
    record = { ...prev, data: a.data ? a.data.map((f) => path.resolve(f)) : prev.data };
    // evaluation options may change on --resume too
    if (given.has('evalEvery')) record.evalEvery = a.evalEvery;
    if (given.has('samplePrompt')) record.samplePrompt = a.samplePrompt;
    if (given.has('sampleTokens')) record.sampleTokens = a.sampleTokens;
    const data = loadData(record.data, record.valRatio);
    const overrides: Partial<TrainOptions> = {};
    if (a.maxSteps !== undefined) overrides.maxSteps = a.maxSteps;
    if (a.epochs !== undefined) overrides.maxSteps = stepsFor(saved.options, data.train, a.epochs);
    if (given.has('evalBatches')) overrides.evalBatches = a.evalBatches;
    trainer = await Pretrainer.resume(out, data, overrides, runtime);
    log(`resumed ${out} at step ${trainer.position.step}/${trainer.opts.maxSteps}`);
  } else {
    if (!a.data?.length) throw new Error('--data FILE is required (see --help)');
    if (fs.existsSync(path.join(out, 'training_state.safetensors'))) throw new Error(`${out} already holds a run: pass --resume to continue it, or choose another --out`);
    if (a.init !== undefined) a.init = (await resolveModel(a.init, { onProgress: downloadProgress() })).dir; // a Hub id: fetched here
    const { config, params } = initialModel(a, given);
    const files = a.data.map((f) => path.resolve(f));
    const data = loadData(files, a.valRatio);
    const seqLen = a.maxLength ?? config.contextLength;
    const options: TrainOptions = {
      ...TRAIN_DEFAULTS,
      batchSize: a.batchSize,
      gradAccum: a.gradAccum,
      seqLen,
      stride: a.stride ?? seqLen,
      maxSteps: 0,
      lr: a.lr,
      minLr: a.minLr ?? a.lr / 10,
      warmupSteps: a.warmupSteps,
      gradClip: a.gradClip,
      adamw: { ...TRAIN_DEFAULTS.adamw, weightDecay: a.weightDecay, beta1: a.beta1, beta2: a.beta2 },
      decay: a.decay,
      seed: a.seed,
      evalBatches: a.evalBatches,
    };
    options.maxSteps = a.maxSteps ?? stepsFor(options, data.train, a.epochs ?? 1);
    record = { data: files, valRatio: a.valRatio, evalEvery: a.evalEvery, samplePrompt: a.samplePrompt, sampleTokens: a.sampleTokens };
    fs.mkdirSync(out, { recursive: true });
    trainer = await Pretrainer.create(config, params, data, options, runtime);
    const { nLayer, nHead, nEmbd, contextLength } = config;
    log(`model: ${nLayer} layers, ${nHead} heads, ${nEmbd} wide, context ${contextLength}, ${(trainer.layout.segments.reduce((n, s) => n + s.size, 0) / 1e6).toFixed(1)}M parameters`);
    log(`data: ${data.train.length} training tokens (${trainer.trainLoader.batchesPerEpoch} batches of ${options.batchSize}×${seqLen} per epoch), ${data.val.length} validation tokens; ${options.maxSteps} steps`);
  }

  const reporter = new Reporter({ metricsFile: path.join(out, 'metrics.jsonl'), records: 'evaluations', fromStep: trainer.position.step, plotFile: path.join(out, 'loss.svg') });
  const interrupt = interruptSignal();
  const { dataHash: _, ...extra } = record as RunRecord & { dataHash?: string }; // (the data check of states before the one format)
  try {
    await trainer.fit(out, record, extra, { onEvent: (e) => reporter.event(e), signal: interrupt.signal, saveOnCancel: true });
  } catch (e) {
    if (!(e instanceof TrainingCancelled)) throw e;
  } finally {
    interrupt.dispose();
    reporter.clear();
    await trainer.close();
  }
  const last = reporter.metrics.at(-1);
  console.log(JSON.stringify({ out, step: trainer.position.step, tokens_seen: trainer.position.tokensSeen, val_loss: last?.val_loss ?? null, finished: trainer.done }));
  return 0;
}

function initialModel(a: Values<typeof PRETRAIN.options>, given: ReadonlySet<string>): { config: GPTConfig; params: Params } {
  const custom = a.nLayer !== undefined || a.nHead !== undefined || a.nEmbd !== undefined;
  const sources = [a.init && '--init', a.config && '--config', custom && '--n-layer/--n-head/--n-embd'].filter(Boolean);
  if (sources.length !== 1) throw new Error('choose the model with exactly one of --init DIR, --config NAME, or --n-layer/--n-head/--n-embd');
  const qkv = a.qkvBias ? true : a.noQkvBias ? false : undefined;
  if (a.qkvBias && a.noQkvBias) throw new Error('--qkv-bias and --no-qkv-bias contradict each other');
  const { dropout, contextLength: ctx, untiedHead: untied } = a;

  if (a.init) {
    const ckpt = loadCheckpoint(path.resolve(a.init));
    if (ctx !== undefined && ctx !== ckpt.config.contextLength) throw new Error(`--context-length cannot change a loaded model's (${ckpt.config.contextLength})`);
    if (qkv !== undefined && qkv !== ckpt.config.qkvBias) throw new Error(`--${qkv ? '' : 'no-'}qkv-bias contradicts the loaded model`);
    if (untied && ckpt.config.tieWordEmbeddings !== false) throw new Error('--untied-head contradicts the loaded model (its output head is tied to wte): it applies to a new model only');
    if (given.has('initScheme')) throw new Error('--init-scheme applies to a new model only: --init loads its weights');
    return { config: validateConfig({ ...ckpt.config, dropout }), params: materialize(ckpt.weights) };
  }
  let config: GPTConfig;
  if (a.config) {
    config = presetConfig(a.config, { dropout, ...(ctx !== undefined && { contextLength: ctx }), ...(qkv !== undefined && { qkvBias: qkv }) });
  } else {
    if (a.nLayer === undefined || a.nHead === undefined || a.nEmbd === undefined) throw new Error('a custom shape needs all of --n-layer, --n-head and --n-embd');
    config = validateConfig({
      vocabSize: VOCAB_SIZE,
      contextLength: ctx ?? 256,
      nLayer: a.nLayer,
      nHead: a.nHead,
      nEmbd: a.nEmbd,
      dropout,
      qkvBias: qkv ?? false,
      layerNormEpsilon: 1e-5,
    });
  }
  if (untied) config = { ...config, tieWordEmbeddings: false };
  return { config, params: randomInit(config, a.seed, a.initScheme) };
}

/** The files as one text (joined with <|endoftext|>), split by characters, tokenized. */
function loadData(files: string[], valRatio: number): TrainData {
  const texts = files.map((f) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch (e) {
      throw new Error(`--data ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  });
  const { train, val } = splitText(texts.join(EOT_TEXT), valRatio);
  return { train: tokenize(train), val: tokenize(val) };
}

function stepsFor(o: Pick<TrainOptions, 'seqLen' | 'stride' | 'batchSize' | 'gradAccum'>, train: Int32Array, epochs: number): number {
  if (!(epochs > 0)) throw new Error(`--epochs must be positive, got ${epochs}`);
  const batches = Math.floor(new SlidingWindows(train, o.seqLen, o.stride).length / o.batchSize);
  return Math.max(1, Math.floor((epochs * batches) / o.gradAccum));
}

function log(msg: string): void {
  process.stderr.write(msg + '\n');
}
