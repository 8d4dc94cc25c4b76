// The model layer's refusals, with the numbers that explain them as fields so that a caller (the
// server's admission step, the CLI) can report them without parsing messages.

/** prompt + max_tokens does not fit in the model's context window. */
export class ContextLengthError extends Error {
  override readonly name = 'ContextLengthError';
  readonly requestedTokens: number;

  constructor(
    readonly contextLength: number,
    readonly promptTokens: number,
    readonly maxTokens: number,
  ) {
    const requested = promptTokens + maxTokens;
    super(
      `This model's maximum context length is ${contextLength} tokens. However, you requested ` +
        `${requested} tokens (${promptTokens} in the prompt, ${maxTokens} for the completion).`,
    );
    this.requestedTokens = requested;
  }
}

/** A sampling option outside what the sampler can run, named as in generation_config.json (snake_case). */
export class SamplingOptionError extends Error {
  override readonly name = 'SamplingOptionError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`${option}: ${message}`);
  }
}

/** Throws ContextLengthError unless the prompt and the whole completion fit in `contextLength`. */
export function checkContextLength(promptTokens: number, maxTokens: number, contextLength: number): void {
  for (const [name, v] of [['promptTokens', promptTokens], ['maxTokens', maxTokens], ['contextLength', contextLength]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`checkContextLength: ${name} must be a non-negative integer, got ${v}`);
  }
  if (promptTokens + maxTokens > contextLength) throw new ContextLengthError(contextLength, promptTokens, maxTokens);
}
