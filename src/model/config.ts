// GPT-2 model configuration: the four published sizes and any custom one.

export interface GPTConfig {
  vocabSize: number; // 50257 = 50,000 BPE merges + 256 byte tokens + <|endoftext|>
  contextLength: number; // n_positions: rows of the position embedding table
  nEmbd: number;
  nLayer: number;
  nHead: number;
  dropout: number; // used only in training graphs
  qkvBias: boolean; // GPT-2 has q/k/v biases; the book's from-scratch runs often turn them off
  layerNormEpsilon: number;
  /** Chat/instruction template recorded by finetuning ('alpaca'); absent for base models. */
  chatTemplate?: string;
}

const base = { vocabSize: 50257, contextLength: 1024, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

export const PRESETS: Record<string, GPTConfig> = {
  gpt2: { ...base, nEmbd: 768, nLayer: 12, nHead: 12 }, // 124M
  'gpt2-medium': { ...base, nEmbd: 1024, nLayer: 24, nHead: 16 }, // 355M
  'gpt2-large': { ...base, nEmbd: 1280, nLayer: 36, nHead: 20 }, // 774M
  'gpt2-xl': { ...base, nEmbd: 1600, nLayer: 48, nHead: 25 }, // 1558M
};

export function presetConfig(name: string, overrides: Partial<GPTConfig> = {}): GPTConfig {
  const preset = PRESETS[name];
  if (!preset) throw new Error(`unknown model config '${name}' (known: ${Object.keys(PRESETS).join(', ')})`);
  return validateConfig({ ...preset, ...overrides });
}

export function validateConfig(c: GPTConfig): GPTConfig {
  const positive = ['vocabSize', 'contextLength', 'nEmbd', 'nLayer', 'nHead'] as const;
  for (const k of positive) if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`config: ${k} must be a positive integer, got ${c[k]}`);
  if (c.nEmbd % c.nHead !== 0) throw new Error(`config: n_embd (${c.nEmbd}) must be divisible by n_head (${c.nHead})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`config: dropout must be in [0, 1), got ${c.dropout}`);
  return c;
}

/** Number of parameters, counting the tied output head once (as GPT-2's "124M" does). */
export function parameterCount(c: GPTConfig): number {
  const C = c.nEmbd;
  const block = 2 * 2 * C + C * 3 * C + (c.qkvBias ? 3 * C : 0) + C * C + C + C * 4 * C + 4 * C + 4 * C * C + C;
  return c.vocabSize * C + c.contextLength * C + c.nLayer * block + 2 * C;
}

/** Hugging Face config.json (GPT2Config) → GPTConfig. Uses n_positions, not the legacy n_ctx. */
export function fromHFConfig(j: Record<string, unknown>, where = 'config.json'): GPTConfig {
  const num = (k: string, fallback?: number): number => {
    const v = j[k] ?? fallback;
    if (typeof v !== 'number') throw new Error(`${where}: missing or non-numeric '${k}'`);
    return v;
  };
  const act = (j.activation_function as string | undefined) ?? 'gelu_new';
  if (!['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'].includes(act)) {
    throw new Error(`${where}: activation_function '${act}' is not supported (GPT-2 uses gelu_new, the tanh approximation)`);
  }
  return validateConfig({
    vocabSize: num('vocab_size', 50257),
    contextLength: num('n_positions', (j.n_ctx as number | undefined) ?? 1024),
    nEmbd: num('n_embd', 768),
    nLayer: num('n_layer', 12),
    nHead: num('n_head', 12),
    dropout: 0,
    qkvBias: j.qkv_bias === undefined ? true : Boolean(j.qkv_bias),
    layerNormEpsilon: num('layer_norm_epsilon', 1e-5),
    chatTemplate: typeof j.chat_template === 'string' ? j.chat_template : undefined,
  });
}

/** GPTConfig → Hugging Face config.json, loadable by transformers' GPT2LMHeadModel. */
export function toHFConfig(c: GPTConfig): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.contextLength,
    n_ctx: c.contextLength,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: null,
    activation_function: 'gelu_new',
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    layer_norm_epsilon: c.layerNormEpsilon,
    initializer_range: 0.02,
    bos_token_id: 50256,
    eos_token_id: 50256,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    qkv_bias: c.qkvBias,
    ...(c.chatTemplate ? { chat_template: c.chatTemplate } : {}),
  };
}
