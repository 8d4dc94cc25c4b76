// Speculative decoding (Leviathan et al., 2023) with the model itself as the draft, on int8 or
// int4 weights. A batch-1 decode step reads every weight once whether it checks one token or
// five, so: the draft proposes k tokens, one cheap call each; one fp32 call over the last token and
// the proposals gives the logits after each; the sequence samples from them in order, exactly as
// it would have step by step, and stops after the first token that is not the proposal (that
// token is still its own, so a round gives 1 to k+1 tokens). Tokens, logprobs and the cache's
// K/V are those of plain fp32 decoding; only the number of fp32 calls changes.
// Proposals are drawn by a fork of the sequence's sampler (its RNG state and counts), so a
// proposal is the token the sequence draws whenever the draft's distribution and fp32's put the
// same token at its random number: nearly always, at any temperature (greedy proposals are rarely
// what a temperature-1 draw picks). Under a constraint the draft's logits are not masked, so fewer
// are taken, and DraftPolicy drafts less.
import type { Generation, StepResult } from './generation.js';
import type { ForwardRow } from './session.js';

/** What a round needs of a ModelSession: fp32 calls, and draft calls on the quantized weights. */
export interface DraftingModel {
  forward(rows: ForwardRow[], opts?: { draft?: boolean }): Promise<Float32Array[]>;
}

/** One round's or many rounds' proposals, and how many of them the sequence sampled too. */
export interface DraftStats {
  proposed: number;
  accepted: number;
}

export interface Round {
  /** The draft's k tokens (the sequence's sampler's draws from the draft's logits). */
  proposals: number[];
  /** fp32 logits after the round's first token and after each proposal: k + 1 rows. */
  logits: Float32Array[];
}

/** Weight a policy's counts keep per round (the rest is the round's): they follow the text. */
const FADE = 0.9;
/** While drafting does not pay, every PROBE-th step is a one-proposal round, to see whether it does again. */
const PROBE = 8;

/**
 * How many tokens a sequence drafts next. A round of k proposals costs k draft calls and a check
 * call, and gives 1 + α + … + α^k tokens on average (α: the share of proposals the sequence takes);
 * a plain step gives one token per check-sized call. `cost` is a draft call's over a check call's
 * (ModelSession.draftCost: the bytes of weights each reads). The policy keeps α, fading, and picks
 * the k that gives the most tokens per unit of time; 0, a plain step, where no k beats plain
 * decoding (a text the draft does not guess, such as a high-temperature draw from a flat distribution).
 */
export class DraftPolicy {
  private taken = 3; // proposals taken, and rounds that ended on a refused one, fading; the prior: α = 3/4
  private refused = 1;
  private plainSteps = 0;

  /** Proposals for `gen`'s next round, at most `max` and none past its max_tokens; 0: a plain step. */
  next(max: number, cost: number, gen: Generation): number {
    const limit = draftLength(max, gen);
    const alpha = this.taken / (this.taken + this.refused);
    let [best, bestRate] = [0, 1];
    for (let k = 1, tokens = 1, p = 1; k <= limit; k++) {
      p *= alpha;
      tokens += p;
      const rate = tokens / (1 + k * cost);
      if (rate > bestRate) [best, bestRate] = [k, rate];
    }
    if (best > 0 || limit === 0) return best;
    return ++this.plainSteps % PROBE === 0 ? 1 : 0;
  }

  /** A round's outcome: how many proposals the sequence took, and whether it refused one. */
  observe(taken: number, refused: boolean): void {
    this.taken = FADE * this.taken + taken;
    this.refused = FADE * this.refused + (refused ? 1 : 0);
  }
}

/**
 * Proposals a round may draft for `gen`: up to `k`, and none past its max_tokens (the round's last
 * row gives a token of its own). A Generation's prompt and max_tokens fit the context, so this
 * keeps the round inside it too.
 */
function draftLength(k: number, gen: Generation): number {
  return Math.max(0, Math.min(k, gen.options.maxTokens - gen.tokens.length - 1));
}

/** Drafts k tokens after `gen`'s last one (at `start` in `slot`, not yet in the cache) and checks them in one fp32 call. */
export async function draftAndCheck(model: DraftingModel, gen: Generation, slot: number, start: number, k: number): Promise<Round> {
  const token = gen.tokens.at(-1)!;
  const sampler = gen.sampler.fork();
  const proposals: number[] = [];
  let last = token;
  for (let j = 0; j < k; j++) {
    const [logits] = await model.forward([{ slot, tokens: [last], start: start + j, logits: 'last' }], { draft: true });
    proposals.push((last = sampler.sample(logits!).token));
  }
  const [all] = await model.forward([{ slot, tokens: [token, ...proposals], start, logits: 'all' }]);
  const V = all!.length / (k + 1);
  return { proposals, logits: Array.from({ length: k + 1 }, (_, i) => all!.subarray(i * V, (i + 1) * V)) };
}

/**
 * The sequence's steps from a checked round, in order, up to and including the first token that
 * differs from its proposal (or the last row, or a finish). After n steps the cache holds the
 * round's first n positions as plain decoding would; the rest are overwritten later. The round's
 * proposals, and those taken, go to the sequence's DraftPolicy and are added to `stats` if given.
 */
export function* accepted(gen: Generation, round: Round, stats?: DraftStats): Generator<StepResult> {
  let [taken, refused] = [0, false];
  try {
    for (let i = 0; i < round.logits.length; i++) {
      const step = gen.step(round.logits[i]!);
      const same = step.token === round.proposals[i]; // false at the last row, which has no proposal
      if (same) taken++;
      else refused = i < round.proposals.length;
      yield step;
      if (step.finishReason || !same) return;
    }
  } finally {
    gen.drafts.observe(taken, refused);
    if (stats) [stats.proposed, stats.accepted] = [stats.proposed + round.proposals.length, stats.accepted + taken];
  }
}
