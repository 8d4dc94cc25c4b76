// What a training run shows and leaves behind, from the loop's events (fit.ts), for both CLIs:
// a progress line on stderr (redrawn in place on a terminal, else a line per ~5 % of the run),
// a line per evaluation, metrics.jsonl and the loss curve (loss.svg).
import fs from 'node:fs';
import path from 'node:path';
import type { FitEvent } from './fit.js';
import { lossPlot } from './plot.js';

export interface MetricsRecord {
  step: number;
  epoch: number;
  tokens_seen: number;
  /** Mean training loss over the steps the record covers: its own step, or every step since the previous evaluation. */
  train_loss: number | null;
  val_loss: number | null;
  /** Per-evaluation records: */
  val_perplexity?: number | null;
  lr?: number;
  sample?: string;
  /** Per-step records: */
  val_accuracy?: number;
  train_accuracy?: number;
  tokens_per_second?: number;
}

export interface ReporterOptions {
  metricsFile: string;
  /** 'evaluations': one record per evaluation (pretraining); 'steps': one per step (finetuning). */
  records: 'evaluations' | 'steps';
  /**
   * The run's position where known: records past it (written before a crash or stop) are dropped,
   * as the resumed run redoes them. Without it they go when the first event of a step they cover arrives.
   */
  fromStep?: number;
  /** Redrawn after each evaluation when given. */
  plotFile?: string;
}

export class Reporter {
  readonly metrics: MetricsRecord[];
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = performance.now();
  private firstStep: number | undefined;
  private lastLogged = -1;
  private line = '';

  constructor(private readonly opts: ReporterOptions) {
    const file = opts.metricsFile;
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as MetricsRecord) : [];
    this.metrics = old.filter((m) => m.step <= (opts.fromStep ?? Infinity));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.writeMetrics(file);
  }

  event(e: FitEvent): void {
    if (this.opts.records === 'steps' || e.evaluated) this.record(e);
    this.progress(e);
    if (e.evaluated) this.evaluation(e);
  }

  /** A line of its own (the progress line is redrawn after it). */
  note(msg: string): void {
    this.clear();
    log(msg);
  }

  clear(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }

  /** metrics.jsonl and loss.svg into `dir` (a finished finetuning's output folder). */
  writeTo(dir: string): void {
    this.writeMetrics(path.join(dir, 'metrics.jsonl'));
    fs.writeFileSync(path.join(dir, 'loss.svg'), lossPlot(this.metrics));
  }

  private record(e: FitEvent): void {
    const perStep = this.opts.records === 'steps';
    const trainLoss = perStep ? e.trainLoss : e.meanTrainLoss;
    const m: MetricsRecord = {
      step: e.step,
      epoch: round(e.epoch, 4),
      tokens_seen: e.tokensSeen,
      train_loss: trainLoss === undefined ? null : round(trainLoss, 5),
      val_loss: e.valLoss === undefined ? null : round(e.valLoss, 5),
      ...(perStep
        ? {
            ...(e.valAccuracy !== undefined && { val_accuracy: round(e.valAccuracy, 5) }),
            ...(e.trainAccuracy !== undefined && { train_accuracy: round(e.trainAccuracy, 5) }),
            tokens_per_second: Math.round(e.tokensPerSecond),
          }
        : {
            val_perplexity: e.valLoss === undefined ? null : round(Math.exp(e.valLoss), 3),
            lr: e.lr,
            ...(e.sample !== undefined && { sample: e.sample }),
          }),
    };
    const redone = this.metrics.length > 0 && this.metrics.at(-1)!.step >= m.step; // a step stopped during its evaluation, now complete
    if (redone) this.metrics.splice(0, this.metrics.length, ...this.metrics.filter((r) => r.step < m.step));
    this.metrics.push(m);
    if (redone) this.writeMetrics(this.opts.metricsFile);
    else fs.appendFileSync(this.opts.metricsFile, JSON.stringify(m) + '\n');
    if (e.evaluated && this.opts.plotFile) fs.writeFileSync(this.opts.plotFile, lossPlot(this.metrics));
  }

  private progress(e: FitEvent): void {
    this.firstStep ??= e.step;
    const done = e.step - this.firstStep;
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (e.totalSteps - e.step) : NaN;
    const width = 24;
    const filled = Math.min(width, Math.round((width * e.step) / Math.max(1, e.totalSteps)));
    this.line = `step ${e.step}/${e.totalSteps} ${'█'.repeat(filled)}${'░'.repeat(width - filled)} epoch ${e.epoch.toFixed(2)} loss ${e.trainLoss.toFixed(3)} lr ${e.lr.toExponential(2)} ${Math.round(e.tokensPerSecond)} tok/s ETA ${clock(eta)}`;
    if (this.tty) process.stderr.write(`\r${this.line}\x1b[K`);
    const every = Math.max(1, Math.floor(e.totalSteps / 20));
    if (!this.tty && (e.step - this.lastLogged >= every || e.step === e.totalSteps)) {
      log(this.line);
      this.lastLogged = e.step;
    }
  }

  private evaluation(e: FitEvent): void {
    const train = e.meanTrainLoss ?? e.trainLoss;
    const val = e.valLoss === undefined ? '–' : `${e.valLoss.toFixed(3)} (ppl ${round(Math.exp(e.valLoss), 3)})`;
    const accuracy = `${e.valAccuracy === undefined ? '' : `, val accuracy ${pct(e.valAccuracy)}`}${e.trainAccuracy === undefined ? '' : `, train accuracy ${pct(e.trainAccuracy)}`}`;
    this.note(`step ${e.step} epoch ${e.epoch.toFixed(2)}: train loss ${Number.isFinite(train) ? train.toFixed(3) : '–'}, val loss ${val}${accuracy}${e.sample === undefined ? '' : `\n  ${JSON.stringify(e.sample)}`}`);
  }

  private writeMetrics(file: string): void {
    fs.writeFileSync(file, this.metrics.map((m) => JSON.stringify(m) + '\n').join(''));
  }
}

export const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const round = (x: number, digits: number) => Number(x.toFixed(digits));

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const [h, m] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60)];
  return `${h ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(s % 60).padStart(2, '0')}`;
}

function log(msg: string): void {
  process.stderr.write(msg + '\n');
}
