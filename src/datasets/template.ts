// The book's chapter 7 prompt template (Alpaca style), reproduced character for character so a
// model finetuned here sees exactly the text the book's model saw:
//
//   Below is an instruction that describes a task. Write a response that appropriately completes the request.
//
//   ### Instruction:
//   {instruction}
//
//   ### Input:            ← only when input is non-empty
//   {input}
//
//   ### Response:
//   {output}
import type { AlpacaRecord } from './records.js';

export const PREAMBLE =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.';
export const RESPONSE_HEADER = '\n\n### Response:\n';

/** A prompt (everything the model is given) and the response it should learn to produce. */
export interface InstructionExample {
  prompt: string;
  response: string;
}

/** The book's `format_input`: preamble + instruction (+ input when non-empty), no response part. */
export function formatInput(entry: { instruction: string; input?: string }): string {
  const inputText = entry.input ? `\n\n### Input:\n${entry.input}` : '';
  return `${PREAMBLE}\n\n### Instruction:\n${entry.instruction}${inputText}`;
}

/** prompt = format_input + "\n\n### Response:\n" (what inference sends); response = output. */
export function alpacaExample(entry: AlpacaRecord): InstructionExample {
  return { prompt: formatInput(entry) + RESPONSE_HEADER, response: entry.output };
}
