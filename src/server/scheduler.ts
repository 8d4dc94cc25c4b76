// Continuous batching. Every step runs ONE forward call over all running sequences' next tokens
// (decode rows) and, before it, the calls that prefill the sequences given a slot this step (split
// into calls of about --prefill-call-tokens, so that the first of a burst stream sooner). A
// request that arrives while others decode joins at the next step; a finished or cancelled one
// leaves at the end of the step it finished in (cancels are seen between steps, so within one step).
//
// Each sequence owns a KV-cache slot, a Generation (sampler with its own seeded RNG, detokenizer,
// stop strings), so its tokens do not depend on who else is in the batch. Running sequences are
// kept in slots 0..n-1 in order: the forward call then passes the cache as one zero-copy view
// (ModelSession gathers, i.e. copies every layer's cache, when slots are not neighbours).
//
// With a prefix cache (prefix-cache.ts), a newcomer whose prompt starts with cached blocks gets
// their K/V copied into its slot and prefills only the rest. Newcomers of one step that share
// blocks no one has computed yet (the n choices of a prompt, clients with one system prompt) do
// not all prefill them: the first (a leader) does, and the others (followers) take the blocks it
// stored, and its rows past them, in later prefill calls of the same step.
import type { GPTConfig } from '../model/config.js';
import { ConstraintError } from '../model/constraint-error.js';
import { Generation, type StepResult } from '../model/generation.js';
import { KVCache } from '../model/kv-cache.js';
import { DEFAULT_PREFIX_CACHE_MB, PrefixCache } from '../model/prefix-cache.js';
import { logSumExp, topLogprobs, type TokenLogprob } from '../model/sampling-kernels.js';
import type { ForwardRow } from '../model/session.js';
import { accepted, draftAndCheck, type DraftingModel, type DraftStats, type Round } from '../model/speculative.js';
import type { FromModelThread, SeqEvent, SeqSpec } from './protocol.js';

/** serve's --prefill-call-tokens default: half the default step budget (--prefill-tokens 512), so a full step prefills in two calls. */
export const DEFAULT_PREFILL_CALL_TOKENS = 256;

/** What the scheduler needs of a ModelSession (an interface so tests can count calls). */
export interface BatchModel extends DraftingModel {
  config: GPTConfig;
  cache: { slots: number; moveSlot(from: number, to: number): void };
  /** Tokens a draft proposes per speculative round, at most; 0 or absent: no draft. */
  draftTokens?: number;
  /** A draft call's cost over an fp32 call's (ModelSession.draftCost); needed with draftTokens. */
  draftCost?: number;
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
  /** Prefix-cache budget in MiB (0: off); only for a host KV cache (the CPU's and CUDA's). */
  prefixCacheMb?: number;
  /**
   * Prompt tokens per prefill call, about (a longer prompt goes alone): a step's newcomers are
   * prefilled in the fewest calls of equal size, each call's sequences streaming their first token as it ends.
   */
  prefillCallTokens?: number;
}

interface Active {
  spec: SeqSpec;
  gen: Generation;
  slot: number;
  /** Tokens already in the KV cache: 0, or the prefix taken from the prefix cache, until prefilled. */
  pos: number;
  /** Prompt tokens taken from the prefix cache or a running sequence (reported with the first token). */
  cached: number;
  /** Prompt tokens it was to prefill when admitted (what prefillCalls splits by). */
  cost: number;
}

/** How a newcomer would prefill: `cost` tokens, after a leader of this step (`follows`) or not. */
interface Plan {
  cost: number;
  follows: boolean;
  /** Its full blocks, which it stores once prefilled. */
  keys: string[];
}

export class Scheduler {
  private readonly waiting: SeqSpec[] = [];
  private running: Active[] = [];
  private readonly cancelled = new Set<number>();
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly prefillTokens: number;
  private readonly mixed: boolean;
  private readonly prefillCallTokens: number;
  private readonly prefix: PrefixCache | undefined;
  /** Events of the current step, posted together (one message per forward call). */
  private events: SeqEvent[] = [];
  /** running/waiting as last posted, to post count changes even in steps without events. */
  private lastCounts = '';

  constructor(
    private readonly model: BatchModel,
    private readonly post: (msg: FromModelThread) => void,
    opts: SchedulerOptions = {},
  ) {
    if (model.draftTokens && model.draftCost === undefined) throw new Error('Scheduler: a model with draftTokens needs its draftCost');
    this.prefillTokens = opts.prefillTokens ?? 512;
    this.mixed = opts.mixed ?? false;
    this.prefillCallTokens = opts.prefillCallTokens ?? DEFAULT_PREFILL_CALL_TOKENS;
    const mb = opts.prefixCacheMb ?? DEFAULT_PREFIX_CACHE_MB;
    this.prefix = mb > 0 && model.cache instanceof KVCache ? new PrefixCache(model.cache, mb * 2 ** 20) : undefined;
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
    const { leaders, followers } = this.fillSlots();
    const old = this.running.filter((a) => !leaders.includes(a) && !followers.includes(a));
    // Alone, a sequence's decode step reads every weight for one token: a draft's round checks several at that price.
    const lone = this.running.length === 1 && old.length === 1 ? old[0]! : undefined;
    const k = lone && this.model.draftTokens ? lone.gen.drafts.next(this.model.draftTokens, this.model.draftCost!, lone.gen) : 0;
    if (k > 0) return this.speculate(lone!, k);
    // The last prompt token alone after a cached prefix asks for 'all' too: ModelSession runs calls
    // of one-token 'last' rows on its int8 decode graph, and this prefill must stay fp32 as without the cache.
    const prefill = (a: Active): ForwardRow => ({ slot: a.slot, tokens: a.spec.prompt.slice(a.pos), start: a.pos, logits: a.spec.promptLogprobs !== undefined || (a.pos > 0 && a.pos === a.spec.prompt.length - 1) ? 'all' : 'last' });
    const decode = (a: Active): ForwardRow => ({ slot: a.slot, tokens: [a.gen.tokens.at(-1)!], start: a.pos, logits: 'last' });
    // Cached prefixes are copied into slots just before their sequences' call, so the first call
    // does not wait for the copies of later ones; followers' blocks exist once their leaders ran.
    const load = (a: Active) => {
      if (!this.prefix || a.spec.promptLogprobs !== undefined) return;
      a.pos = a.cached = this.prefix.load(a.spec.prompt, a.slot);
      this.share(a);
    };
    if (this.mixed) {
      leaders.forEach(load);
      await this.run1(
        this.running.filter((a) => !followers.includes(a)),
        (a) => (leaders.includes(a) ? prefill(a) : decode(a)),
      );
    } else await this.prefillCalls(leaders, load, prefill);
    if (followers.length) {
      // Their leaders ran and stored their blocks (slots may have moved: read them now); what is left is known.
      for (const a of followers) {
        load(a);
        a.cost = a.spec.prompt.length - a.pos;
      }
      await this.prefillCalls(followers.sort((x, y) => x.slot - y.slot), () => {}, prefill);
    }
    if (!this.mixed && old.length) await this.run1(old, decode);
  }

  /**
   * Prefills `seqs` in the fewest calls of about prefillCallTokens tokens, of equal size, in order:
   * a call's sequences get their first token when it ends, so with two calls the first half of a
   * burst streams in about half the time (one call more costs little: on 2 CPU cores a 128-token
   * call already runs at ~90 % of a 420-token one's tokens/s). A longer prompt goes alone.
   */
  private async prefillCalls(seqs: Active[], load: (a: Active) => void, prefill: (a: Active) => ForwardRow): Promise<void> {
    const total = seqs.reduce((s, a) => s + a.cost, 0);
    const k = Math.max(1, Math.ceil(total / this.prefillCallTokens));
    const calls: Active[][] = Array.from({ length: k }, () => []);
    let before = 0;
    for (const a of seqs) {
      calls[Math.min(k - 1, Math.floor(((before + a.cost / 2) * k) / Math.max(1, total)))]!.push(a); // the call its middle falls in
      before += a.cost;
    }
    for (const call of calls.filter((c) => c.length)) {
      call.forEach(load);
      await this.run1(call.sort((x, y) => x.slot - y.slot), prefill); // an earlier call's retirements may have moved slots
    }
  }

  /**
   * Past its cached blocks, `a` takes the rows its prompt shares with a prefilled running one's
   * (a system prompt's tail that ends mid-block, the rest of a prompt whose n choices run): only
   * whole blocks are cached, but the rows of a running sequence are as good.
   */
  private share(a: Active): void {
    const { donor, shared } = this.donor(a.spec.prompt, a.pos);
    if (!donor) return;
    const kv = this.model.cache as KVCache; // a prefix cache means a host KV cache
    kv.reserve(shared);
    kv.writePositions(a.slot, a.pos, shared - a.pos, kv.readPositions(donor.slot, a.pos, shared - a.pos));
    this.prefix!.countShared(shared - a.pos);
    a.pos = a.cached = shared;
  }

  /** The prefilled running sequence whose prompt starts like `prompt` for more than `least` tokens, the longest. */
  private donor(prompt: readonly number[], least: number): { donor?: Active; shared: number } {
    let donor: Active | undefined;
    let shared = least;
    for (const b of this.running) {
      const q = b.spec.prompt;
      const most = Math.min(prompt.length - 1, q.length); // the last prompt token is always prefilled
      if (b.pos < q.length || most <= shared) continue; // not prefilled yet (`prompt`'s own sequence among them)
      let n = 0;
      while (n < most && prompt[n] === q[n]) n++;
      if (n > shared) [donor, shared] = [b, n];
    }
    return { donor, shared };
  }

  /** How `spec` would prefill now, given the blocks that this step's leaders so far will store. */
  private plan(spec: SeqSpec, pending: Set<string>): Plan {
    // Prompt logprobs need every prompt position's logits: such a sequence computes them all.
    if (!this.prefix || spec.promptLogprobs !== undefined) return { cost: spec.prompt.length, follows: false, keys: this.prefix?.chain(spec.prompt) ?? [] };
    const keys = this.prefix.chain(spec.prompt);
    const usable = this.prefix.reusable(spec.prompt);
    const hit = this.prefix.matched(keys.slice(0, usable));
    let shared = hit;
    while (shared < usable && (this.prefix.has(keys[shared]!) || pending.has(keys[shared]!))) shared++;
    const cost = spec.prompt.length - Math.max(shared * this.prefix.blockTokens, this.donor(spec.prompt, 0).shared);
    return { cost, follows: shared > hit, keys };
  }

  /**
   * Moves waiting sequences into free slots, within the step's prefill budget (prompt tokens not
   * taken from the prefix cache). Their cached prefixes are loaded in step(), before their calls.
   */
  private fillSlots(): { leaders: Active[]; followers: Active[] } {
    const leaders: Active[] = [];
    const followers: Active[] = [];
    const pending = new Set<string>();
    let budget = this.prefillTokens;
    while (this.waiting.length && this.running.length < this.model.cache.slots) {
      const spec = this.waiting[0]!;
      const plan = this.plan(spec, pending);
      if ((leaders.length || followers.length) && plan.cost > budget) break;
      this.waiting.shift();
      budget -= plan.cost;
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
      const a: Active = { spec, gen, slot: this.running.length, pos: 0, cached: 0, cost: plan.cost };
      this.running.push(a);
      if (plan.follows) followers.push(a);
      else {
        for (const key of plan.keys) pending.add(key);
        leaders.push(a);
      }
    }
    return { leaders, followers };
  }

  /** One forward call over `batch` (in slot order), then one sampling step per row. */
  private async run1(batch: Active[], row: (a: Active) => ForwardRow): Promise<void> {
    const rows = batch.map(row);
    let logits: Float32Array[];
    try {
      logits = await this.model.forward(rows);
    } catch (e) {
      return this.callFailed(batch, e);
    }
    const done: Active[] = [];
    const failed: Active[] = [];
    batch.forEach((a, i) => {
      const r = rows[i]!;
      let out = logits[i]!;
      if (r.logits === 'all' && a.spec.promptLogprobs !== undefined) {
        this.events.push(promptEvent(a.spec, out, this.model.config.vocabSize));
        out = out.subarray(out.length - this.model.config.vocabSize);
      }
      const prefilled = r.start < a.spec.prompt.length;
      a.pos = r.start + r.tokens.length;
      if (prefilled) this.prefix?.store(a.spec.prompt, a.slot); // before retire() moves slots
      if (a.spec.options.maxTokens === 0) {
        this.events.push({ type: 'end', id: a.spec.id, reason: 'length' });
        done.push(a);
        return;
      }
      const s = this.sample(a, out, prefilled && a.cached ? { cached: a.cached } : {});
      if (!s) failed.push(a);
      else if (s.finishReason) done.push(a);
    });
    this.retire([...done, ...failed]);
    this.flush(rows.length);
  }

  /** A forward call threw: not a client's doing (inputs were checked), so these sequences fail and the others go on. */
  private callFailed(batch: Active[], e: unknown): void {
    console.error('scheduler: forward failed:', e);
    this.retire(batch, 'error', (e as Error).message);
    this.flush(batch.length);
  }

  /** One sampling step of `a` and its token event; on an error its end event and undefined. */
  private sample(a: Active, logits: Float32Array, extra: { cached?: number } = {}): StepResult | undefined {
    try {
      const s = a.gen.step(logits);
      this.events.push(tokenEvent(a, s, extra));
      return s;
    } catch (e) {
      // e.g. NaN logits from a broken checkpoint: this sequence fails, the batch goes on.
      this.events.push(failedEvent(a, e));
      return undefined;
    }
  }

  /**
   * A speculative round (speculative.ts) for the one running sequence: its draft proposes tokens,
   * one fp32 call checks them, and it samples from that call's rows in order while its tokens are
   * the proposals. The tokens are those decode steps would give; the round's are posted together.
   */
  private async speculate(a: Active, k: number): Promise<void> {
    let round: Round;
    try {
      round = await draftAndCheck(this.model, a.gen, a.slot, a.pos, k);
    } catch (e) {
      return this.callFailed([a], e);
    }
    const draft = { proposed: 0, accepted: 0 };
    try {
      for (const s of accepted(a.gen, round, draft)) {
        a.pos++; // the row's input is in the cache as plain decoding would have put it
        this.events.push(tokenEvent(a, s));
        if (s.finishReason) this.retire([a]);
      }
    } catch (e) {
      this.events.push(failedEvent(a, e));
      this.retire([a]);
    }
    this.flush(1, draft);
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

  /** Posts this step's events with the queue and batch sizes, and a speculative round's counts (skipped when nothing changed). */
  private flush(batch = 0, draft?: DraftStats): void {
    const counts = `${this.running.length}/${this.waiting.length}`;
    if (!this.events.length && !batch && counts === this.lastCounts) return;
    this.lastCounts = counts;
    this.post({ type: 'step', events: this.events, running: this.running.length, waiting: this.waiting.length, batch, ...(this.prefix && { prefix: this.prefix.stats() }), ...(draft && { draft }) });
    this.events = [];
  }
}

const tokenEvent = (a: Active, s: StepResult, extra: { cached?: number } = {}): SeqEvent => ({ type: 'token', id: a.spec.id, token: s.token, text: s.text, logprob: s.logprob, top: s.topLogprobs, finish: s.finishReason, ...extra });

/** A sequence's end after its sampler threw (a constraint's error is the client's doing). */
const failedEvent = (a: Active, e: unknown): SeqEvent => ({ type: 'end', id: a.spec.id, reason: 'error', message: (e as Error).message, ...(e instanceof ConstraintError && { invalidRequest: true as const }) });

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
