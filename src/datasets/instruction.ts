// Any instruction-style record (Alpaca, prompt/completion, chat) → prompt + response text in the
// book's template. Prompt/completion maps directly: instruction = prompt, no input,
// output = completion (both verbatim; no stripping of the leading space OpenAI's legacy format
// recommended for completions, because the template already ends the prompt with a newline).
import { chatHistoryToInstruction, chatToAlpaca } from './chat.js';
import type { AlpacaRecord, ChatMessage, InstructionRecord } from './records.js';
import { alpacaExample, formatInput, RESPONSE_HEADER, type InstructionExample } from './template.js';

/** The record as Alpaca records; chat records give one per trained assistant turn. */
export function toAlpaca(record: InstructionRecord): AlpacaRecord[] {
  if ('messages' in record) return chatToAlpaca(record);
  if ('prompt' in record) return [{ instruction: record.prompt, input: '', output: record.completion }];
  return [record];
}

/** Every training example the record yields (one, except multi-turn chats with several trained turns). */
export function toInstructionExamples(record: InstructionRecord): InstructionExample[] {
  return toAlpaca(record).map(alpacaExample);
}

/** The record's main example: for chat, the one ending at the LAST trained assistant turn. */
export function toInstructionExample(record: InstructionRecord): InstructionExample {
  const all = toInstructionExamples(record);
  const last = all[all.length - 1];
  if (last === undefined) throw new Error('chat record has no assistant message to train on'); // parseDataset rejects these
  return last;
}

/** The text sent to the model at inference: the template up to and including "### Response:\n". */
export function formatPrompt(record: InstructionRecord): string {
  return toInstructionExample(record).prompt;
}

/** Inference prompt for a chat request (messages so far, normally ending with the user's turn). */
export function formatChatPrompt(messages: readonly ChatMessage[]): string {
  return formatInput(chatHistoryToInstruction(messages)) + RESPONSE_HEADER;
}
