// Runs fine-tuning jobs one at a time, each in its own worker thread (never on the HTTP thread,
// never in a model's inference worker), and is the only writer of their progress to the store.
// Several runners may share one store (servers and `scratchgpt worker`s on PostgreSQL): each claims
// a job with a lease (lease.ts) and writes for it only while it holds that lease.
//
//   validating_files ─► queued ─► running ─► succeeded | failed | cancelled
//
// Durability: every transition is one transaction, and the trainer checkpoints into the job's work
// folder (in the shared data folder). When the runner of a running job dies (kill -9 included),
// its lease runs out (SQLite: cleared at the next start) and a runner claims the job again with the
// same work folder, and runFinetune resumes from its last checkpoint; queued jobs stay queued.
// Publishing a finished model is ordered so that each step can be redone:
//   1. runFinetune writes out/ (atomically) → 2. result.json → 3. rename out/ → models/<folder>
//   → 4. the registry loads it → 5. the newest KEPT_CHECKPOINTS checkpoint folders move to
//   models/<folder>_ckpt-step-N → 6. one transaction: models rows (final + checkpoints) + job
//   succeeded → 7. rm the job folder.
// A runner that claims the job between 1 and 6 finds the model folder (or out/) and resumes at step
// 3 or 4; step 5 keeps checkpoint folders already moved.
import fs from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { removeDir, replaceDir, writeFileAtomic } from '../model/durable.js';
import type { ServedModels } from './served-models.js';
import type { FinetuneSpec } from '../train/finetune.js';
import type { FileBlobs } from './blobs.js';
import type { DataDir } from './files.js';
import { startThread } from '../threads/start.js';
import { stopWorker } from '../threads/stop.js';
import type { FinetuneWorkerData, FromFinetuneWorker, ToFinetuneWorker } from './finetune-thread.js';
import { checkpointModelId, fineTunedModelId, modelFolderName } from './ids.js';
import { crashPoint } from '../faults/crash-point.js';
import { checkpointReports, latestFinetuneCheckpoint, REPORT_FILE } from '../train/finetune-checkpoint.js';
import type { CheckpointReport } from '../train/fit.js';
import type { Device } from '../model/runtime.js';
import { STATE_FILE } from '../train/state.js';
import { Serial } from './serial.js';
import { DEFAULT_LEASE_SECONDS, Lease, LEASE_OWNER, lookAgainMs } from './lease.js';
import { JOBS_CHANNEL, MODELS_CHANNEL, TERMINAL, type JobError, type JobRow, type JobStore } from './store.js';

export interface RunnerOptions {
  /** ORT threads for training (default: the engine's, all cores). */
  threads?: number;
  /** Where the training graphs run (default cpu). */
  device?: Device;
  /** After how long a shutdown that waits for the training step in progress says so (default 60 s). */
  stopGraceMs?: number;
  /** How long a claimed job stays this process's without a renewal (default 30 s; lease.ts). */
  leaseMs?: number;
  /** Whether this process trains (false: serve --no-train; it only validates and queues). */
  train?: boolean;
  log?: (line: string) => void;
}

/** The job's own settings, as resolved at creation (fine-tuning.ts) and stored in `method.scratchgpt`. */
export interface ScratchSettings {
  task: 'instruction' | 'classification';
  method: 'full' | 'last_blocks' | 'lora';
  last_blocks?: number;
  lora_rank?: number;
  lora_alpha?: number;
  mask_prompt?: boolean;
  max_length?: number;
  weight_decay: number;
  learning_rate: number;
  checkpoint_every_steps?: number;
  labels?: string[];
}

export function settingsOf(job: JobRow): ScratchSettings {
  return job.method.scratchgpt as ScratchSettings;
}

interface Running {
  job: string;
  worker?: Worker;
  settled: boolean;
  /** Cancelled: the steps it still reports are not logged. */
  cancelled?: boolean;
  /** For estimated_finish: when and at which step this run's first event came. */
  t0?: number;
  step0?: number;
  /** The worker's messages, error and exit, handled one after another in the order they came. */
  chain: Promise<void>;
  /** This process's hold on the job; another process took it over when `lost`. */
  lease: Lease;
  lost?: boolean;
  /** The last step an earlier run of the job logged: a resumed run does not log those steps again. */
  loggedThrough: number;
}

const unix = () => Math.floor(Date.now() / 1000);

export class JobRunner {
  private current: Running | undefined;
  private closed = false;
  private scheduled = false;
  /** Scheduler passes and message handlers in progress (close waits for them). */
  private readonly inFlight = new Set<Promise<void>>();
  /**
   * The sections that read a job and write what depends on it (a scheduler pass up to the worker's
   * start, each message's store writes, a cancel, a failure, publishing's commit) run one at a
   * time, so that none writes over what another decided between its read and its write.
   * The helpers below (validate, fail, finishAs, recordCheckpoint, …) run inside one; never await
   * serial.run from inside another section.
   */
  private readonly serial = new Serial();
  private poll: NodeJS.Timeout | undefined;

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  constructor(
    private readonly store: JobStore,
    private readonly dirs: DataDir,
    private readonly blobs: FileBlobs,
    private readonly models: ServedModels,
    private readonly o: RunnerOptions = {},
  ) {}

  private get leaseMs(): number {
    return this.o.leaseMs ?? DEFAULT_LEASE_SECONDS * 1000;
  }

  /**
   * Follows the queue: a job queued or cancelled by any process sharing the store is announced on
   * JOBS_CHANNEL; and every quarter lease it looks again, for jobs whose runner died (their lease ran out).
   */
  async start(): Promise<void> {
    await this.store.listen(JOBS_CHANNEL, (payload) => {
      const cancelled = /^cancel:(.*)$/.exec(payload)?.[1];
      if (cancelled === undefined) return this.kick();
      const run = this.current;
      if (run?.job === cancelled) this.track(this.serial.run(() => this.stopCancelled(run)));
    });
    if (this.o.train !== false) this.poll = setInterval(() => this.kick(), lookAgainMs(this.leaseMs)).unref();
    this.kick();
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => console.error(`scratchgpt fine-tuning: ${l}`)))(line);
  }

  /** Looks for work now (after a job is created, cancelled or finished). */
  kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.track(this.tick().catch((e) => this.log(`scheduler error: ${(e as Error).stack ?? e}`)));
    });
  }

  /** The id of the job whose worker is running, if any. */
  get active(): string | undefined {
    return this.current?.job;
  }

  private async tick(): Promise<void> {
    const picked: { job?: JobRow } = {};
    try {
      const finished = await this.serial.run(async () => {
        if (this.closed) return undefined;
        for (const j of await this.store.jobsIn('validating_files')) await this.validate(j);
        if (this.current || this.o.train === false) return undefined;
        const next = await this.store.claimJob(LEASE_OWNER, this.leaseMs);
        if (!next) return undefined;
        picked.job = next;
        const run: Running = { job: next.id, settled: false, chain: Promise.resolve(), loggedThrough: -1, lease: undefined! };
        run.lease = new Lease(this.store, 'jobs', next.id, this.leaseMs, { lost: () => this.lose(run), status: (st) => st === 'cancelled' && this.track(this.serial.run(() => this.stopCancelled(run))) }, (l) => this.log(`job ${l}`));
        this.current = run;
        return this.begin(next);
      });
      if (finished) {
        await this.publish(finished.id, finished.result);
        this.release();
      }
    } catch (e) {
      const next = picked.job;
      if (!next) throw e; // the scheduler's own error (kick logs it)
      // Anything unexpected here (a full disk, a vanished folder) fails the job, not the server.
      this.log(`job ${next.id}: ${(e as Error).stack ?? e}`);
      await this.serial.run(() => this.fail(next.id, { code: 'internal_error', message: `The job could not run: ${(e as Error).message}`, param: null }));
      this.release();
    }
  }

  /** The files were checked when the job was created; this checks they are still there. */
  private async validate(job: JobRow): Promise<void> {
    for (const [param, id] of [['training_file', job.training_file], ['validation_file', job.validation_file]] as const) {
      if (!id) continue;
      const f = await this.store.getFile(id);
      if (!f || !(await this.blobs.has(f.id))) {
        await this.fail(job.id, { code: param === 'training_file' ? 'invalid_training_file' : 'invalid_validation_file', message: `File ${id} no longer exists.`, param });
        return;
      }
    }
    crashPoint('job.validating');
    await this.store.transaction(async (tx) => {
      // Another process sharing the store may have validated it (or it was cancelled) meanwhile.
      if (!(await tx.moveJob(job.id, 'validating_files', { status: 'queued' }))) return;
      await tx.addEvent(job.id, { message: 'Files validated, moving job to queued state' });
      await tx.notify(JOBS_CHANNEL, job.id);
    });
  }

  private paths(job: JobRow) {
    const ftId = fineTunedModelId(job.model, job.suffix, job.id);
    const jobDir = this.dirs.jobDir(job.id);
    return { ftId, jobDir, workDir: path.join(jobDir, 'work'), outDir: path.join(jobDir, 'out'), modelDir: this.dirs.modelDir(modelFolderName(ftId)) };
  }

  /**
   * Starts the job's worker (inside tick's section). A job whose training had finished before a
   * restart comes back to be published (tick does it, outside the section: loading the model takes a while).
   */
  private async begin(job: JobRow): Promise<{ id: string; result: { trained_tokens: number | null } | undefined } | undefined> {
    const resumed = job.status === 'running';
    const p = this.paths(job);
    if (resumed && (fs.existsSync(path.join(p.modelDir, 'config.json')) || fs.existsSync(path.join(p.outDir, 'config.json')))) {
      await this.store.addEvent(job.id, { message: PUBLISH_AFTER_STOP });
      await this.recordLostCheckpoints(job.id, p.workDir);
      return { id: job.id, result: readResult(p.jobDir, p.workDir) };
    }
    if (resumed) {
      await this.recordLostCheckpoints(job.id, p.workDir);
      const from = (await this.store.listCheckpoints(job.id, { limit: 1 })).data[0]?.step ?? 0;
      await this.store.addEvent(job.id, { level: 'warn', message: `${RESUMED} at step ${from}: the process that ran it had stopped`, data: { resumed_from_step: from } });
      this.current!.loggedThrough = await this.store.lastMetricsStep(job.id);
    } else {
      const started = await this.store.transaction(async (tx) => {
        if (!(await tx.moveJob(job.id, 'queued', { status: 'running', started_at: unix() }))) return false;
        await tx.addEvent(job.id, { message: 'Fine-tuning job started' });
        return true;
      });
      if (!started) {
        // cancelled between the claim and here
        this.release();
        return undefined;
      }
      crashPoint('job.started');
    }
    const base = this.models.info(job.model);
    if (!base || base.kind !== 'generator') {
      await this.fail(job.id, { code: 'model_not_found', message: `The base model '${job.model}' is not among the models (--model) of the process that took the job to train it.`, param: 'model' });
      this.release();
      return undefined;
    }
    const files = async (id: string | null) => {
      if (!id) return undefined;
      const f = await this.store.getFile(id);
      return f && { path: await this.blobs.localPath(f.id), name: f.filename };
    };
    const trainingFile = await files(job.training_file);
    const validationFile = await files(job.validation_file);
    if (!trainingFile || (job.validation_file && !validationFile)) {
      await this.fail(job.id, { code: 'invalid_training_file', message: 'A file of this job no longer exists.', param: trainingFile ? 'validation_file' : 'training_file' });
      this.release();
      return undefined;
    }
    const s = settingsOf(job);
    fs.mkdirSync(p.workDir, { recursive: true });
    const method: FinetuneSpec['method'] =
      s.method === 'lora' ? { type: 'lora', rank: s.lora_rank!, alpha: s.lora_alpha! } : s.method === 'last_blocks' ? { type: 'last_blocks', n: s.last_blocks! } : { type: 'full' };
    const workerData: FinetuneWorkerData = {
      entry: new URL('./finetune-thread.ts', import.meta.url).href,
      spec: {
        baseModelDir: base.dir,
        ...(base.lora !== undefined && { baseLora: base.lora }),
        outDir: p.outDir,
        workDir: p.workDir,
        task: s.task === 'classification' ? { type: 'classification' } : { type: 'instruction', maskPrompt: s.mask_prompt },
        method,
        epochs: job.hyperparameters.n_epochs,
        batchSize: job.hyperparameters.batch_size,
        lr: s.learning_rate,
        seed: job.seed,
        weightDecay: s.weight_decay,
        maxLength: s.max_length,
        checkpointEverySteps: s.checkpoint_every_steps,
        threads: this.o.threads,
        device: this.o.device,
      },
      trainingFile,
      validationFile,
      labels: s.labels,
    };
    const worker = startThread(workerData, `finetune ${job.id}`);
    const run = this.current!;
    run.worker = worker;
    worker.on('message', (msg: FromFinetuneWorker) => {
      this.enqueue(run, async () => {
        try {
          await this.onMessage(run, msg);
        } catch (e) {
          this.log(`job ${run.job}: ${(e as Error).stack ?? e}`);
          if (this.closed) return;
          await this.serial.run(() => this.fail(run.job, { code: 'internal_error', message: `Publishing the model failed: ${(e as Error).message}`, param: null }));
          this.release();
        }
      });
    });
    worker.on('error', (e) => {
      this.enqueue(run, async () => {
        if (this.settle(run)) return;
        if (!run.lost) await this.serial.run(() => this.fail(run.job, { code: 'training_failed', message: `The training worker crashed: ${e.message}`, param: null }));
        this.release();
      });
    });
    worker.on('exit', (code) => {
      const closing = this.closed; // as it was when the worker ended, not once the messages before are handled
      this.enqueue(run, async () => {
        if (this.settle(run) || closing) return;
        // A worker ends by itself only after its final message; this one crashed.
        if (!run.lost) await this.serial.run(() => this.fail(run.job, { code: 'training_failed', message: `The training worker exited unexpectedly (code ${code}).`, param: null }));
        this.release();
      });
    });
    this.log(`job ${job.id}: ${resumed ? 'resumed' : 'started'} (${s.task}, ${s.method}, base ${job.model})`);
    return undefined;
  }

  /** Appends a step to the run's chain: it starts once everything the worker reported before it is handled. */
  private enqueue(run: Running, step: () => Promise<void>): void {
    const p = run.chain.then(step).catch((e) => this.log(`job ${run.job}: ${(e as Error).stack ?? e}`));
    run.chain = p;
    this.track(p);
  }

  /**
   * Marks the run's end (true if it had already ended). The worker ends by itself after its final
   * message; it is never terminated while it trains (see ToFinetuneWorker).
   */
  private settle(run: Running): boolean {
    if (run.settled) return true;
    run.settled = true;
    return false;
  }

  /** The run is over here: its lease goes back (a no-op if another process took it) and the next job may start. */
  private release(): void {
    const run = this.current;
    this.current = undefined;
    if (!run) return this.kick();
    this.track(
      run.lease
        .release()
        .catch((e) => this.log(`job ${run.job}: could not give its lease back (it runs out by itself): ${(e as Error).message}`))
        .finally(() => this.kick()),
    );
  }

  /**
   * Writes for a run, only while this process still holds its job and the job still runs (checked
   * with the row locked, so neither a takeover nor a cancel on another replica slips in between:
   * nothing is logged after the cancel's event). A cancel seen here stops the worker at once.
   */
  private async write(run: Running, fn: (tx: JobStore) => Promise<void>): Promise<void> {
    const cancelled = await this.store.transaction(async (tx) => {
      if ((await tx.lockJob(run.job))?.status === 'cancelled') return true;
      if (await tx.holdsLease('jobs', run.job, LEASE_OWNER)) await fn(tx);
      else this.lose(run);
      return false;
    });
    if (cancelled) await this.stopCancelled(run);
  }

  /**
   * Another process took the job over (this one stalled past its lease): the worker stops after
   * its step without a checkpoint, and nothing more is written or removed for the job from here.
   */
  private lose(run: Running): void {
    if (run.lost) return;
    run.lost = true;
    run.lease.stop();
    // (a run already ended here, e.g. failed, only has its worker stopped)
    if (this.current === run) this.log(`job ${run.job}: another process took it over; stopping here`);
    if (run.worker && !run.settled) run.worker.postMessage({ type: 'cancel' } satisfies ToFinetuneWorker);
  }

  /** The job was cancelled by another process (heard on JOBS_CHANNEL or at a lease renewal): its worker stops after the current step. */
  private async stopCancelled(run: Running): Promise<void> {
    if (this.current !== run || run.cancelled || run.settled) return;
    run.cancelled = true;
    if (run.worker) run.worker.postMessage({ type: 'cancel' } satisfies ToFinetuneWorker);
    this.log(`job ${run.job}: cancelled`);
  }

  private async onMessage(run: Running, msg: FromFinetuneWorker): Promise<void> {
    if (run.settled) return;
    if (run.lost) {
      // Its new holder reports and publishes the job; here the run only ends.
      if (msg.type !== 'started' && msg.type !== 'event' && msg.type !== 'checkpoint' && !this.settle(run)) this.release();
      return;
    }
    const id = run.job;
    switch (msg.type) {
      case 'started':
        return;
      case 'event': {
        const e = msg.event;
        const now = Date.now();
        await this.serial.run(async () => {
          if (run.cancelled || run.lost || e.step <= run.loggedThrough) return;
          const data = {
            step: e.step,
            total_steps: e.totalSteps,
            epoch: e.epoch,
            train_loss: e.trainLoss,
            ...(e.valLoss !== undefined ? { valid_loss: e.valLoss } : {}),
            ...(e.valAccuracy !== undefined ? { valid_accuracy: e.valAccuracy } : {}),
            tokens_per_second: e.tokensPerSecond,
          };
          const valid = e.valLoss !== undefined ? `, validation loss=${fmt(e.valLoss)}` : '';
          const acc = e.valAccuracy !== undefined ? `, validation accuracy=${fmt(e.valAccuracy)}` : '';
          let estimated: number | null = null;
          if (run.t0 === undefined) [run.t0, run.step0] = [now, e.step];
          else if (e.step > run.step0!) estimated = Math.round((now + ((now - run.t0) / (e.step - run.step0!)) * (e.totalSteps - e.step)) / 1000);
          crashPoint('job.metrics');
          await this.write(run, async (tx) => {
            await tx.addEvent(id, { type: 'metrics', message: `Step ${e.step}/${e.totalSteps}: training loss=${fmt(e.trainLoss)}${valid}${acc}`, data });
            if (estimated !== null) await tx.updateJob(id, { estimated_finish: estimated });
          });
        });
        return;
      }
      case 'checkpoint': {
        await this.serial.run(async () => {
          if (run.cancelled || run.lost) return;
          crashPoint('checkpoint.before-row');
          await this.write(run, (tx) => this.recordCheckpoint(id, msg.checkpoint, tx));
        });
        return;
      }
      case 'done': {
        if (this.settle(run)) return;
        const result = { trained_tokens: msg.result.trainedTokens, steps: msg.result.steps };
        crashPoint('publish.done-received');
        writeFileAtomic(path.join(this.dirs.jobDir(id), 'result.json'), JSON.stringify(result) + '\n');
        crashPoint('publish.result-written');
        if (this.closed) return; // shutting down: the next start publishes it (the job is still 'running')
        await this.publish(id, result);
        this.release();
        return;
      }
      case 'stopped':
        this.settle(run); // shutdown: the job stays 'running' and resumes at the next start
        return;
      case 'cancelled':
        if (this.settle(run)) return;
        await this.serial.run(async () => {
          if ((await this.store.getJob(id))?.status === 'running') await this.finishAs(id, 'cancelled', 'Fine-tuning job cancelled');
          else this.cleanup(id);
        });
        this.release();
        return;
      case 'failed':
        if (this.settle(run)) return;
        await this.serial.run(() => this.fail(id, { code: msg.code, message: msg.message, param: msg.param }));
        this.release();
        return;
    }
  }

  private async recordCheckpoint(id: string, c: CheckpointReport & { dir: string }, store = this.store): Promise<void> {
    const metrics: Record<string, number> = { step: c.step, train_loss: c.trainLoss };
    if (c.valLoss !== undefined) metrics.valid_loss = metrics.full_valid_loss = c.valLoss;
    if (c.valAccuracy !== undefined) metrics.valid_mean_token_accuracy = metrics.full_valid_mean_token_accuracy = c.valAccuracy;
    await store.transaction(async (tx) => {
      await tx.addCheckpoint({ job_id: id, step: c.step, epoch: c.epoch, metrics, dir: this.dirs.rel(path.resolve(c.dir)) });
      await tx.addEvent(id, { message: `Checkpoint created at step ${c.step} (epoch ${c.epoch})`, data: { step: c.step, epoch: c.epoch } });
    });
  }

  /**
   * Records the checkpoints the trainer wrote but a crash kept from the store (killed between the
   * worker's rename of the folder and the transaction of its message), from the report each folder
   * carries: otherwise a run resumed from such a checkpoint would never list or keep it.
   */
  private async recordLostCheckpoints(id: string, workDir: string): Promise<void> {
    const known = new Set((await this.store.listCheckpoints(id, { limit: Number.MAX_SAFE_INTEGER - 1 })).data.map((c) => c.step));
    for (const c of checkpointReports(workDir)) if (!known.has(c.step)) await this.recordCheckpoint(id, c);
  }

  /** Steps 3–6 of the comment at the top; safe to run again after a crash at any point. Takes its own sections. */
  private async publish(id: string, result: { trained_tokens: number | null; steps?: number } | undefined): Promise<void> {
    const p = await this.serial.run(async () => {
      const job = (await this.store.getJob(id))!;
      const p = this.paths(job);
      if (job.status !== 'running') {
        this.cleanup(id); // cancelled while it finished
        return undefined;
      }
      if (!fs.existsSync(p.modelDir)) {
        if (!fs.existsSync(path.join(p.outDir, 'config.json'))) throw new Error(`the trainer reported success but wrote no model to ${p.outDir}`);
        replaceDir(p.outDir, p.modelDir);
        crashPoint('publish.moved');
      }
      return p;
    });
    if (!p) return;
    const served = this.models.has(p.ftId) ? this.models.find(p.ftId) : this.models.add(p.ftId, p.modelDir);
    try {
      await served.ready;
    } catch (e) {
      await this.models.remove(p.ftId);
      removeDir(p.modelDir);
      this.removeKeptCheckpoints(p.modelDir);
      await this.serial.run(() => this.fail(id, { code: 'model_load_failed', message: `The finetuned model could not be loaded: ${(e as Error).message}`, param: null }));
      return;
    }
    crashPoint('publish.loaded');
    const published = await this.serial.run(async () => {
      const job = (await this.store.getJob(id))!;
      const lost = this.current?.job === id && this.current.lost;
      if (job.status !== 'running' || this.closed || lost) return { done: false as const, status: job.status };
      const checkpoints = await this.keepCheckpoints(id, p.ftId, p.modelDir);
      const status = await this.store.transaction(async (tx) => {
        const now = (await tx.lockJob(id))!;
        // Taken over while it published (this process stalled past its lease): the new holder publishes.
        if (now.status !== 'running' || !(await tx.holdsLease('jobs', id, LEASE_OWNER))) return now.status;
        await tx.insertModel({ id: p.ftId, job_id: id, dir: this.dirs.rel(p.modelDir) });
        for (const c of checkpoints) await tx.insertModel({ id: c.id, job_id: id, dir: this.dirs.rel(c.dir) });
        await tx.updateJob(id, { status: 'succeeded', fine_tuned_model: p.ftId, trained_tokens: result?.trained_tokens ?? null, finished_at: unix(), estimated_finish: null });
        await tx.addEvent(id, { message: `New fine-tuned model created: ${p.ftId}` });
        await tx.addEvent(id, { message: 'The job has successfully completed' });
        await tx.notify(MODELS_CHANNEL, p.ftId); // every replica serves it from now on (model-sync.ts)
        return undefined;
      });
      if (status !== undefined) return { done: false as const, status };
      crashPoint('publish.committed');
      return { done: true as const, checkpoints };
    });
    if (!published.done) {
      // Cancelled while the model loaded, the server is stopping (the restart redoes this), or another process took the job over (it does).
      await this.models.remove(p.ftId);
      if (published.status !== 'running') {
        removeDir(p.modelDir);
        this.removeKeptCheckpoints(p.modelDir);
        this.cleanup(id);
      }
      return;
    }
    const { checkpoints } = published;
    for (const c of checkpoints) if (!this.models.has(c.id)) this.models.addOnDemand(c.id, c.dir);
    this.log(`job ${id}: succeeded; published ${p.ftId}${checkpoints.length ? ` (and ${checkpoints.length} checkpoints, served on demand)` : ''}`);
    this.cleanup(id);
  }

  /**
   * Moves the job's newest checkpoints (loadable model folders in its work folder, which is about
   * to go) beside the final model, without their training state; returns their model ids and folders.
   */
  private async keepCheckpoints(jobId: string, ftId: string, modelDir: string): Promise<{ id: string; dir: string }[]> {
    const kept: { id: string; dir: string }[] = [];
    for (const c of (await this.store.listCheckpoints(jobId, { limit: KEPT_CHECKPOINTS })).data) {
      const dir = `${modelDir}_ckpt-step-${c.step}`;
      const from = c.dir === null ? undefined : this.dirs.abs(c.dir);
      if (!fs.existsSync(path.join(dir, 'config.json'))) {
        if (!from || !fs.existsSync(path.join(from, 'config.json'))) continue;
        for (const f of [STATE_FILE, REPORT_FILE]) fs.rmSync(path.join(from, f), { force: true });
        replaceDir(from, dir);
        crashPoint('publish.checkpoint-moved');
      }
      kept.push({ id: checkpointModelId(ftId, c.step), dir });
    }
    return kept;
  }

  /** Checkpoint folders keepCheckpoints moved for a model that is not published after all (a rerun after a crash, then a cancel). */
  private removeKeptCheckpoints(modelDir: string): void {
    const prefix = `${path.basename(modelDir)}_ckpt-step-`;
    for (const name of fs.readdirSync(this.dirs.models)) if (name.startsWith(prefix)) removeDir(path.join(this.dirs.models, name));
  }

  private async finishAs(id: string, status: 'cancelled', message: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      await tx.updateJob(id, { status, finished_at: unix(), estimated_finish: null });
      await tx.addEvent(id, { message });
    });
    this.cleanup(id);
  }

  private async fail(id: string, error: JobError): Promise<void> {
    const outcome = await this.store.transaction(async (tx) => {
      const job = await tx.lockJob(id);
      if (!job || TERMINAL.includes(job.status)) return 'ended';
      // A running job is failed only by the process that holds it, not by one that lost it.
      if (job.status === 'running' && !(await tx.holdsLease('jobs', id, LEASE_OWNER))) return 'not ours';
      await tx.updateJob(id, { status: 'failed', error, finished_at: unix(), estimated_finish: null });
      await tx.addEvent(id, { level: 'error', message: `Fine-tuning job failed: ${error.message}` });
      return 'failed';
    });
    if (outcome === 'failed') this.log(`job ${id}: failed: ${error.message}`);
    if (outcome !== 'not ours') this.cleanup(id);
  }

  /** A finished job's scratch folder (checkpoints, optimizer state) goes: only the model stays. */
  private cleanup(id: string): void {
    try {
      removeDir(this.dirs.jobDir(id));
    } catch (e) {
      this.log(`job ${id}: could not remove its folder: ${(e as Error).message}`);
    }
  }

  /**
   * Cancels a job that has not finished: a queued one at once; a running one is marked cancelled
   * now (so a crash from here on does not resume it) and its worker stops after the current step.
   */
  cancel(id: string): Promise<JobRow> {
    return this.serial.run(async () => {
      const was = await this.store.transaction(async (tx) => {
        const job = (await tx.lockJob(id))!;
        if (TERMINAL.includes(job.status)) return job.status;
        await tx.updateJob(id, { status: 'cancelled', finished_at: unix(), estimated_finish: null });
        await tx.addEvent(id, { message: 'Fine-tuning job cancelled' });
        await tx.notify(JOBS_CHANNEL, `cancel:${id}`); // the process running it, wherever it is, stops it
        return job.status;
      });
      if (TERMINAL.includes(was)) return (await this.store.getJob(id))!;
      crashPoint('job.cancelled');
      const run = this.current;
      if (run?.job === id) {
        run.cancelled = true;
        if (run.worker && !run.settled) run.worker.postMessage({ type: 'cancel' });
        // else: it is publishing, and publish() sees the new status
      } else if (was !== 'running') this.cleanup(id); // a running job's folder is its runner's to remove
      this.log(`job ${id}: cancelled`);
      return (await this.store.getJob(id))!;
    });
  }

  /**
   * Server shutdown: asks the training worker to stop after its current step (the engine
   * checkpoints first) without touching the job's state, so the next start resumes it, as after a
   * crash but without losing steps. Waits for that however long the step takes (a thread inside
   * ORT must not be terminated), saying so after stopGraceMs.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    const run = this.current;
    const worker = run?.worker;
    if (run && worker && !run.settled) {
      await stopWorker(worker, { type: 'stop' } satisfies ToFinetuneWorker, this.o.stopGraceMs ?? 60_000, () =>
        this.log(`job ${run.job}: still waiting for the current training step to end`),
      );
    }
    await Promise.all(this.inFlight);
    // The job goes back to the queue now, for another process to resume, rather than when the lease runs out.
    if (run && this.current === run) await run.lease.release().catch(() => undefined);
  }
}

/** The events that open a new run of a job whose runner stopped (a restart, or a takeover by another process). */
export const RESUMED = 'Job resumed from its checkpoint';
export const PUBLISH_AFTER_STOP = 'Training had finished when the process that ran the job stopped: publishing the model';

/** Checkpoints of a finished job that stay servable (OpenAI keeps those of the last three epochs). */
export const KEPT_CHECKPOINTS = 3;

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}

/**
 * What the worker reported when training finished. A crash before result.json was written leaves
 * the last checkpoint (a run ends with one, at its last epoch's end) to say it.
 */
function readResult(jobDir: string, workDir: string): { trained_tokens: number | null } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(jobDir, 'result.json'), 'utf8')) as { trained_tokens: number | null };
  } catch {
    const last = latestFinetuneCheckpoint(workDir);
    return last && { trained_tokens: last.state.position.tokensSeen };
  }
}
