// Request errors that the model layer can detect before (or while) generating. They carry
// structured fields so a server can map them to an OpenAI-style 400 without parsing messages.

/** prompt + max_tokens does not fit in the model's context window. */
export class ContextLengthError extends Error {
  override readonly name = 'ContextLengthError';
  readonly code = 'context_length_exceeded'; // OpenAI's error code for this case
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

/** A sampling/generation option outside its allowed range. `param` uses the API's snake_case name. */
export class InvalidParameterError extends Error {
  override readonly name = 'InvalidParameterError';
  readonly code = 'invalid_parameter';
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(`${param}: ${message}`);
  }
}

/** Throws ContextLengthError unless the prompt and the whole completion fit in `contextLength`. */
export function checkContextLength(promptTokens: number, maxTokens: number, contextLength: number): void {
  for (const [name, v] of [['promptTokens', promptTokens], ['maxTokens', maxTokens], ['contextLength', contextLength]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`checkContextLength: ${name} must be a non-negative integer, got ${v}`);
  }
  if (promptTokens + maxTokens > contextLength) throw new ContextLengthError(contextLength, promptTokens, maxTokens);
}
