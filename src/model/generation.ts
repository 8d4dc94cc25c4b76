// One generation request's state: sampler, detokenizer, stop strings and counts. Whoever runs the
// model (the CLI loop below, or the server's batching scheduler) feeds it the logits for the next
// position and gets back the chosen token and the text that may be shown now.
import type { GPTConfig } from './config.js';
import { applyMask, compileConstraint, ConstraintState } from './constraint.js';
import { checkContextLength } from './errors.js';
import { Sampler, type SamplingOptions } from './sampler.js';
import type { TokenLogprob } from './sampling-kernels.js';
import type { ModelSession } from './session.js';
import { accepted, draftAndCheck, DraftPolicy } from './speculative.js';
import { finish, StopChecker, type FinishReason } from './stop.js';
import { EOT, StreamingDetokenizer } from './tokenizer.js';

export interface StepResult {
  token: number;
  /** Text completed by this token, safe to emit (stop strings held back and cut). */
  text: string;
  logprob?: number; // when logprobs were requested
  topLogprobs?: TokenLogprob[];
  /** Set on the last step. */
  finishReason: FinishReason | null;
}

export class Generation {
  readonly sampler: Sampler;
  readonly tokens: number[] = [];
  finishReason: FinishReason | null = null;
  private readonly detok = new StreamingDetokenizer();
  private readonly stops: StopChecker;
  private readonly constraint: ConstraintState | undefined;
  /** With a drafting model: how many tokens this sequence's next speculative round proposes. */
  readonly drafts = new DraftPolicy();
  /** The masked logits under a constraint, one buffer reused every step. */
  private masked: Float32Array | undefined;

  constructor(
    readonly promptTokens: number[],
    readonly options: SamplingOptions,
    config: GPTConfig,
  ) {
    if (promptTokens.length === 0) throw new Error('the prompt must contain at least one token');
    checkContextLength(promptTokens.length, options.maxTokens, config.contextLength); // before any work
    this.sampler = new Sampler(options, promptTokens, config.vocabSize);
    this.stops = new StopChecker(options.stop ?? []);
    // Compiled once per thread and spec (constraint.ts caches); throws ConstraintError.
    this.constraint = options.constraint ? new ConstraintState(compileConstraint(options.constraint)) : undefined;
  }

  get done(): boolean {
    return this.finishReason !== null;
  }

  /**
   * `logits` with every token the constraint rules out at -Infinity. With ignoreEos <|endoftext|>
   * is ruled out too: generation goes past it, so as text it would break the structure.
   */
  private mask(logits: Float32Array, c: ConstraintState): Float32Array {
    const masked = applyMask(logits, c.allowed(), (this.masked ??= new Float32Array(logits.length)));
    if (this.options.ignoreEos) masked[EOT] = -Infinity;
    return masked;
  }

  /** Samples the next token from `logits` (raw, one position) and advances the state. */
  step(logits: Float32Array): StepResult {
    if (this.done) throw new Error('generation already finished');
    const c = this.constraint;
    const s = c ? this.sampler.sample(this.mask(logits, c), logits) : this.sampler.sample(logits);
    c?.advance(s.token);
    this.tokens.push(s.token);
    const eos = s.token === EOT && !this.options.ignoreEos;
    const stop = this.stops.push(eos ? '' : this.detok.push(s.token)); // <|endoftext|> is not shown
    this.finishReason = finish({
      token: s.token,
      generated: this.tokens.length,
      maxTokens: this.options.maxTokens,
      // A constrained output that is complete and cannot go on ends here, without waiting for <|endoftext|>.
      stopped: stop.stopped || (c?.complete ?? false),
      ignoreEos: this.options.ignoreEos,
    });
    let text = stop.emit;
    if (this.finishReason && !stop.stopped) text += this.stops.push(this.detok.flush()).emit + this.stops.flush();
    return { token: s.token, text, logprob: s.logprob, topLogprobs: s.topLogprobs, finishReason: this.finishReason };
  }
}

/**
 * Generates with a KV cache in `slot`: one prefill, then one decode step per token, or, for a
 * model with a draft, speculative rounds (speculative.ts) that give the same tokens.
 * Yields each step as soon as it is sampled (streaming).
 */
export async function* generate(model: ModelSession, promptTokens: number[], options: SamplingOptions, slot = 0): AsyncGenerator<StepResult> {
  const gen = new Generation(promptTokens, options, model.config);
  if (options.maxTokens === 0) return;
  const [logits] = await model.forward([{ slot, tokens: promptTokens, start: 0, logits: 'last' }]);
  let step = gen.step(logits!);
  yield step;
  let pos = promptTokens.length; // where the last token goes: the cache holds the positions before it
  while (!step.finishReason) {
    const k = gen.drafts.next(model.draftTokens, model.draftCost, gen);
    if (k > 0) {
      for (step of accepted(gen, await draftAndCheck(model, gen, slot, pos, k))) {
        yield step;
        pos++;
      }
    } else {
      const [next] = await model.forward([{ slot, tokens: [step.token], start: pos++, logits: 'last' }]);
      step = gen.step(next!);
      yield step;
    }
  }
}
