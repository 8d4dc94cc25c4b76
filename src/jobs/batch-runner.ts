// Runs batches (the Batch API) in the background, and is the only writer of their progress.
//
//   validating ─► in_progress ─► finalizing ─► completed | expired
//        │             └──────► cancelling ─► cancelled
//        └─► failed (a malformed input file: batch-input.ts)
//
// Each line is POSTed to the server's own app in process (BatchDispatch.request), so it gets
// exactly the validation, limits and answers of the HTTP route, including routes added later.
// Low priority: one line at a time, over all batches, and a line starts only while its model has
// a free slot and nothing waiting (BatchDispatch.busy), so interactive requests are admitted first
// and never queue behind more than the one line already running.
//
// Durability: a finished line is appended to output.jsonl (2xx) or errors.jsonl (anything else)
// with an fsync, and only then counted in the store. The parts are the truth of what is done: on
// every start a batch is reconciled from them (batch-part.ts), so a kill -9 between the append and
// the commit neither loses nor repeats a line; a line cut short by a kill runs again. Finishing is
// redoable: the result files' ids are chosen and stored first, each file is saved under its id
// unless already there, then one update makes the batch terminal.
import fs from 'node:fs';
import path from 'node:path';
import { crashPoint } from '../faults/crash-point.js';
import { removeDir } from '../model/durable.js';
import { parseBatchInput, type BatchLine } from './batch-input.js';
import { BatchPart, type BatchRecord } from './batch-part.js';
import type { FileBlobs } from './blobs.js';
import type { DataDir } from './files.js';
import { newBatchRequestId, newFileId } from './ids.js';
import { DEFAULT_LEASE_SECONDS, Lease, LEASE_OWNER, lookAgainMs } from './lease.js';
import { Serial } from './serial.js';
import type { BatchError, BatchRow, FileRow, JobStore } from './store.js';

export interface BatchDispatch {
  /** POSTs `body` (JSON) to `url` through the server's app, as a client would; `signal` aborts it. */
  request(url: string, body: unknown, signal: AbortSignal): Promise<Response>;
  /** Whether a batch line for model `id` must wait: interactive work fills its slots. */
  busy(id: string): boolean;
}

/** FineTuning.saveFile: stores a file under a given id (a restart saves it under the same one). */
export type SaveFile = (content: Uint8Array, f: Omit<FileRow, 'id' | 'bytes' | 'path' | 'created_at' | 'status'>, id: string) => Promise<FileRow>;

interface Running {
  batch: string;
  abort: AbortController;
  cancelled: boolean;
  /** This process's hold on the batch; another process took it over when `lost`. */
  lease: Lease;
  lost?: boolean;
}

interface Counts {
  completed: number;
  failed: number;
  input_tokens: number;
  output_tokens: number;
}

/** A line's answer, ready to append; `ok` picks the part. */
interface Finished {
  record: BatchRecord;
  ok: boolean;
}

const unix = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How often a waiting line looks again for a free slot. */
const IDLE_POLL_MS = 20;
/** How long a line waits after a transient refusal (429, a model loading) before it is sent again. */
const RETRY_MS = 1000;

/** Refusals that say "later", not "never": the line is sent again instead of going to the error file. */
function transient(status: number, body: unknown): boolean {
  if (status === 429 || status === 499) return true; // queue full; aborted by cancel or shutdown
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  return status === 503 && (code === 'model_loading' || code === 'server_shutting_down');
}

/** Tokens a successful line used, from its response's `usage` (chat, completions and embeddings all report prompt_tokens). */
function usageOf(r: BatchRecord): { input: number; output: number } {
  const u = (r.response?.body as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } } | null)?.usage;
  const n = (v: unknown) => (typeof v === 'number' ? v : 0);
  return { input: n(u?.prompt_tokens), output: n(u?.completion_tokens) };
}

export class BatchRunner {
  private dispatch: BatchDispatch | undefined;
  private current: Running | undefined;
  private closed = false;
  private scheduled = false;
  private loop: Promise<void> | undefined;
  private poll: NodeJS.Timeout | undefined;
  /**
   * The sections that read a batch's state and write what depends on it (validation, picking the
   * next batch, each state change, a cancel) run one at a time, so that none writes over what
   * another decided between its read and its write. Never await serial.run inside another section.
   */
  private readonly serial = new Serial();

  constructor(
    private readonly store: JobStore,
    private readonly dirs: DataDir,
    private readonly blobs: FileBlobs,
    private readonly saveFile: SaveFile,
    private readonly log: (line: string) => void,
    private readonly leaseMs = DEFAULT_LEASE_SECONDS * 1000,
  ) {}

  /**
   * Starts running batches through `d` (the app exists only after the service that holds this
   * runner), and looks again every quarter lease: for batches other replicas queued, and for those
   * whose runner died (their lease ran out).
   */
  attach(d: BatchDispatch): void {
    this.dispatch = d;
    this.poll = setInterval(() => this.kick(), lookAgainMs(this.leaseMs)).unref();
    this.kick();
  }

  /** Validates new batches now and runs the next one if none runs. */
  kick(): void {
    if (this.scheduled || this.closed || !this.dispatch) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.closed) return;
      void this.serial
        .run(async () => {
          try {
            for (const b of await this.store.batchesIn('validating')) await this.validate(b);
          } catch (e) {
            this.log(`batch validation error: ${(e as Error).stack ?? e}`);
          }
          // A batch created while the loop runs is validated above and found by the loop's next look
          // (it looks again after every batch; its last look, which finds none, ends the loop in the
          // same section, so a section after it starts a new loop).
          if (this.loop) return;
          const loop: Promise<void> = this.drain()
            .catch((e) => this.log(`batch scheduler error: ${(e as Error).stack ?? e}`))
            .finally(() => {
              if (this.loop === loop) this.loop = undefined;
            });
          this.loop = loop;
        })
        .catch((e) => this.log(`batch scheduler error: ${(e as Error).stack ?? e}`));
    });
  }

  private async validate(b: BatchRow): Promise<void> {
    const f = await this.store.getFile(b.input_file_id);
    const input = f ? parseBatchInput(await this.blobs.read(f.id), b.endpoint) : undefined;
    if (!input || !input.ok) {
      const errors: BatchError[] = input?.errors ?? [{ code: 'invalid_file', message: `File ${b.input_file_id} no longer exists.`, param: 'input_file_id', line: null }];
      if (!(await this.store.moveBatch(b.id, 'validating', { status: 'failed', failed_at: unix(), errors }))) return; // another replica did it
      this.log(`batch ${b.id}: failed validation (${errors[0]!.message}${errors.length > 1 ? ` and ${errors.length - 1} more` : ''})`);
      return;
    }
    await this.store.moveBatch(b.id, 'validating', { status: 'in_progress', in_progress_at: unix(), total: input.lines.length });
  }

  /** Runs batches oldest first until none is left (or the server closes). */
  private async drain(): Promise<void> {
    for (;;) {
      // Picked in a section, so a cancel sees either no run of this batch (and finishes it itself) or this one.
      const picked = await this.serial.run(async () => {
        const next = this.closed ? undefined : await this.store.claimBatch(LEASE_OWNER, this.leaseMs);
        if (!next) {
          this.loop = undefined; // none left: a kick from here on starts a new loop
          return undefined;
        }
        const run: Running = { batch: next.id, abort: new AbortController(), cancelled: next.status === 'cancelling', lease: undefined! };
        run.lease = new Lease(this.store, 'batches', next.id, this.leaseMs, {
          // cancelled on another replica: the line in flight is aborted and the batch finishes as cancelled
          status: (st) => st === 'cancelling' && !run.cancelled && ((run.cancelled = true), run.abort.abort()),
          lost: () => {
            run.lost = run.cancelled = true;
            run.abort.abort();
          },
        }, (l) => this.log(`batch ${l}`));
        this.current = run;
        return { next, run };
      });
      if (!picked) return;
      const { next, run } = picked;
      try {
        await this.run(next, run);
      } catch (e) {
        // A full disk or a vanished folder fails the batch, not the server.
        this.log(`batch ${next.id}: ${(e as Error).stack ?? e}`);
        if (!this.closed) await this.serial.run(() => this.fail(next.id, `The batch could not run: ${(e as Error).message}`));
      } finally {
        this.current = undefined;
        await run.lease.release().catch((e) => this.log(`batch ${next.id}: could not give its lease back (it runs out by itself): ${(e as Error).message}`));
      }
    }
  }

  /** The batch's result parts (its folder is made on first use). */
  private parts(id: string): { out: BatchPart; err: BatchPart } {
    const dir = this.dirs.batchDir(id);
    fs.mkdirSync(dir, { recursive: true });
    return { out: new BatchPart(path.join(dir, 'output.jsonl')), err: new BatchPart(path.join(dir, 'errors.jsonl')) };
  }

  private async run(b: BatchRow, run: Running): Promise<void> {
    const { out, err } = this.parts(b.id);
    const { done, counts } = await this.reconcile(b, out, err);
    if (b.status === 'in_progress') {
      const f = await this.store.getFile(b.input_file_id);
      const input = f && parseBatchInput(await this.blobs.read(f.id), b.endpoint);
      if (!input?.ok) return this.serial.run(() => this.fail(b.id, `The input file ${b.input_file_id} is gone or changed.`));
      const left = input.lines.filter((l) => !done.has(l.custom_id));
      for (let i = 0; i < left.length && !run.cancelled; i++) {
        const line = left[i]!;
        if (unix() >= b.expires_at) {
          // A cancel that came first wins, as it did when the check above and this were one step.
          await this.serial.run(async () => {
            if (!run.cancelled) await this.expire(b.id, left.slice(i), err, counts);
          });
          break;
        }
        const finished = await this.execute(line, run, b.expires_at);
        // Appended only while the batch is still this process's: a holder that stalled past its lease must not add a line its successor runs too.
        if (finished && !(await this.store.renewLease('batches', b.id, LEASE_OWNER, this.leaseMs))) run.lost = true;
        if (!finished || run.lost) {
          if (this.closed || run.lost) return; // shutting down: the next start runs this line; lost: the new holder does
          i--; // cancelled (the loop ends) or expired (the next pass says so)
          continue;
        }
        (finished.ok ? out : err).append([finished.record]);
        crashPoint('batch.line-appended');
        const used = usageOf(finished.record);
        if (finished.ok) Object.assign(counts, { completed: counts.completed + 1, input_tokens: counts.input_tokens + used.input, output_tokens: counts.output_tokens + used.output });
        else counts.failed++;
        await this.store.updateBatch(b.id, counts);
      }
      if (this.closed || run.lost) return;
      await this.serial.run(async () => {
        if ((await this.store.getBatch(b.id))!.status === 'in_progress') await this.store.updateBatch(b.id, { status: 'finalizing', finalizing_at: unix() });
      });
    }
    await this.finalize(b.id, out, err);
  }

  /** The lines the parts hold are done; the store's counts are brought up to them (a kill can leave them one behind). */
  private async reconcile(b: BatchRow, out: BatchPart, err: BatchPart): Promise<{ done: Set<string>; counts: Counts }> {
    const ok = out.recover();
    const failed = err.recover();
    const counts: Counts = { completed: ok.length, failed: failed.length, input_tokens: 0, output_tokens: 0 };
    for (const r of ok) {
      const u = usageOf(r);
      counts.input_tokens += u.input;
      counts.output_tokens += u.output;
    }
    if (counts.completed !== b.completed || counts.failed !== b.failed) {
      this.log(`batch ${b.id}: recovered ${counts.completed + counts.failed - b.completed - b.failed} finished line(s) the store had not counted`);
    }
    await this.store.updateBatch(b.id, counts);
    return { done: new Set([...ok, ...failed].map((r) => r.custom_id)), counts };
  }

  /**
   * One line through the app, once its model has room. Undefined when it did not run to an
   * answer worth keeping: cancelled, shutting down, expired while waiting, or a transient refusal.
   */
  private async execute(line: BatchLine, run: Running, expiresAt: number): Promise<Finished | undefined> {
    const model = typeof line.body.model === 'string' ? line.body.model : undefined;
    const stopped = () => this.closed || run.cancelled || unix() >= expiresAt;
    while (model !== undefined && this.dispatch!.busy(model) && !stopped()) await sleep(IDLE_POLL_MS);
    if (stopped()) return undefined;
    let res: Response;
    let text: string;
    try {
      res = await this.dispatch!.request(line.url, line.body, run.abort.signal);
      text = await res.text();
    } catch (e) {
      if (run.abort.signal.aborted) return undefined;
      throw e;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    if (transient(res.status, body)) {
      if (!stopped() && res.status !== 499) await sleep(RETRY_MS);
      return undefined;
    }
    const record: BatchRecord = {
      id: newBatchRequestId(),
      custom_id: line.custom_id,
      response: { status_code: res.status, request_id: res.headers.get('x-request-id'), body },
      error: null, // OpenAI's: set only for lines that got no HTTP answer
    };
    return { record, ok: res.ok };
  }

  /** The completion window has passed: the lines not run go to the error file as OpenAI's batch_expired, then the batch finishes as expired. */
  private async expire(id: string, left: BatchLine[], err: BatchPart, counts: Counts): Promise<void> {
    const message = 'This request could not be executed before the completion window expired.';
    err.append(left.map((l) => ({ id: newBatchRequestId(), custom_id: l.custom_id, response: null, error: { code: 'batch_expired', message } })));
    counts.failed += left.length;
    await this.store.updateBatch(id, { ...counts, status: 'finalizing', finalizing_at: unix(), expired_at: unix() });
    this.log(`batch ${id}: expired with ${left.length} line(s) not run`);
  }

  /** Stores the parts as files (purpose 'batch_output') and makes the batch terminal; safe to redo after a crash at any point. */
  private async finalize(id: string, out: BatchPart, err: BatchPart): Promise<void> {
    let b = (await this.store.getBatch(id))!;
    const outcome = b.status === 'cancelling' ? 'cancelled' : b.expired_at !== null ? 'expired' : 'completed';
    const parts = { output: out.read(), error: err.read() };
    if (!b.result_files) {
      await this.store.updateBatch(id, { result_files: { output: parts.output.length ? newFileId() : null, error: parts.error.length ? newFileId() : null } });
      b = (await this.store.getBatch(id))!;
    }
    const files = b.result_files!;
    for (const kind of ['output', 'error'] as const) {
      const fileId = files[kind];
      if (!fileId || (await this.store.getFile(fileId))) continue;
      const bytes = parts[kind];
      const records = bytes.reduce((n, c) => n + (c === 10 ? 1 : 0), 0);
      await this.saveFile(bytes, { filename: `${id}_${kind}.jsonl`, purpose: 'batch_output', format: 'jsonl', records, labels: null }, fileId);
    }
    crashPoint('batch.files-saved');
    const at = unix();
    await this.store.updateBatch(id, {
      status: outcome,
      ...(outcome === 'completed' ? { completed_at: at } : outcome === 'cancelled' ? { cancelled_at: at } : {}),
      output_file_id: files.output,
      error_file_id: files.error,
    });
    this.log(`batch ${id}: ${outcome} (${b.completed} completed, ${b.failed} failed of ${b.total})`);
    this.cleanup(id);
  }

  private async fail(id: string, message: string): Promise<void> {
    await this.store.updateBatch(id, { status: 'failed', failed_at: unix(), errors: [{ code: 'internal_error', message, param: null, line: null }] });
    this.log(`batch ${id}: failed: ${message}`);
    this.cleanup(id);
  }

  /** A finished batch's parts go: its results live on as files. */
  private cleanup(id: string): void {
    try {
      removeDir(this.dirs.batchDir(id));
    } catch (e) {
      this.log(`batch ${id}: could not remove its folder: ${(e as Error).message}`);
    }
  }

  /**
   * Cancels a batch that is validating or in progress: 'cancelling' at once (a crash from here on
   * finishes it as cancelled), and the lines already finished become its output and error files:
   * now when it is not the batch running (nothing else writes its parts), else once the line in
   * flight is aborted.
   */
  cancel(id: string): Promise<BatchRow> {
    return this.serial.run(async () => {
      const b = (await this.store.getBatch(id))!;
      if (b.status !== 'validating' && b.status !== 'in_progress') return b;
      if (!(await this.store.moveBatch(id, b.status, { status: 'cancelling', cancelling_at: unix() }))) return (await this.store.getBatch(id))!; // another replica moved it first
      const run = this.current;
      this.log(`batch ${id}: cancelling`);
      if (run?.batch === id) {
        run.cancelled = true;
        run.abort.abort();
      } else if (!this.closed) {
        // Finished here unless another process runs it (that one sees the cancel at its next lease renewal and finishes it).
        const held = await this.store.claimBatch(LEASE_OWNER, this.leaseMs, id);
        if (held) {
          try {
            const { out, err } = this.parts(id);
            await this.reconcile(held, out, err); // a part a crash left behind may end torn
            await this.finalize(id, out, err);
          } finally {
            await this.store.releaseLease('batches', id, LEASE_OWNER);
          }
        }
      }
      return (await this.store.getBatch(id))!;
    });
  }

  /** Server shutdown: the line in flight is aborted (it runs again at the next start), and no other starts. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poll);
    this.current?.abort.abort();
    await this.loop;
  }
}
