// The training loop, one for pretraining and finetuning (nanoGPT's train.py; finetuning is a
// few overrides of it): optimizer steps over a data source, the learning-rate schedule, an
// evaluation cadence, a checkpoint cadence, a cancel signal, and one event per step.
//
// A step (`trainStep`) is the hot path: one ORT run per micro-batch writing (then adding)
// gradients into the flat buffer, the global norm, and one AdamW pass over the wasm arena that
// also applies the micro-batch mean and the clipping factor. Dropout masks come from the stream
// (seed, micro-batch index), so a resumed run draws what an uninterrupted one would.
import { Rng } from '../model/rng.js';
import { clipCoefficient, globalNorm } from './adamw.js';
import type { Batch } from './data.js';
import type { SessionPool } from './session-pool.js';
import type { TrainingState } from './state.js';
import { DROPOUT_STREAM, streamSeed } from './streams.js';

/** Training batches addressed by their index from the start of training (epoch = index / batchesPerEpoch). */
export interface TrainBatches {
  readonly batchesPerEpoch: number;
  /** Batch k, the row length its session needs, and the tokens it counts for in the position. */
  batch(k: number): { batch: Batch; seqLen: number; tokens: number };
}

export type Sessions = Pick<SessionPool, 'get'>;

export interface StepOptions {
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Global-norm clipping threshold; 0 = off. */
  gradClip: number;
  seed: number;
  /** The model's dropout rate (masks are drawn when > 0). */
  dropout: number;
  /** Classification: the number of labels (the step then counts correct predictions). */
  classes?: number;
}

export interface StepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  lr: number;
  /** Global norm of the (micro-batch mean) gradient before clipping; NaN when clipping is off (not computed). */
  gradNorm: number;
  tokens: number;
  /** Classification: rows predicted right, and rows, in this step's batches. */
  correct: number;
  seen: number;
  /** Milliseconds: ORT runs (forward, backward, output copies), gradient gathering, the norm, AdamW. */
  timings: { run: number; gather: number; clip: number; adamw: number };
}

/** One optimizer step over `gradAccum` micro-batches at learning rate `lr`. */
export async function trainStep(state: TrainingState, data: TrainBatches, sessions: Sessions, lr: number, o: StepOptions): Promise<StepResult> {
  const A = o.gradAccum;
  const timings = { run: 0, gather: 0, clip: 0, adamw: 0 };
  let loss = 0;
  let tokens = 0;
  let correct = 0;
  let seen = 0;
  for (let a = 0; a < A; a++) {
    const k = state.position.microBatches;
    const { batch, seqLen, tokens: n } = data.batch(k);
    const session = await sessions.get(seqLen, true);
    const rng = o.dropout > 0 ? new Rng(streamSeed(o.seed, DROPOUT_STREAM, k)) : undefined;
    const logits = o.classes ? new Float32Array(batch.targets.length * o.classes) : undefined;
    loss += (await session.run(state.params, batch, { grads: state.grads, accumulate: a > 0, rng, timings, logits })) / A;
    if (logits) {
      const c = countCorrect(logits, batch.targets, o.classes!);
      correct += c.correct;
      seen += c.seen;
    }
    state.position.microBatches++;
    state.position.tokensSeen += n;
    tokens += n;
  }
  // The mean over micro-batches and the clipping factor scale the gradients inside AdamW's pass.
  let t = performance.now();
  const gradNorm = o.gradClip > 0 ? globalNorm(state.grads, state.arena) / A : NaN;
  const gradScale = (o.gradClip > 0 ? clipCoefficient(gradNorm, o.gradClip) : 1) / A;
  timings.clip = performance.now() - t;
  t = performance.now();
  state.optimizer.update(state.params, state.grads, lr, gradScale);
  timings.adamw = performance.now() - t;
  state.position.step++;
  return { loss, lr, gradNorm, tokens, correct, seen, timings };
}

/** Rows of a classification batch whose largest logit is the target (padding rows, target < 0, not counted). */
export function countCorrect(logits: Float32Array, targets: BigInt64Array, K: number): { correct: number; seen: number } {
  let correct = 0;
  let seen = 0;
  targets.forEach((t, b) => {
    if (t < 0n) return;
    let best = 0;
    for (let k = 1; k < K; k++) if (logits[b * K + k]! > logits[b * K + best]!) best = k;
    seen++;
    if (BigInt(best) === t) correct++;
  });
  return { correct, seen };
}

/** The loop's running sums, saved with each checkpoint (JSON numbers round-trip exactly) so reports after a resume match. */
export interface LoopSums {
  /** Steps since the previous evaluation: their losses and (classification) training predictions. */
  sinceEval: { lossSum: number; steps: number; correct: number; seen: number };
  sinceCheckpoint: { lossSum: number; steps: number };
  /** The latest evaluation. */
  last: { trainLoss?: number; valLoss?: number; valAccuracy?: number };
  /** Set when the run stopped during an evaluation: that step's report, still to be completed. */
  pendingEval?: { trainLoss: number; tokensPerSecond: number };
}

export const emptyLoopSums = (): LoopSums => ({ sinceEval: { lossSum: 0, steps: 0, correct: 0, seen: 0 }, sinceCheckpoint: { lossSum: 0, steps: 0 }, last: {} });

/** What an evaluation found (each field where the configuration measures it). */
export interface Evaluation {
  /** Step 0 only: the loss on training batches before any update. */
  trainLoss?: number;
  valLoss?: number;
  valAccuracy?: number;
  /** A greedy continuation of the sample prompt. */
  sample?: string;
}

export interface FitEvent {
  step: number;
  totalSteps: number;
  /** Epochs done, fractional. */
  epoch: number;
  /** The learning rate of this step (of step 0 before any). */
  lr: number;
  /** This step's loss; at step 0, the evaluation's loss on training batches. */
  trainLoss: number;
  tokensPerSecond: number;
  tokensSeen: number;
  /** At evaluations only: */
  evaluated?: true;
  /** Mean step loss since the previous evaluation (none before the first step). */
  meanTrainLoss?: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Classification: accuracy on the training batches since the previous evaluation (as predicted while training). */
  trainAccuracy?: number;
  sample?: string;
}

export interface CheckpointReport {
  epoch: number;
  step: number;
  /** Mean step loss since the previous checkpoint. */
  trainLoss: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface FitPlan {
  totalSteps: number;
  lr(step: number): number;
  step: StepOptions;
  /** Evaluate after this many steps (0: before the first). */
  evaluateAfter(step: number): boolean;
  /** Also checkpoint after this many steps (every evaluation after the first step is followed by one anyway). */
  checkpointAfter(step: number): boolean;
  /** A cancel with saveOnCancel evaluates before its checkpoint (pretraining's metrics follow its checkpoints). */
  evaluateOnCancel?: boolean;
  /** What to change when the loss stops being finite. */
  divergedHint: string;
}

export interface FitHooks {
  /** Throws TrainingCancelled where it checks `signal` and finds it aborted. */
  evaluate(step: number, signal?: AbortSignal): Promise<Evaluation>;
  /** Saves the state with `loop`; `report` is what the checkpoint's readers are told. */
  checkpoint(loop: LoopSums, report: CheckpointReport): void;
  onEvent?(e: FitEvent): void;
  /** Cancel: stop after the current step and throw TrainingCancelled. */
  signal?: AbortSignal;
  /** Checkpoint before throwing TrainingCancelled (Ctrl-C, a server stopping), so a resume loses nothing. */
  saveOnCancel?: boolean;
}

export class TrainingCancelled extends Error {
  override readonly name = 'TrainingCancelled';
  /** Optimizer steps done when it stopped. */
  constructor(readonly step?: number) {
    super(step === undefined ? 'training cancelled' : `training cancelled after step ${step}`);
  }
}

/** Trains `state` to plan.totalSteps from where it is; `loop` holds the running sums (a resumed checkpoint's, or empty). */
export async function fit(state: TrainingState, data: TrainBatches, sessions: Sessions, plan: FitPlan, hooks: FitHooks, loop: LoopSums): Promise<LoopSums> {
  const { signal } = hooks;
  const cancelled = () => signal?.aborted === true;
  const emit = (e: Omit<FitEvent, 'totalSteps' | 'epoch' | 'lr' | 'tokensSeen'>) =>
    hooks.onEvent?.({ ...e, totalSteps: plan.totalSteps, epoch: state.position.microBatches / data.batchesPerEpoch, lr: plan.lr(Math.max(0, e.step - 1)), tokensSeen: state.position.tokensSeen });
  const measured = (ev: Evaluation) => ({
    ...(ev.valLoss !== undefined && { valLoss: ev.valLoss }),
    ...(ev.valAccuracy !== undefined && { valAccuracy: ev.valAccuracy }),
  });

  const checkpoint = (): void => {
    const { step } = state.position;
    const sc = loop.sinceCheckpoint;
    // (No step since the last one: this replaces a checkpoint of the same step taken when a stop interrupted its evaluation.)
    const trainLoss = sc.steps ? sc.lossSum / sc.steps : loop.last.trainLoss ?? NaN;
    const afterEval = plan.evaluateAfter(step) && !loop.pendingEval;
    loop.sinceCheckpoint = { lossSum: 0, steps: 0 };
    const report = {
      epoch: state.position.microBatches / data.batchesPerEpoch,
      step,
      trainLoss,
      ...(afterEval && loop.last.valLoss !== undefined && { valLoss: loop.last.valLoss }),
      ...(afterEval && loop.last.valAccuracy !== undefined && { valAccuracy: loop.last.valAccuracy }),
    };
    hooks.checkpoint(loop, report);
  };

  /** The pending step's evaluation, its event, then its checkpoint. */
  const evaluatePending = async (): Promise<void> => {
    const { trainLoss, tokensPerSecond } = loop.pendingEval!;
    const ev = await hooks.evaluate(state.position.step, signal);
    const se = loop.sinceEval;
    const mean = se.steps ? { trainLoss: se.lossSum / se.steps } : {};
    loop.last = { ...mean, ...measured(ev) };
    emit({
      step: state.position.step,
      trainLoss,
      tokensPerSecond,
      evaluated: true,
      ...(se.steps ? { meanTrainLoss: se.lossSum / se.steps } : {}),
      ...measured(ev),
      ...(se.seen ? { trainAccuracy: se.correct / se.seen } : {}),
      ...(ev.sample !== undefined && { sample: ev.sample }),
    });
    loop.sinceEval = { lossSum: 0, steps: 0, correct: 0, seen: 0 };
    loop.pendingEval = undefined;
    checkpoint();
  };

  if (loop.pendingEval) await evaluatePending(); // resumed from a checkpoint taken during an evaluation
  if (state.position.step === 0 && plan.evaluateAfter(0) && !cancelled()) {
    const ev = await hooks.evaluate(0, signal);
    emit({ step: 0, trainLoss: ev.trainLoss ?? NaN, tokensPerSecond: 0, evaluated: true, ...measured(ev), ...(ev.sample !== undefined && { sample: ev.sample }) });
  }

  let latest = { trainLoss: NaN, tokensPerSecond: 0 };
  while (state.position.step < plan.totalSteps) {
    if (cancelled()) {
      if (hooks.saveOnCancel && loop.sinceCheckpoint.steps > 0) {
        if (plan.evaluateOnCancel) {
          loop.pendingEval = latest;
          await evaluatePending();
        } else checkpoint();
      }
      throw new TrainingCancelled(state.position.step);
    }
    const t0 = performance.now();
    const r = await trainStep(state, data, sessions, plan.lr(state.position.step), plan.step);
    const { step } = state.position;
    if (!Number.isFinite(r.loss)) throw new Error(`the loss is ${r.loss} at step ${step}: ${plan.divergedHint}`);
    loop.sinceCheckpoint.lossSum += r.loss;
    loop.sinceCheckpoint.steps++;
    const se = loop.sinceEval;
    se.lossSum += r.loss;
    se.steps++;
    se.correct += r.correct;
    se.seen += r.seen;
    latest = { trainLoss: r.loss, tokensPerSecond: r.tokens / ((performance.now() - t0) / 1000) };

    if (!plan.evaluateAfter(step)) {
      emit({ step, ...latest });
      if (plan.checkpointAfter(step)) checkpoint();
      continue;
    }
    loop.pendingEval = latest;
    try {
      await evaluatePending();
    } catch (e) {
      // Stopped during the evaluation: keep the step; the resumed run evaluates first.
      if (e instanceof TrainingCancelled && hooks.saveOnCancel) checkpoint();
      throw e;
    }
  }
  return loop;
}
