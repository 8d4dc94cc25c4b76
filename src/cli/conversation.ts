// One chat conversation against a loaded model, for `scratchgpt chat`: the messages so far, the
// prompt the model's chat template makes of them, and one streamed answer per user message.
// The whole conversation is prefilled again each turn (a few hundred tokens at most for GPT-2
// sizes), so the KV cache holds nothing between turns and /reset is just forgetting messages.
import type { ChatMessage, ChatTemplate } from '../model/chat-template.js';
import { generate } from '../model/generation.js';
import type { SamplingOptions } from '../model/sampler.js';
import type { ModelSession } from '../model/session.js';

export interface Turn {
  /** 'interrupted': the signal stopped it; what was written so far stays in the conversation. */
  finishReason: 'stop' | 'length' | 'interrupted';
  promptTokens: number;
  answerTokens: number;
  /** Earlier user/assistant exchanges forgotten so that this prompt fits the context window. */
  forgotten: number;
  seconds: number;
}

/** Sampling for every answer; without maxTokens an answer may run to the end of the context. */
export type AnswerOptions = Omit<SamplingOptions, 'maxTokens'> & { maxTokens?: number };

export class Conversation {
  private messages: ChatMessage[] = []; // user, assistant, user, assistant, … (no system message)

  constructor(
    private readonly model: ModelSession,
    private readonly template: ChatTemplate,
    private readonly options: AnswerOptions,
    private readonly system?: string,
  ) {}

  /** User/assistant exchanges kept so far. */
  get exchanges(): number {
    return this.messages.length / 2;
  }

  /** Forgets every exchange; the system message stays. */
  reset(): void {
    this.messages = [];
  }

  /**
   * Answers `text`, handing each piece of the answer to `onText` as soon as it is sampled.
   * The oldest exchanges are dropped while the prompt leaves less room than the answer needs
   * (maxTokens, or without it a quarter of the context, at most 256 tokens); a message that does
   * not fit on its own is refused (thrown) and not kept.
   */
  async say(text: string, { signal, onText }: { signal?: AbortSignal; onText: (piece: string) => void }): Promise<Turn> {
    const started = performance.now();
    const { contextLength } = this.model.config;
    const lead: ChatMessage[] = this.system ? [{ role: 'system', content: this.system }] : [];
    let history: ChatMessage[] = [...this.messages, { role: 'user', content: text }];
    let forgotten = 0;
    let prompt = this.template.encode([...lead, ...history], { addGenerationPrompt: true });
    const room = this.options.maxTokens ?? Math.min(256, Math.floor(contextLength / 4));
    while (prompt.length + room > contextLength && history.length > 1) {
      history = history.slice(2); // one user message and its answer, keeping the alternation
      forgotten++;
      prompt = this.template.encode([...lead, ...history], { addGenerationPrompt: true });
    }
    if (prompt.length >= contextLength) {
      throw new Error(`this message makes a ${prompt.length}-token prompt; the model's context holds ${contextLength} tokens in all`);
    }
    const maxTokens = Math.min(this.options.maxTokens ?? Infinity, contextLength - prompt.length);

    let answer = '';
    let answerTokens = 0;
    let finishReason: Turn['finishReason'] = 'length';
    for await (const step of generate(this.model, prompt, { ...this.options, maxTokens, stop: [...(this.options.stop ?? []), ...this.template.stop] })) {
      // Checked between tokens: a forward pass already running is let finish, then dropped.
      if (signal?.aborted) {
        finishReason = 'interrupted';
        break;
      }
      answerTokens++;
      answer += step.text;
      if (step.text) onText(step.text);
      if (step.finishReason) finishReason = step.finishReason;
    }
    if (signal?.aborted) finishReason = 'interrupted';
    // An answer stopped before its first word leaves no trace, so the next message is not read
    // as a follow-up to an empty reply.
    this.messages = finishReason === 'interrupted' && !answer ? history.slice(0, -1) : [...history, { role: 'assistant', content: answer }];
    return { finishReason, promptTokens: prompt.length, answerTokens, forgotten, seconds: (performance.now() - started) / 1000 };
  }
}
