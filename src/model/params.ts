// GPT-2's parameter tensors, named exactly as in Hugging Face checkpoints (without the
// `transformer.` prefix), in one ordered list. Linear weights use GPT-2's Conv1D layout
// [in, out], which is what MatMul wants: checkpoints load key for key with no transpose.
import { hasUntiedHead, type GPTConfig } from './config.js';

/** The classification head's tensor name; it sits outside `transformer.` in HF checkpoints. */
export const CLASSIFIER_HEAD = 'score.weight';

/**
 * An untied language-model head's tensor name (GPT2LMHeadModel's `lm_head`, outside
 * `transformer.` in HF checkpoints). Only a config with tieWordEmbeddings false has one.
 */
export const LM_HEAD = 'lm_head.weight';

export interface ParamSpec {
  name: string;
  shape: number[];
}

/** A named float32 tensor in row-major order. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export type Params = Map<string, Tensor>;

export function parameterSpecs(c: GPTConfig): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [
    { name: 'wte.weight', shape: [c.vocabSize, C] }, // token embeddings, also the output head when tied
    { name: 'wpe.weight', shape: [c.contextLength, C] }, // position embeddings
  ];
  for (let l = 0; l < c.nLayer; l++) {
    const h = `h.${l}`;
    specs.push(
      { name: `${h}.ln_1.weight`, shape: [C] },
      { name: `${h}.ln_1.bias`, shape: [C] },
      { name: `${h}.attn.c_attn.weight`, shape: [C, 3 * C] }, // q, k, v side by side
      ...(c.qkvBias ? [{ name: `${h}.attn.c_attn.bias`, shape: [3 * C] }] : []),
      { name: `${h}.attn.c_proj.weight`, shape: [C, C] },
      { name: `${h}.attn.c_proj.bias`, shape: [C] },
      { name: `${h}.ln_2.weight`, shape: [C] },
      { name: `${h}.ln_2.bias`, shape: [C] },
      { name: `${h}.mlp.c_fc.weight`, shape: [C, 4 * C] },
      { name: `${h}.mlp.c_fc.bias`, shape: [4 * C] },
      { name: `${h}.mlp.c_proj.weight`, shape: [4 * C, C] },
      { name: `${h}.mlp.c_proj.bias`, shape: [C] },
    );
  }
  specs.push({ name: 'ln_f.weight', shape: [C] }, { name: 'ln_f.bias', shape: [C] });
  // A classifier's head (GPT2ForSequenceClassification's nn.Linear(n_embd, num_labels, bias=False),
  // stored [out, in] as torch does); wte then only embeds.
  if (c.labels) specs.push({ name: CLASSIFIER_HEAD, shape: [c.labels.length, C] });
  // An untied output head (nn.Linear(n_embd, vocab_size, bias=False)), stored [out, in] as torch
  // and HF keep it, so logits = h · lm_headᵀ exactly as the tied h · wteᵀ.
  else if (hasUntiedHead(c)) specs.push({ name: LM_HEAD, shape: [c.vocabSize, C] });
  return specs;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
