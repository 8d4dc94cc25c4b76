// Stop strings and finish_reason, as Generation.step (generation.ts) uses them.
//
// A stop string can span several tokens ("\n\nQ:" may arrive as "\n", "\nQ", ":"), so text that
// could be the beginning of a stop string is held back until we know. The stop string itself is
// never emitted (OpenAI/vLLM default).

import { EOT } from './tokenizer.js';

export interface StopResult {
  /** Text that is safe to show the user now. */
  emit: string;
  /** A stop string was found; generation should end. Everything after it is discarded. */
  stopped: boolean;
}

export class StopChecker {
  private readonly stops: string[];
  private held = ''; // a suffix of the output that is a proper prefix of some stop string
  private done = false;

  /** Empty strings are ignored: they would match before any output. */
  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Feed the next piece of text (e.g. from StreamingDetokenizer.push). */
  push(piece: string): StopResult {
    if (this.done) return { emit: '', stopped: true };
    const text = this.held + piece;
    const at = firstStopIndex(text, this.stops);
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { emit: text.slice(0, at), stopped: true };
    }
    const keep = longestPartialStop(text, this.stops);
    this.held = text.slice(text.length - keep);
    return { emit: text.slice(0, text.length - keep), stopped: false };
  }

  /** End of generation without a stop: the held-back text was not a stop after all. */
  flush(): string {
    const rest = this.done ? '' : this.held;
    this.held = '';
    return rest;
  }
}

/** Index of the earliest occurrence of any stop string in `text`, or -1. */
export function firstStopIndex(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
export function longestPartialStop(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

export type FinishReason = 'stop' | 'length';

export interface FinishInput {
  /** The token just generated. */
  token: number;
  /** Tokens generated so far, including `token`. */
  generated: number;
  maxTokens: number;
  /** The StopChecker reported a stop string. */
  stopped?: boolean;
  /** vLLM's ignore_eos: keep generating past <|endoftext|>. */
  ignoreEos?: boolean;
}

/**
 * finish_reason after a token, or null to keep going. 'stop' wins over 'length' when both happen
 * on the same token (as in vLLM), since the model did finish on its own.
 */
export function finish({ token, generated, maxTokens, stopped = false, ignoreEos = false }: FinishInput): FinishReason | null {
  if (stopped || (token === EOT && !ignoreEos)) return 'stop';
  if (generated >= maxTokens) return 'length';
  return null;
}
