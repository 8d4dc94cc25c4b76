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
  /**
   * 'alpaca' for models instruction-finetuned here: saving writes the Alpaca Jinja template to
   * tokenizer_config.json (chat-template.ts). Read back from config.json's legacy key, and by
   * loadCheckpoint from a tokenizer_config.json holding that template.
   */
  chatTemplate?: string;
  /**
   * Class names by class id for a sequence classifier (Hugging Face GPT2ForSequenceClassification:
   * a `score.weight` [num_labels, n_embd] head instead of the tied language-model head); absent
   * for language models. A classifier cannot generate text.
   */
  labels?: string[];
  /**
   * Hugging Face GPT2Config's `tie_word_embeddings`: undefined or true = GPT-2's output head is
   * the token embedding wte (logits = h · wteᵀ); false = a separate `lm_head.weight` [vocab, n_embd]
   * (the book's chapter-4/5 GPTModel: out_head = nn.Linear(emb_dim, vocab_size, bias=False)).
   * Classifiers have no language-model head, so it does not apply to them.
   */
  tieWordEmbeddings?: boolean;
}

/** Whether the model has its own output head `lm_head.weight` (an untied language model). */
export const hasUntiedHead = (c: GPTConfig): boolean => c.tieWordEmbeddings === false && !c.labels;

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
  if (c.labels !== undefined) {
    // One label would be HF's regression head (num_labels=1, MSE loss): not a classifier.
    if (c.labels.length < 2) throw new Error(`config: a classifier needs at least 2 labels, got ${c.labels.length}`);
    if (new Set(c.labels).size !== c.labels.length) throw new Error(`config: labels must be distinct, got ${JSON.stringify(c.labels)}`);
  }
  return c;
}

/** Number of parameters, counting a tied output head once (as GPT-2's "124M" does); an untied one adds vocab × n_embd. */
export function parameterCount(c: GPTConfig): number {
  const C = c.nEmbd;
  const block = 2 * 2 * C + C * 3 * C + (c.qkvBias ? 3 * C : 0) + C * C + C + C * 4 * C + 4 * C + 4 * C * C + C;
  const head = hasUntiedHead(c) ? c.vocabSize * C : 0;
  return c.vocabSize * C + c.contextLength * C + c.nLayer * block + 2 * C + (c.labels?.length ?? 0) * C + head;
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
    labels: classifierLabels(j, where),
    // HF's default is true; only an explicit false unties (kept undefined otherwise, as before).
    ...(j.tie_word_embeddings === false ? { tieWordEmbeddings: false } : {}),
  });
}

export const CLASSIFIER_ARCHITECTURE = 'GPT2ForSequenceClassification';

/**
 * A classifier's labels in class-id order, from `id2label` (HF writes its keys as strings), or
 * HF's default names LABEL_i when only `num_labels` is given; undefined for language models.
 * Only single-label classification is supported (softmax over the labels).
 */
function classifierLabels(j: Record<string, unknown>, where: string): string[] | undefined {
  const architectures = Array.isArray(j.architectures) ? j.architectures : [];
  if (!architectures.includes(CLASSIFIER_ARCHITECTURE)) return undefined;
  if (j.problem_type !== undefined && j.problem_type !== null && j.problem_type !== 'single_label_classification') {
    throw new Error(`${where}: problem_type '${String(j.problem_type)}' is not supported (single_label_classification only)`);
  }
  const id2label = j.id2label;
  if (id2label === undefined || id2label === null) {
    const n = j.num_labels;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Error(`${where}: a ${CLASSIFIER_ARCHITECTURE} needs id2label or num_labels`);
    return Array.from({ length: n }, (_, i) => `LABEL_${i}`);
  }
  if (typeof id2label !== 'object' || Array.isArray(id2label)) throw new Error(`${where}: id2label must be an object {"0": "label", …}`);
  const entries = Object.entries(id2label as Record<string, unknown>);
  const labels = entries.map((_, i) => {
    const v = (id2label as Record<string, unknown>)[String(i)];
    if (typeof v !== 'string') throw new Error(`${where}: id2label must map every id 0…${entries.length - 1} to a string (id ${i}: ${JSON.stringify(v)})`);
    return v;
  });
  if (typeof j.num_labels === 'number' && j.num_labels !== labels.length) throw new Error(`${where}: num_labels is ${j.num_labels} but id2label has ${labels.length} labels`);
  return labels;
}

/**
 * GPTConfig → Hugging Face config.json, loadable by transformers' GPT2LMHeadModel, or by
 * GPT2ForSequenceClassification when the config has labels (that model reads the logits at the
 * last token that is not pad_token_id, hence pad_token_id = <|endoftext|>, our padding).
 */
export function toHFConfig(c: GPTConfig): Record<string, unknown> {
  const classifier = c.labels
    ? {
        id2label: Object.fromEntries(c.labels.map((l, i) => [String(i), l])),
        label2id: Object.fromEntries(c.labels.map((l, i) => [l, i])),
        num_labels: c.labels.length,
        pad_token_id: 50256,
      }
    : {};
  return {
    architectures: [c.labels ? CLASSIFIER_ARCHITECTURE : 'GPT2LMHeadModel'],
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
    tie_word_embeddings: c.tieWordEmbeddings !== false,
    torch_dtype: 'float32',
    qkv_bias: c.qkvBias,
    ...classifier,
  };
}
