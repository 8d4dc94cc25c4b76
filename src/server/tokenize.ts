// POST /tokenize and /detokenize, in vLLM's shapes:
//   {model?, prompt} or {model?, messages}  → {tokens, count, max_model_len}
//   {model?, tokens}                          → {prompt}
// `model` may be left out: the first served model is used (all share GPT-2's tokenizer).
import { Hono } from 'hono';
import { z } from 'zod';
import { decode, encode, VOCAB_SIZE } from '../model/tokenizer.js';
import { chatRequest, templateMessages } from './chat.js';
import { chatPrompt } from './chat-template.js';
import type { AppEnv } from './env.js';
import { badRequest } from './errors.js';
import { doc } from './openapi.js';
import { json } from './validate.js';

const tokenizeRequest = z.strictObject({
  model: z.string().nullish(),
  prompt: z.string().optional(),
  messages: chatRequest.shape.messages.optional(), // rendered with the model's chat template
  add_special_tokens: z.boolean().nullish(), // GPT-2 adds none either way
});

const detokenizeRequest = z.strictObject({
  model: z.string().nullish(),
  tokens: z.array(z.number().int().min(0).max(VOCAB_SIZE - 1)),
});

export const tokenize = new Hono<AppEnv>()
  .post('/tokenize', doc('Tokenizer', 'Tokenize a prompt or chat messages'), json(tokenizeRequest), (c) => {
    const b = c.req.valid('json');
    const model = b.model ? c.var.models.find(b.model) : c.var.models.first;
    if ((b.prompt === undefined) === (b.messages === undefined)) throw badRequest("Give exactly one of 'prompt' and 'messages'.", 'prompt');
    let tokens: number[];
    if (b.prompt !== undefined) tokens = encode(b.prompt);
    else {
      tokens = chatPrompt(c.var.models.get(model.id), templateMessages(b.messages!)).tokens;
    }
    return c.json({ tokens, count: tokens.length, max_model_len: model.config.contextLength });
  })
  .post('/detokenize', doc('Tokenizer', 'Turn token ids back into text'), json(detokenizeRequest), (c) => {
    const b = c.req.valid('json');
    if (b.model) c.var.models.find(b.model); // 404 for an unknown model, as elsewhere
    return c.json({ prompt: decode(b.tokens) });
  });
