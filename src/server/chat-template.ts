// Chat messages → one prompt string, for models whose config names a chat template. Only 'alpaca'
// exists: the book's chapter-7 format, which is single-turn:
//
//   Below is an instruction that describes a task. Write a response that appropriately completes the request.
//
//   ### Instruction:
//   {instruction}
//
//   ### Input:          ← only when non-empty
//   {input}
//
//   ### Response:
//
// Messages are mapped exactly as finetuning maps chat records (src/datasets/chat.ts), so the
// server builds the prompt the model was trained on:
//   instruction = the system (and developer) messages, then the LAST user message, joined by a blank line;
//   input       = every earlier user/assistant turn, in order, as "User: …\n\nAssistant: …" (empty
//                 for a single-turn chat, so the "### Input:" section is left out).
// The conversation must end with a user message: that is the turn the model answers.
// Generation stops at <|endoftext|> and at "\n\n### " (the model starting a new section).
import { formatChatPrompt } from '../datasets/instruction.js';
import type { ChatMessage } from '../datasets/records.js';
import { badRequest } from './errors.js';

export const TEMPLATE_STOPS: Record<string, string[]> = { alpaca: ['\n\n### '] };

export interface TemplateMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

export function applyChatTemplate(template: string | undefined, modelId: string, messages: TemplateMessage[]): { prompt: string; stop: string[] } {
  if (!template) {
    throw badRequest(`The model '${modelId}' is a base model without a chat template: use /v1/completions with a text prompt.`, 'model', 'model_not_chat');
  }
  if (template !== 'alpaca') throw badRequest(`The model '${modelId}' has chat template '${template}', which this server does not know.`, 'model');
  const last = messages.at(-1);
  if (last?.role !== 'user') throw badRequest('The last message must have role \'user\': it is the instruction the model responds to.', 'messages');
  // 'developer' is OpenAI's newer name for 'system'.
  const history: ChatMessage[] = messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: m.content }));
  return { prompt: formatChatPrompt(history), stop: TEMPLATE_STOPS[template]! };
}
