// POST /v1/embeddings: OpenAI's embeddings from a served language model.
//   {model, input: string | string[] | token ids | token-id arrays, encoding_format?, dimensions?, pooling?}
//   → {object: "list", data: [{object: "embedding", index, embedding}], model, usage}
// A vector is the model's final hidden states (after ln_f) pooled over the input's tokens
// (src/model/embedding.ts): 'mean' by default, 'last' on request (an extra field, listed per model
// at /v1/models as embedding_pooling). The inputs run on the model's own thread between its
// generation steps, batched with every other embedding request waiting there (embedding-queue.ts).
import { Hono } from 'hono';
import { z } from 'zod';
import { POOLINGS, type EmbedRow } from '../model/embedding.js';
import { encode, minTokens } from '../model/tokenizer.js';
import { checkTokenIds, fitContext, inputList, tooLongToEncode } from './admission.js';
import type { AppEnv } from './env.js';
import { apiError, badRequest, requireReady, serverOverloaded } from './errors.js';
import { EmbedUnavailable } from './embed-requests.js';
import { OverloadedError } from './model-worker.js';
import { doc } from './openapi.js';
import { json } from './validate.js';

/** OpenAI's limit on inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;

const text = z.string().min(1);
const tokenIds = z.array(z.number().int().min(0)).min(1);

export const embeddingRequest = z.strictObject({
  model: z.string(),
  input: z.union([text, z.array(text).min(1).max(MAX_EMBEDDING_INPUTS), tokenIds, z.array(tokenIds).min(1).max(MAX_EMBEDDING_INPUTS)], {
    error: `must be a non-empty string, an array of 1 to ${MAX_EMBEDDING_INPUTS} non-empty strings, an array of token ids, or an array of 1 to ${MAX_EMBEDDING_INPUTS} non-empty token-id arrays`,
  }),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  /** Only the model's own width: GPT-2's vectors are not trained to be shortened (as text-embedding-3's are). */
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().nullish(),
  /** Extra field: how token states become one vector (default 'mean'). */
  pooling: z.enum(POOLINGS).nullish(),
});

/** One input's tokens, or the 400 for a text or id list that cannot fit the context, or an id outside the vocabulary. */
function tokenizeInput(x: string | number[], i: number, count: number, vocabSize: number, contextLength: number): number[] {
  if (typeof x === 'string') tooLongToEncode(minTokens(x), contextLength, 'input');
  const tokens = typeof x === 'string' ? encode(x) : x;
  checkTokenIds(tokens, vocabSize, 'input', i, count);
  fitContext(tokens.length, 0, contextLength, 'input');
  return tokens;
}

/** A vector as OpenAI's base64: its float32 values' little-endian bytes. */
function base64(v: Float32Array): string {
  const bytes = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString('base64');
}

export const embeddings = new Hono<AppEnv>().post('/embeddings', doc('Embeddings', "Embed texts or token ids with a language model's final hidden states"), json(embeddingRequest), async (c) => {
  const b = c.req.valid('json');
  const model = c.var.models.find(b.model);
  if (model.kind === 'classifier') {
    throw badRequest(`The model '${model.id}' is a classifier: embeddings come from language models. Use POST /v1/classifications with it.`, 'model', 'model_not_generative');
  }
  requireReady(model);
  const { nEmbd, vocabSize, contextLength } = model.config;
  if (b.dimensions != null && b.dimensions !== nEmbd) {
    throw badRequest(`This model's embeddings have ${nEmbd} dimensions; 'dimensions' ${b.dimensions} is not supported.`, 'dimensions', 'invalid_value');
  }
  const pooling = b.pooling ?? 'mean';
  const list = inputList(b.input);
  const rows: EmbedRow[] = list.map((x, i) => ({ tokens: tokenizeInput(x, i, list.length, vocabSize, contextLength), pooling }));
  let data: Float32Array;
  try {
    data = await model.embed(rows);
  } catch (e) {
    if (e instanceof OverloadedError) throw serverOverloaded();
    if (e instanceof EmbedUnavailable) throw apiError(503, e.message, { code: e.code });
    throw apiError(500, `Embedding failed: ${(e as Error).message}`);
  }
  const vector = (i: number) => data.subarray(i * nEmbd, (i + 1) * nEmbd);
  const promptTokens = rows.reduce((n, r) => n + r.tokens.length, 0);
  c.var.metrics.embeddingTokens.inc({ model: model.id }, promptTokens);
  return c.json({
    object: 'list' as const,
    data: rows.map((_, index) => ({ object: 'embedding' as const, index, embedding: b.encoding_format === 'base64' ? base64(vector(index)) : Array.from(vector(index)) })),
    model: model.id,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
});
