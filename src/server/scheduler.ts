// Continuous batching. Every step runs ONE forward call over all running sequences' next tokens
// (decode rows) and, before it, one call that prefills the sequences given a slot this step. A
// request that arrives while others decode joins at the next step; a finished or cancelled one
// leaves at the end of the step it finished in (cancels are seen between steps, so within one step).
//
// Each sequence owns a KV-cache slot, a Generation (sampler with its own seeded RNG, detokenizer,
// stop strings), so its tokens do not depend on who else is in the batch. Running sequences are
// kept in slots 0..n-1 in order: the forward call then passes the cache as one zero-copy view
// (ModelSession gathers, i.e. copies every layer's cache, when slots are not neighbours).
import type { GPTConfig } from '../model/config.js';
import { ConstraintError } from '../model/constraint-error.js';
import { Generation, type StepResult } from '../model/generation.js';
import { logSumExp, topLogprobs, type TokenLogprob } from '../model/sampling-kernels.js';
import type { ForwardRow } from '../model/session.js';
import type { FromModelThread, SeqEvent, SeqSpec } from './protocol.js';

/** What the scheduler needs of a ModelSession (an interface so tests can count calls). */
export interface BatchModel {
  config: GPTConfig;
  cache: { slots: number; moveSlot(from: number, to: number): void };
  forward(rows: ForwardRow[]): Promise<Float32Array[]>;
}

export interface SchedulerOptions {
  /**
   * Prompt tokens prefilled per step (at least one sequence always gets a slot). Bounds how long
   * running streams stall while newcomers prefill, at some cost in time to first token.
   */
  prefillTokens?: number;
  /**
   * true: prefill rows ride in the decode call (one forward per step). Rows are padded to the
   * longest, so a 128-token prompt makes every decode row cost 128 positions: off by default.
   */
  mixed?: boolean;
}

interface Active {
  spec: SeqSpec;
  gen: Generation;
  slot: number;
  /** Tokens already in the KV cache; 0 until prefilled. */
  pos: number;
}

export class Scheduler {
  private readonly waiting: SeqSpec[] = [];
  private running: Active[] = [];
  private readonly cancelled = new Set<number>();
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly prefillTokens: number;
  private readonly mixed: boolean;
  /** Events of the current step, posted together (one message per forward call). */
  private events: SeqEvent[] = [];
  /** running/waiting as last posted, to post count changes even in steps without events. */
  private lastCounts = '';

  constructor(
    private readonly model: BatchModel,
    private readonly post: (msg: FromModelThread) => void,
    opts: SchedulerOptions = {},
  ) {
    this.prefillTokens = opts.prefillTokens ?? 512;
    this.mixed = opts.mixed ?? false;
  }

  submit(seqs: SeqSpec[]): void {
    this.waiting.push(...seqs);
    this.wake?.();
  }

  cancel(ids: number[]): void {
    for (const id of ids) {
      const at = this.waiting.findIndex((s) => s.id === id);
      if (at >= 0) {
        this.waiting.splice(at, 1);
        this.events.push({ type: 'end', id, reason: 'cancelled' });
      } else if (this.running.some((a) => a.spec.id === id)) this.cancelled.add(id);
    }
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** The loop: step while there is work, sleep until a submit or cancel otherwise. */
  async run(): Promise<void> {
    while (!this.closed) {
      this.retire(this.running.filter((a) => this.cancelled.has(a.spec.id)), 'cancelled');
      this.flush(); // cancels and counts, even when nothing runs any more
      if (this.running.length === 0 && this.waiting.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      await this.step();
      // Let submit/cancel messages in: session.run blocked this thread for the whole forward call.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private async step(): Promise<void> {
    const fresh = this.fillSlots();
    const old = this.running.filter((a) => !fresh.includes(a));
    const prefill = (a: Active): ForwardRow => ({ slot: a.slot, tokens: a.spec.prompt, start: 0, logits: a.spec.promptLogprobs !== undefined ? 'all' : 'last' });
    const decode = (a: Active): ForwardRow => ({ slot: a.slot, tokens: [a.gen.tokens.at(-1)!], start: a.pos, logits: 'last' });
    if (this.mixed) {
      await this.run1(this.running, (a) => (fresh.includes(a) ? prefill(a) : decode(a)));
    } else {
      if (fresh.length) await this.run1(fresh, prefill);
      if (old.length) await this.run1(old, decode);
    }
  }

  /** Moves waiting sequences into free slots, within the step's prefill budget. */
  private fillSlots(): Active[] {
    const fresh: Active[] = [];
    let budget = this.prefillTokens;
    while (this.waiting.length && this.running.length < this.model.cache.slots) {
      const spec = this.waiting[0]!;
      if (fresh.length && spec.prompt.length > budget) break;
      this.waiting.shift();
      budget -= spec.prompt.length;
      let gen: Generation;
      try {
        gen = new Generation(spec.prompt, spec.options, this.model.config); // checked by admission on the HTTP thread already
      } catch (e) {
        this.events.push({ type: 'end', id: spec.id, reason: 'error', message: (e as Error).message });
        continue;
      }
      if (spec.options.maxTokens === 0 && spec.promptLogprobs === undefined) {
        this.events.push({ type: 'end', id: spec.id, reason: 'length' }); // nothing to compute
        continue;
      }
      const a: Active = { spec, gen, slot: this.running.length, pos: 0 };
      this.running.push(a);
      fresh.push(a);
    }
    return fresh;
  }

  /** One forward call over `batch` (in slot order), then one sampling step per row. */
  private async run1(batch: Active[], row: (a: Active) => ForwardRow): Promise<void> {
    const rows = batch.map(row);
    let logits: Float32Array[];
    try {
      logits = await this.model.forward(rows);
    } catch (e) {
      // Not a client's doing (inputs were checked): fail these sequences, keep serving others.
      console.error('scheduler: forward failed:', e);
      this.retire(batch, 'error', (e as Error).message);
      this.flush(rows.length);
      return;
    }
    const done: Active[] = [];
    const failed: Active[] = [];
    batch.forEach((a, i) => {
      const r = rows[i]!;
      let out = logits[i]!;
      if (r.logits === 'all') {
        this.events.push(promptEvent(a.spec, out, this.model.config.vocabSize));
        out = out.subarray(out.length - this.model.config.vocabSize);
      }
      a.pos = r.start + r.tokens.length;
      if (a.spec.options.maxTokens === 0) {
        this.events.push({ type: 'end', id: a.spec.id, reason: 'length' });
        done.push(a);
        return;
      }
      let s: StepResult;
      try {
        s = a.gen.step(out);
      } catch (e) {
        // e.g. NaN logits from a broken checkpoint: this sequence fails, the batch goes on.
        failed.push(a);
        this.events.push({ type: 'end', id: a.spec.id, reason: 'error', message: (e as Error).message, ...(e instanceof ConstraintError && { invalidRequest: true as const }) });
        return;
      }
      this.events.push({ type: 'token', id: a.spec.id, token: s.token, text: s.text, logprob: s.logprob, top: s.topLogprobs, finish: s.finishReason });
      if (s.finishReason) done.push(a);
    });
    this.retire([...done, ...failed]);
    this.flush(rows.length);
  }

  /**
   * Frees the slots of `gone`, moving the last running sequence into each gap so that the running
   * ones stay in slots 0..n-1. `reason` set: also tell the HTTP thread they ended.
   */
  private retire(gone: Active[], reason?: 'cancelled' | 'error', message?: string): void {
    if (!gone.length) return;
    const dead = new Set(gone);
    for (let i = this.running.length - 1; i >= 0; i--) {
      const a = this.running[i]!;
      if (!dead.has(a)) continue;
      if (reason) this.events.push({ type: 'end', id: a.spec.id, reason, ...(message ? { message } : {}) });
      this.cancelled.delete(a.spec.id);
      const last = this.running.pop()!;
      if (i < this.running.length) {
        this.model.cache.moveSlot(last.slot, i);
        last.slot = i;
        this.running[i] = last;
      }
    }
  }

  /** Posts this step's events with the queue and batch sizes (skipped when nothing changed). */
  private flush(batch = 0): void {
    const counts = `${this.running.length}/${this.waiting.length}`;
    if (!this.events.length && !batch && counts === this.lastCounts) return;
    this.lastCounts = counts;
    this.post({ type: 'step', events: this.events, running: this.running.length, waiting: this.waiting.length, batch });
    this.events = [];
  }
}

/** logprob of each prompt token given the ones before it, from the prefill's per-position logits. */
function promptEvent(spec: SeqSpec, logits: Float32Array, V: number): SeqEvent {
  const n = spec.promptLogprobs ?? 0;
  const logprobs: (number | null)[] = [null];
  const top: (TokenLogprob[] | null)[] = [null];
  for (let t = 0; t + 1 < spec.prompt.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    const lse = logSumExp(row);
    logprobs.push(row[spec.prompt[t + 1]!]! - lse);
    top.push(topLogprobs(row, n, lse));
  }
  return { type: 'prompt', id: spec.id, logprobs, top };
}
