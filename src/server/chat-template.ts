// Chat messages → prompt tokens, by the model's own chat template (src/model/chat-template.ts),
// with the template's problems as 400s that name the field.
import { ChatTemplateError, type ChatMessage } from '../model/chat-template.js';
import { minTokens } from '../model/tokenizer.js';
import { tooLongToEncode } from './admission.js';
import { badRequest } from './errors.js';
import type { ModelWorker } from './model-worker.js';

export function chatPrompt(model: Pick<ModelWorker, 'id' | 'chat' | 'config'>, messages: ChatMessage[]): { tokens: number[]; stop: string[] } {
  if (!model.chat) {
    throw badRequest(`The model '${model.id}' is a base model without a chat template: use /v1/completions with a text prompt.`, 'model', 'model_not_chat');
  }
  if (messages.at(-1)?.role !== 'user') throw badRequest("The last message must have role 'user': it is the turn the model answers.", 'messages');
  try {
    // Measured on the text first: encoding a huge prompt is the slow part.
    tooLongToEncode(minTokens(model.chat.render(messages, { addGenerationPrompt: true })), model.config.contextLength, 'messages');
    return { tokens: model.chat.encode(messages, { addGenerationPrompt: true }), stop: model.chat.stop };
  } catch (e) {
    if (e instanceof ChatTemplateError) throw badRequest(`The chat template of '${model.id}' refused the messages: ${e.message}`, 'messages');
    throw e;
  }
}
