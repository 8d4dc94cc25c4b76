// scratchgpt pretrain: train a GPT-2 on raw text files (next-token prediction), the book's
// chapter 5 loop: evaluation every N steps, greedy samples, checkpoints that resume exactly.
// Writes DIR/config.json + model.safetensors (a Hugging Face GPT-2 folder), DIR/training_state.safetensors,
// DIR/metrics.jsonl (one object per evaluation) and DIR/loss.svg.
import fs from 'node:fs';
import path from 'node:path';
import { INIT_SCHEMES, loadCheckpoint, materialize, randomInit, type InitScheme } from '../model/checkpoint.js';
import { presetConfig, PRESETS, validateConfig, type GPTConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { resolveModel } from '../model/resolve.js';
import { decode, encode, EOT_TEXT, VOCAB_SIZE } from '../model/tokenizer.js';
import { DECAY_POLICIES, type DecayPolicy } from '../train/adamw.js';
import { SlidingWindows, splitText, tokenize } from '../train/data.js';
import { mallocTuned, rerunWithMallocTuning } from '../train/malloc.js';
import { lossPlot } from '../train/plot.js';
import { TRAIN_DEFAULTS, Trainer, type TrainData, type TrainOptions } from '../train/trainer.js';
import { integer, number, parseOptions } from './args.js';
import { downloadProgress } from './progress.js';

const HELP = `usage: scratchgpt pretrain --data FILE [--data FILE…] --out DIR (--init DIR | --config NAME | --n-layer N --n-head H --n-embd C) [options]

model (a new run):
  --init DIR               start from a Hugging Face GPT-2 folder or Hub id ORG/NAME[@REV]
  --config NAME            start from random weights in a preset's shape (${Object.keys(PRESETS).join(', ')})
  --n-layer N --n-head H --n-embd C
                           start from random weights in a custom shape
  --context-length N       positions (default: the preset's, or 256 for a custom shape)
  --dropout P              dropout rate while training (default 0)
  --qkv-bias, --no-qkv-bias
                           biases on q, k, v (default: the preset's; off for a custom shape, as the book)
  --untied-head            an output head of its own (lm_head.weight, config.json tie_word_embeddings
                           false), as the book's GPTModel; default: tied to the token embedding, as GPT-2
  --init-scheme S          random initialisation: gpt2 (N(0, 0.02), residual projections scaled) or
                           pytorch (the book's GPTModel under PyTorch defaults: embeddings N(0, 1),
                           linear weights and biases U(±1/√fan_in)) (default gpt2)
data:
  --data FILE              UTF-8 text (repeatable; files are joined with <|endoftext|>)
  --val-ratio R            the last R of the characters are the validation set (default 0.1)
  --max-length L           tokens per training window (default: the context length)
  --stride S               tokens between window starts (default: max length)
training:
  --batch-size B           windows per micro-batch (default ${TRAIN_DEFAULTS.batchSize})
  --grad-accum A           micro-batches per optimizer step (default 1)
  --epochs E | --max-steps N
                           length of the run (default 1 epoch)
  --lr LR                  peak learning rate (default ${TRAIN_DEFAULTS.lr})
  --min-lr M               cosine decay floor (default lr/10)
  --warmup-steps W         linear warmup steps (default 0)
  --weight-decay WD        AdamW decoupled weight decay (default ${TRAIN_DEFAULTS.adamw.weightDecay})
  --decay WHICH            tensors that decay: ${DECAY_POLICIES.join(' | ')} (default matrices)
  --beta1 B1, --beta2 B2   AdamW betas (default 0.9, 0.999)
  --grad-clip C            global gradient-norm clipping, 0 = off (default 1)
  --seed S                 initialisation, shuffling and dropout (default ${TRAIN_DEFAULTS.seed})
evaluation and output:
  --out DIR                checkpoint folder (model, training state, metrics.jsonl, loss.svg)
  --eval-every N           evaluate, sample and save every N steps (default 100)
  --eval-batches N         validation batches per evaluation, 0 = all (default 0)
  --sample-prompt TEXT     greedy sample at each evaluation (default "Every effort moves you")
  --sample-tokens N        tokens per sample, 0 = none (default 20)
  --resume                 continue the run saved in --out (same data, options and batches; only
                           --max-steps/--epochs, --eval-*, --sample-*, --threads and --data's
                           location may change)
  --threads N              intra-op threads (default: all cores)

Ctrl-C saves a checkpoint at the end of the current step and exits; --resume continues it.`;

interface RunRecord {
  data: string[];
  valRatio: number;
  evalEvery: number;
  samplePrompt: string;
  sampleTokens: number;
  dataHash: string;
}

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseOptions('pretrain', {
    args: argv,
    options: {
      data: { type: 'string', multiple: true },
      out: { type: 'string' },
      init: { type: 'string' },
      config: { type: 'string' },
      'n-layer': { type: 'string' },
      'n-head': { type: 'string' },
      'n-embd': { type: 'string' },
      'context-length': { type: 'string' },
      dropout: { type: 'string' },
      'qkv-bias': { type: 'boolean' },
      'no-qkv-bias': { type: 'boolean' },
      'untied-head': { type: 'boolean' },
      'init-scheme': { type: 'string' },
      'batch-size': { type: 'string' },
      'grad-accum': { type: 'string' },
      'max-length': { type: 'string' },
      stride: { type: 'string' },
      'val-ratio': { type: 'string' },
      epochs: { type: 'string' },
      'max-steps': { type: 'string' },
      lr: { type: 'string' },
      'min-lr': { type: 'string' },
      'warmup-steps': { type: 'string' },
      'weight-decay': { type: 'string' },
      decay: { type: 'string' },
      beta1: { type: 'string' },
      beta2: { type: 'string' },
      'grad-clip': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      'sample-prompt': { type: 'string' },
      'sample-tokens': { type: 'string' },
      seed: { type: 'string' },
      resume: { type: 'boolean', default: false },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  if (!mallocTuned()) return rerunWithMallocTuning(); // heap reuse for the per-step gradient buffers
  if (!a.out) throw new Error('--out DIR is required (see --help)');
  const out = path.resolve(a.out);
  const runtime = { threads: a.threads === undefined ? undefined : integer('--threads', a.threads, 1) };
  const opt = <T>(v: string | undefined, parse: (s: string) => T): T | undefined => (v === undefined ? undefined : parse(v));
  const int = (flag: string, min = 0) => (s: string) => integer(flag, s, min);
  const num = (flag: string) => (s: string) => number(flag, s);
  if (a.epochs !== undefined && a['max-steps'] !== undefined) throw new Error('give --epochs or --max-steps, not both');

  let trainer: Trainer;
  let record: RunRecord;
  if (a.resume) {
    const adjustable = new Set(['out', 'resume', 'help', 'data', 'max-steps', 'epochs', 'eval-every', 'eval-batches', 'sample-prompt', 'sample-tokens', 'threads']);
    for (const [flag, v] of Object.entries(a)) {
      if (v !== undefined && !adjustable.has(flag)) throw new Error(`--${flag} cannot change on --resume (the run continues with its saved options)`);
    }
    const saved = Trainer.savedState(out);
    const prev = saved.extra as unknown as RunRecord;
    record = { ...prev, data: a.data ? a.data.map((f) => path.resolve(f)) : prev.data };
    const data = loadData(record.data, record.valRatio);
    if (hashTokens(data.train) !== prev.dataHash) throw new Error('the training data differs from the saved run\'s (files changed?): cannot resume exactly');
    const overrides: Partial<TrainOptions> = {};
    const maxSteps = opt(a['max-steps'], int('--max-steps'));
    if (maxSteps !== undefined) overrides.maxSteps = maxSteps;
    if (a.epochs !== undefined) overrides.maxSteps = stepsFor(saved.options, data.train, number('--epochs', a.epochs));
    const evalBatches = opt(a['eval-batches'], int('--eval-batches'));
    if (evalBatches !== undefined) overrides.evalBatches = evalBatches;
    trainer = await Trainer.resume(out, data, overrides, runtime);
    log(`resumed ${out} at step ${trainer.position.step}/${trainer.opts.maxSteps}`);
  } else {
    if (!a.data?.length) throw new Error('--data FILE is required (see --help)');
    if (fs.existsSync(path.join(out, 'training_state.safetensors'))) throw new Error(`${out} already holds a run: pass --resume to continue it, or choose another --out`);
    const seed = opt(a.seed, int('--seed', -Infinity)) ?? TRAIN_DEFAULTS.seed;
    if (a.init !== undefined) a.init = (await resolveModel(a.init, { onProgress: downloadProgress() })).dir; // a Hub id: fetched here
    const { config, params } = initialModel(a, seed);
    const valRatio = opt(a['val-ratio'], num('--val-ratio')) ?? 0.1;
    const files = a.data.map((f) => path.resolve(f));
    const data = loadData(files, valRatio);
    const seqLen = opt(a['max-length'], int('--max-length', 1)) ?? config.contextLength;
    const lr = opt(a.lr, num('--lr')) ?? TRAIN_DEFAULTS.lr;
    const decay = (a.decay ?? 'matrices') as DecayPolicy;
    if (!DECAY_POLICIES.includes(decay)) throw new Error(`--decay must be one of ${DECAY_POLICIES.join(', ')}`);
    const options: TrainOptions = {
      ...TRAIN_DEFAULTS,
      batchSize: opt(a['batch-size'], int('--batch-size', 1)) ?? TRAIN_DEFAULTS.batchSize,
      gradAccum: opt(a['grad-accum'], int('--grad-accum', 1)) ?? 1,
      seqLen,
      stride: opt(a.stride, int('--stride', 1)) ?? seqLen,
      maxSteps: 0,
      lr,
      minLr: opt(a['min-lr'], num('--min-lr')) ?? lr / 10,
      warmupSteps: opt(a['warmup-steps'], int('--warmup-steps')) ?? 0,
      gradClip: opt(a['grad-clip'], num('--grad-clip')) ?? TRAIN_DEFAULTS.gradClip,
      adamw: {
        ...TRAIN_DEFAULTS.adamw,
        weightDecay: opt(a['weight-decay'], num('--weight-decay')) ?? TRAIN_DEFAULTS.adamw.weightDecay,
        beta1: opt(a.beta1, num('--beta1')) ?? TRAIN_DEFAULTS.adamw.beta1,
        beta2: opt(a.beta2, num('--beta2')) ?? TRAIN_DEFAULTS.adamw.beta2,
      },
      decay,
      seed,
      evalBatches: opt(a['eval-batches'], int('--eval-batches')) ?? 0,
    };
    options.maxSteps = opt(a['max-steps'], int('--max-steps')) ?? stepsFor(options, data.train, opt(a.epochs, num('--epochs')) ?? 1);
    record = { data: files, valRatio, evalEvery: 100, samplePrompt: 'Every effort moves you', sampleTokens: 20, dataHash: hashTokens(data.train) };
    fs.mkdirSync(out, { recursive: true });
    trainer = await Trainer.create(config, params, data, options, runtime);
    const { nLayer, nHead, nEmbd, contextLength } = config;
    log(`model: ${nLayer} layers, ${nHead} heads, ${nEmbd} wide, context ${contextLength}, ${(trainer.layout.segments.reduce((n, s) => n + s.size, 0) / 1e6).toFixed(1)}M parameters`);
    log(`data: ${data.train.length} training tokens (${trainer.trainLoader.batchesPerEpoch} batches of ${options.batchSize}×${seqLen} per epoch), ${data.val.length} validation tokens; ${options.maxSteps} steps`);
  }
  // evaluation options may change on --resume too
  record.evalEvery = opt(a['eval-every'], int('--eval-every', 1)) ?? record.evalEvery;
  record.samplePrompt = a['sample-prompt'] ?? record.samplePrompt;
  record.sampleTokens = opt(a['sample-tokens'], int('--sample-tokens')) ?? record.sampleTokens;

  const metricsFile = path.join(out, 'metrics.jsonl');
  const metrics = readMetrics(metricsFile).filter((m) => m.step <= trainer.position.step); // drop records past the checkpoint
  fs.writeFileSync(metricsFile, metrics.map((m) => JSON.stringify(m) + '\n').join(''));

  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    log('\ninterrupted: saving at the end of this step (Ctrl-C again to quit without saving)');
  };
  process.on('SIGINT', onSigint);
  const bar = new ProgressBar(trainer.opts.maxSteps, trainer.position.step);
  const tokensPerStep = trainer.opts.batchSize * trainer.opts.seqLen * trainer.opts.gradAccum;
  let losses: number[] = [];
  try {
    while (!trainer.done && !stop) {
      const r = await trainer.step();
      if (!Number.isFinite(r.loss)) throw new Error(`loss is ${r.loss} at step ${trainer.position.step}: lower --lr or raise --warmup-steps`);
      losses.push(r.loss);
      bar.update(trainer.position.step, r.loss, r.lr, tokensPerStep);
      if (trainer.position.step % record.evalEvery === 0 || trainer.done) {
        await evaluate(trainer, record, losses, metrics, out, bar);
        losses = [];
      }
    }
    if (stop && losses.length) await evaluate(trainer, record, losses, metrics, out, bar);
  } finally {
    process.off('SIGINT', onSigint);
    bar.clear();
    await trainer.close();
  }
  const last = metrics.at(-1);
  console.log(JSON.stringify({ out, step: trainer.position.step, tokens_seen: trainer.position.tokensSeen, val_loss: last?.val_loss ?? null, finished: trainer.done }));
  return 0;
}

interface MetricsRecord {
  step: number;
  epoch: number;
  tokens_seen: number;
  train_loss: number | null;
  val_loss: number | null;
  val_perplexity: number | null;
  lr: number;
  sample?: string;
}

/** Evaluates, samples, saves the checkpoint and appends to metrics.jsonl and loss.svg. */
async function evaluate(trainer: Trainer, record: RunRecord, losses: number[], metrics: MetricsRecord[], out: string, bar: ProgressBar): Promise<void> {
  bar.pause();
  const valLoss = await trainer.evaluate();
  const m: MetricsRecord = {
    step: trainer.position.step,
    epoch: round(trainer.epoch, 4),
    tokens_seen: trainer.position.tokensSeen,
    train_loss: losses.length ? round(losses.reduce((s, x) => s + x, 0) / losses.length, 5) : null, // mean over the steps since the previous evaluation
    val_loss: valLoss === null ? null : round(valLoss, 5),
    val_perplexity: valLoss === null ? null : round(Math.exp(valLoss), 3),
    lr: trainer.lrAt(Math.max(0, trainer.position.step - 1)),
  };
  if (record.sampleTokens > 0) {
    const prompt = encode(record.samplePrompt);
    m.sample = record.samplePrompt + decode(await trainer.sample(prompt, record.sampleTokens));
  }
  trainer.save(out, record as unknown as Record<string, unknown>);
  metrics.push(m);
  fs.appendFileSync(path.join(out, 'metrics.jsonl'), JSON.stringify(m) + '\n');
  fs.writeFileSync(path.join(out, 'loss.svg'), lossPlot(metrics));
  const ppl = m.val_perplexity === null ? '' : ` (ppl ${m.val_perplexity})`;
  log(`step ${m.step} epoch ${m.epoch.toFixed(2)}: train loss ${m.train_loss?.toFixed(3) ?? '–'}, val loss ${m.val_loss?.toFixed(3) ?? '–'}${ppl}${m.sample === undefined ? '' : `\n  ${JSON.stringify(m.sample)}`}`);
  bar.resume();
}

function initialModel(a: Record<string, string | boolean | string[] | undefined>, seed: number): { config: GPTConfig; params: Params } {
  const str = (k: string) => a[k] as string | undefined;
  const dims = ['n-layer', 'n-head', 'n-embd'].filter((k) => str(k) !== undefined);
  const sources = [str('init') && '--init', str('config') && '--config', dims.length > 0 && '--n-layer/--n-head/--n-embd'].filter(Boolean);
  if (sources.length !== 1) throw new Error('choose the model with exactly one of --init DIR, --config NAME, or --n-layer/--n-head/--n-embd');
  const qkv = a['qkv-bias'] ? true : a['no-qkv-bias'] ? false : undefined;
  if (a['qkv-bias'] && a['no-qkv-bias']) throw new Error('--qkv-bias and --no-qkv-bias contradict each other');
  const dropout = str('dropout') === undefined ? 0 : number('--dropout', str('dropout')!);
  const ctx = str('context-length') === undefined ? undefined : integer('--context-length', str('context-length')!, 1);
  const untied = a['untied-head'] === true;
  const scheme = str('init-scheme');
  if (scheme !== undefined && !(INIT_SCHEMES as readonly string[]).includes(scheme)) throw new Error(`--init-scheme must be one of ${INIT_SCHEMES.join(', ')}, got '${scheme}'`);

  if (str('init')) {
    const ckpt = loadCheckpoint(path.resolve(str('init')!));
    if (ctx !== undefined && ctx !== ckpt.config.contextLength) throw new Error(`--context-length cannot change a loaded model's (${ckpt.config.contextLength})`);
    if (qkv !== undefined && qkv !== ckpt.config.qkvBias) throw new Error(`--${qkv ? '' : 'no-'}qkv-bias contradicts the loaded model`);
    if (untied && ckpt.config.tieWordEmbeddings !== false) throw new Error('--untied-head contradicts the loaded model (its output head is tied to wte): it applies to a new model only');
    if (scheme !== undefined) throw new Error('--init-scheme applies to a new model only: --init loads its weights');
    return { config: validateConfig({ ...ckpt.config, dropout }), params: materialize(ckpt.weights) };
  }
  let config: GPTConfig;
  if (str('config')) {
    config = presetConfig(str('config')!, { dropout, ...(ctx !== undefined && { contextLength: ctx }), ...(qkv !== undefined && { qkvBias: qkv }) });
  } else {
    if (dims.length !== 3) throw new Error('a custom shape needs all of --n-layer, --n-head and --n-embd');
    config = validateConfig({
      vocabSize: VOCAB_SIZE,
      contextLength: ctx ?? 256,
      nLayer: integer('--n-layer', str('n-layer')!, 1),
      nHead: integer('--n-head', str('n-head')!, 1),
      nEmbd: integer('--n-embd', str('n-embd')!, 1),
      dropout,
      qkvBias: qkv ?? false,
      layerNormEpsilon: 1e-5,
    });
  }
  if (untied) config = { ...config, tieWordEmbeddings: false };
  return { config, params: randomInit(config, seed, (scheme ?? 'gpt2') as InitScheme) };
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

function hashTokens(tokens: Int32Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) h = Math.imul(h ^ tokens[i]!, 0x01000193);
  return `${tokens.length}:${(h >>> 0).toString(16)}`;
}

function readMetrics(file: string): MetricsRecord[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as MetricsRecord);
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

function log(msg: string): void {
  process.stderr.write(msg + '\n');
}

/** One status line on stderr, redrawn in place when stderr is a terminal. */
class ProgressBar {
  private readonly tty = process.stderr.isTTY === true;
  private started = performance.now();
  private paused = 0;
  private pausedAt = 0;
  private line = '';

  constructor(
    private readonly total: number,
    private readonly first: number,
  ) {}

  update(step: number, loss: number, lr: number, tokensPerStep: number): void {
    const elapsed = (performance.now() - this.started - this.paused) / 1000;
    const done = step - this.first;
    const perStep = elapsed / Math.max(1, done);
    const width = 24;
    const filled = Math.round((width * step) / Math.max(1, this.total));
    const bar = '█'.repeat(filled) + '░'.repeat(Math.max(0, width - filled));
    this.line = `step ${step}/${this.total} ${bar} loss ${loss.toFixed(3)} lr ${lr.toExponential(2)} ${Math.round((tokensPerStep * done) / elapsed)} tok/s ETA ${clock(perStep * (this.total - step))}`;
    if (this.tty) process.stderr.write(`\r${this.line}\x1b[K`);
  }

  pause(): void {
    this.pausedAt = performance.now();
    this.clear();
    if (!this.tty && this.line) log(this.line);
  }

  resume(): void {
    this.paused += performance.now() - this.pausedAt;
  }

  clear(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const [h, m] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60)];
  return `${h ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(s % 60).padStart(2, '0')}`;
}
