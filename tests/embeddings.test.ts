// POST /v1/embeddings end to end on a tiny random GPT-2 with the real vocabulary: vectors against
// the independent float64 reference (mean and last pooling, texts, token ids, batches of both),
// base64 against float, the official `openai` client and LangChain's OpenAIEmbeddings, the
// refusals, and embeddings served while a long generation streams on the same model.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OpenAIEmbeddings } from '@langchain/openai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { planRuns, type Pooling } from '../src/model/embedding.js';
import type { Params } from '../src/model/params.js';
import { encode } from '../src/model/tokenizer.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { randomParams, referenceHidden } from './reference/gpt-reference.js';

const cfg: GPTConfig = { vocabSize: 50257, contextLength: 128, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const clfCfg: GPTConfig = { ...cfg, labels: ['no', 'yes'] };
const params: Params = randomParams(cfg, 11, 0.2);

let tmp: string;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'embeddings-test-'));
  saveCheckpoint(path.join(tmp, 'lm'), cfg, params);
  saveCheckpoint(path.join(tmp, 'clf'), clfCfg, randomParams(clfCfg, 12, 0.2));
  // prefillTokens 64: embedding runs are split at 64 padded tokens, so batches below take several runs.
  server = await startServer({ modelDirs: [path.join(tmp, 'lm'), path.join(tmp, 'clf')], port: 0, slots: 4, queue: 8, threads: 1, prefillTokens: 64 });
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await server?.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The float64 reference: final hidden states (after ln_f) pooled over the tokens. */
function reference(tokens: number[], pooling: Pooling = 'mean'): Float64Array {
  const h = referenceHidden(cfg, params, tokens);
  if (pooling === 'last') return h.at(-1)!;
  const out = new Float64Array(cfg.nEmbd);
  for (const x of h) x.forEach((v, c) => (out[c]! += v / h.length));
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThan(1e-4);
}

interface EmbeddingsBody {
  object: string;
  model: string;
  data: { object: string; index: number; embedding: number[] | string }[];
  usage: { prompt_tokens: number; total_tokens: number };
}

async function post(body: unknown): Promise<{ status: number; body: EmbeddingsBody & { error: { message: string; param: string | null; code: string | null } } }> {
  const res = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const decodeBase64 = (s: string) => {
  const bytes = Buffer.from(s, 'base64');
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
};

const texts = ['The quick brown fox', 'jumps over the lazy dog.', 'A', 'Embeddings are the final hidden states, pooled over every token of the input text here.'];
const ids = [[464, 2068, 7586], [50256], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42]];

describe('planRuns', () => {
  it('longest first, at most maxTokens rows × padded length per run, a longer row alone', () => {
    expect(planRuns([3, 100, 5, 50, 5], 128)).toEqual([[1], [3, 2], [4, 0]]);
    expect(planRuns([200, 1], 64)).toEqual([[0], [1]]);
    expect(planRuns(Array.from({ length: 10 }, () => 8), 32).map((r) => r.length)).toEqual([4, 4, 2]);
    expect(planRuns([], 64)).toEqual([]);
  });
});

describe('/v1/embeddings against the float64 reference', () => {
  for (const pooling of ['mean', 'last'] as const) {
    it(`${pooling} pooling: a string, strings, token ids and token-id arrays`, async () => {
      const one = await post({ model: 'lm', input: texts[0], pooling, encoding_format: 'float' });
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ object: 'list', model: 'lm', data: [{ object: 'embedding', index: 0 }] });
      expectClose(one.body.data[0]!.embedding as number[], reference(encode(texts[0]!), pooling));
      expect(one.body.usage).toEqual({ prompt_tokens: encode(texts[0]!).length, total_tokens: encode(texts[0]!).length });

      const many = await post({ model: 'lm', input: texts, pooling });
      expect(many.status).toBe(200);
      expect(many.body.data.map((d) => d.index)).toEqual([0, 1, 2, 3]);
      many.body.data.forEach((d, i) => expectClose(d.embedding as number[], reference(encode(texts[i]!), pooling)));
      const tokens = texts.reduce((n, t) => n + encode(t).length, 0);
      expect(many.body.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });

      const single = await post({ model: 'lm', input: ids[0], pooling });
      expectClose(single.body.data[0]!.embedding as number[], reference(ids[0]!, pooling));

      const batch = await post({ model: 'lm', input: ids, pooling });
      expect(batch.body.data).toHaveLength(3);
      batch.body.data.forEach((d, i) => expectClose(d.embedding as number[], reference(ids[i]!, pooling)));
    });
  }

  it('mean is the default; a whole context of tokens fits', async () => {
    const full = Array.from({ length: cfg.contextLength }, (_, i) => (i * 389) % 50257);
    const r = await post({ model: 'lm', input: [full, [7, 8, 9]] });
    expect(r.status).toBe(200);
    expectClose(r.body.data[0]!.embedding as number[], reference(full));
    expectClose(r.body.data[1]!.embedding as number[], reference([7, 8, 9]));
  });

  it('concurrent requests of both poolings, batched together, each get their own vectors', async () => {
    const asks = texts.flatMap((t) => (['mean', 'last'] as const).map((pooling) => ({ t, pooling })));
    const answers = await Promise.all(asks.map(({ t, pooling }) => post({ model: 'lm', input: [t, t.slice(0, 5)], pooling })));
    answers.forEach((r, k) => {
      expect(r.status).toBe(200);
      expectClose(r.body.data[0]!.embedding as number[], reference(encode(asks[k]!.t), asks[k]!.pooling));
      expectClose(r.body.data[1]!.embedding as number[], reference(encode(asks[k]!.t.slice(0, 5)), asks[k]!.pooling));
    });
  });

  it("base64 is the float32 vector's little-endian bytes", async () => {
    const [floats, b64] = await Promise.all([post({ model: 'lm', input: texts, encoding_format: 'float' }), post({ model: 'lm', input: texts, encoding_format: 'base64' })]);
    expect(b64.status).toBe(200);
    b64.body.data.forEach((d, i) => {
      expect(typeof d.embedding).toBe('string');
      expect(decodeBase64(d.embedding as string)).toEqual(floats.body.data[i]!.embedding);
    });
  });

  it('/v1/models lists the poolings for language models only', async () => {
    const list = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string; embedding_pooling?: string[] }[] };
    expect(list.data.find((m) => m.id === 'lm')!.embedding_pooling).toEqual(['mean', 'last']);
    expect(list.data.find((m) => m.id === 'clf')!.embedding_pooling).toBeUndefined();
  });
});

describe('clients', () => {
  it("the openai client's embeddings.create (base64 by default, decoded by the client)", async () => {
    const res = await client.embeddings.create({ model: 'lm', input: texts });
    expect(res.data).toHaveLength(texts.length);
    res.data.forEach((d, i) => expectClose(d.embedding, reference(encode(texts[i]!))));
    const tokens = texts.reduce((n, t) => n + encode(t).length, 0);
    expect(res.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    const counted = async () => Number(/^scratchgpt_embedding_tokens_total\{model="lm"\} (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const before = await counted();
    await client.embeddings.create({ model: 'lm', input: texts });
    expect(await counted()).toBe(before + tokens); // /metrics counts them too
    const floats = await client.embeddings.create({ model: 'lm', input: ids, encoding_format: 'float', dimensions: cfg.nEmbd });
    floats.data.forEach((d, i) => expectClose(d.embedding, reference(ids[i]!)));
    await expect(client.embeddings.create({ model: 'lm', input: 'x', dimensions: 8 })).rejects.toMatchObject({ status: 400, param: 'dimensions' });
  });

  it("LangChain's OpenAIEmbeddings: embedQuery and embedDocuments", async () => {
    const lc = new OpenAIEmbeddings({ model: 'lm', apiKey: 'unused', maxRetries: 0, configuration: { baseURL: `${server.url}/v1` } });
    expectClose(await lc.embedQuery(texts[0]!), reference(encode(texts[0]!)));
    const docs = await lc.embedDocuments(texts);
    expect(docs).toHaveLength(texts.length);
    docs.forEach((v, i) => expectClose(v, reference(encode(texts[i]!))));
  });
});

describe('refusals', () => {
  it('dimensions other than the model width, unknown pooling or encoding', async () => {
    const dims = await post({ model: 'lm', input: 'hi', dimensions: 8 });
    expect(dims).toMatchObject({ status: 400, body: { error: { param: 'dimensions' } } });
    expect(dims.body.error.message).toMatch(/16 dimensions/);
    expect((await post({ model: 'lm', input: 'hi', dimensions: 16 })).status).toBe(200);
    expect(await post({ model: 'lm', input: 'hi', pooling: 'max' })).toMatchObject({ status: 400, body: { error: { param: 'pooling' } } });
    expect(await post({ model: 'lm', input: 'hi', encoding_format: 'int8' })).toMatchObject({ status: 400, body: { error: { param: 'encoding_format' } } });
    expect(await post({ model: 'lm', input: 'hi', temperature: 1 })).toMatchObject({ status: 400, body: { error: { param: 'temperature' } } });
  });

  it('inputs longer than the context', async () => {
    const ids129 = Array.from({ length: 129 }, () => 11);
    // 'word '×200 is 200 tokens, found by encoding; 100k bytes cannot fit whatever they encode to (refused unencoded).
    for (const input of [ids129, [[1, 2], ids129], 'word '.repeat(200), 'x'.repeat(100_000)]) {
      const r = await post({ model: 'lm', input });
      expect(r).toMatchObject({ status: 400, body: { error: { param: 'input', code: 'context_length_exceeded' } } });
      expect(r.body.error.message).toMatch(/maximum context length is 128 tokens/);
    }
  });

  it('empty inputs and ids outside the vocabulary', async () => {
    for (const input of ['', [], [[]], ['a', ''], [[1], []]]) {
      expect(await post({ model: 'lm', input })).toMatchObject({ status: 400, body: { error: { param: expect.stringMatching(/^input/) } } });
    }
    expect(await post({ model: 'lm', input: [50257] })).toMatchObject({ status: 400, body: { error: { param: 'input' } } });
    expect(await post({ model: 'lm' })).toMatchObject({ status: 400, body: { error: { param: 'input' } } });
  });

  it('a classifier is a 400, an unknown model a 404', async () => {
    expect(await post({ model: 'clf', input: 'hi' })).toMatchObject({ status: 400, body: { error: { param: 'model', code: 'model_not_generative' } } });
    expect(await post({ model: 'gpt-9', input: 'hi' })).toMatchObject({ status: 404, body: { error: { param: 'model', code: 'model_not_found' } } });
  });
});

describe('sharing the model with generation', () => {
  it('embeddings complete while a long generation streams on the same model, and both are right', async () => {
    const ask = { model: 'lm', prompt: 'Once upon a time', max_tokens: 100, temperature: 0, ignore_eos: true };
    const alone = await client.completions.create({ ...ask, stream: false } as OpenAI.CompletionCreateParamsNonStreaming);
    const stream = await client.completions.create({ ...ask, stream: true } as OpenAI.CompletionCreateParamsStreaming);
    let chunks = 0;
    let text = '';
    let embedded: Promise<EmbeddingsBody[]> | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      if (chunk.choices[0]?.text !== undefined && chunk.choices[0].finish_reason === null) chunks++;
      // Once decoding runs, ask for several embeddings at once: they run between its steps.
      if (chunks === 2) embedded ??= Promise.all(texts.map((t, i) => post({ model: 'lm', input: i % 2 ? [t, `and ${t}`] : [ids[i % ids.length]!, ids[(i + 1) % ids.length]!], pooling: i % 2 ? 'last' : 'mean' }).then((r) => r.body)));
    }
    expect(embedded).toBeDefined();
    const bodies = await embedded!;
    bodies.forEach((b, i) => {
      const pooling = i % 2 ? 'last' : 'mean';
      const inputs = i % 2 ? [encode(texts[i]!), encode(`and ${texts[i]}`)] : [ids[i % ids.length]!, ids[(i + 1) % ids.length]!];
      inputs.forEach((tokens, k) => expectClose(b.data[k]!.embedding as number[], reference(tokens, pooling)));
    });
    expect(chunks).toBeGreaterThanOrEqual(99); // the last token's chunk carries the finish reason
    expect(text).toBe(alone.choices[0]!.text); // greedy tokens unchanged by the embedding runs between its steps
  });
});
