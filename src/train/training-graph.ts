// The training graph: gpt.ts's transformer over a full causal square, all B·T logits through
// the output head (tied to wte, or an untied lm_head), mean cross-entropy over targets ≠ -100,
// and (for training) the gradients of the loss with respect to every trainable parameter,
// appended by src/onnx/grad.ts.
//
// Inputs:  tokens int64 [B, T]; targets int64 [B·T] (-100 = ignore);
//          dropout.<site> bool masks (true = keep), only when dropout > 0;
//          each trainable parameter, float32, under its GPT-2 name.
// Outputs: loss float32 []; grad.<name> for each trainable parameter (training graphs only).
//
// With head 'classify' (a config with labels, chapter 6), the loss is instead the cross-entropy
// of the classifier head read at one position per row:
// Inputs:  tokens int64 [B, T]; last_rows int64 [B] (b·T + row b's last real token);
//          targets int64 [B] (class ids, -100 = a padding row).
// Outputs: loss; logits [B, num_labels] (for accuracy); grad.<name> when training.
// With `lora`, every block's linear layers get adapters (lora.ts) whose A/B are trainable inputs.
// Frozen parameters are initializers (external data, placed by WeightPlacer), so freezing costs
// neither inputs nor backward work. After autodiff the loss node is rewritten with last-axis ops
// (src/onnx/rewrite.ts's lastAxisCrossEntropy), which ORT runs faster; on WebGPU its log-softmax
// is element-wise ops, which that provider has kernels for.
import { Graph, type Value } from '../onnx/graph.js';
import { gradients } from '../onnx/grad.js';
import * as op from '../onnx/ops.js';
import { lastAxisCrossEntropy } from '../onnx/rewrite.js';
import type { GPTConfig } from '../model/config.js';
import type { Device } from '../model/runtime.js';
import { causalAttention, causalMask, classifierHead, lmHead, parameterSpecs, transformer, type DropoutFn, type ParamFn, type WeightFn } from '../model/gpt.js';
import { loraAdapt, loraSpecs, type LoraConfig } from './lora.js';

export interface TrainGraphOptions {
  batchSize: number;
  seqLen: number;
  /** Names of the parameters that are graph inputs (and get gradients). */
  trainable: ReadonlySet<string>;
  /** Places a frozen parameter as an initializer (WeightPlacer.weight). */
  weight: WeightFn;
  /** true: outputs gradients too (and dropout applies if cfg.dropout > 0); false: loss only. */
  train: boolean;
  /** 'lm' (default): next-token loss at every position; 'classify': the classifier head at one position per row. */
  head?: 'lm' | 'classify';
  /** LoRA adapters on the blocks' linear layers; their lora_A/lora_B tensors are parameters like any other. */
  lora?: LoraConfig;
  /** Where the graph runs: on WebGPU the loss's LogSoftmax is written as element-wise ops, since that EP has no kernel for it. */
  device?: Device;
}

export interface DropoutSite {
  name: string; // graph input name: dropout.<site>
  shape: number[];
}

export interface TrainGraph {
  graph: Graph;
  /** Mask inputs the caller must feed, in the order the forward pass applies them. */
  dropoutSites: DropoutSite[];
}

export const gradName = (param: string): string => `grad.${param}`;

export function buildTrainGraph(cfg: GPTConfig, opts: TrainGraphOptions): TrainGraph {
  const { batchSize: B, seqLen: T } = opts;
  if (T > cfg.contextLength) throw new Error(`sequence length ${T} exceeds the context length ${cfg.contextLength}`);
  const g = new Graph(opts.train ? 'gpt2_train' : 'gpt2_eval');
  const C = cfg.nEmbd;

  const classify = opts.head === 'classify';
  if (classify && !cfg.labels) throw new Error('a classification graph needs a config with labels');
  const specs = new Map([...parameterSpecs(cfg), ...(opts.lora ? loraSpecs(cfg, opts.lora.rank) : [])].map((s) => [s.name, s.shape]));
  for (const name of opts.trainable) if (!specs.has(name)) throw new Error(`trainable parameter '${name}' is not part of this GPT-2`);
  const tokens = g.input('tokens', 'int64', [B, T]);
  const targets = g.input('targets', 'int64', [classify ? B : B * T]);
  const lastRows = classify ? g.input('last_rows', 'int64', [B]) : undefined;
  const inputs = new Map<string, Value>();
  for (const [name, shape] of specs) if (opts.trainable.has(name)) inputs.set(name, g.input(name, 'float32', shape));
  const frozen = new Map<string, Value>();
  const p: ParamFn = (name) => {
    const v = inputs.get(name) ?? frozen.get(name);
    if (v) return v;
    const placed = opts.weight(g, name, specs.get(name)!);
    frozen.set(name, placed);
    return placed;
  };

  const positions = g.constant(BigInt64Array.from({ length: T }, (_, t) => BigInt(t)), [1, T], 'positions');
  const mask = g.constant(causalMask(T), [1, 1, T, T], 'causal_mask');

  // Dropout as the book places it: embeddings, attention weights, after each residual branch.
  // Masks come from JS (seeded), since ORT's random ops cannot be made reproducible.
  const dropoutSites: DropoutSite[] = [];
  const rate = cfg.dropout;
  const dropout: DropoutFn | undefined =
    opts.train && rate > 0
      ? (x, site) => {
          const shape = x.shape.map((d) => {
            if (typeof d !== 'number') throw new Error(`dropout at ${site}: shape [${x.shape}] is not static`);
            return d;
          });
          const keep = g.input(`dropout.${site}`, 'bool', shape);
          dropoutSites.push({ name: keep.name, shape });
          return op.where(keep, op.mul(x, op.scalar(x, 1 / (1 - rate))), op.scalar(x, 0));
        }
      : undefined;

  const attend = causalAttention(cfg, mask, dropout);
  const h = transformer(cfg, p, tokens, positions, attend, dropout, opts.lora && loraAdapt(opts.lora, p)); // [B, T, C]
  let loss: Value;
  if (lastRows) {
    const logits = classifierHead(p, op.gather(op.reshape(h, [B * T, C]), lastRows)); // [B, K]
    loss = g.output(op.softmaxCrossEntropy(logits, targets, -100), 'loss');
    g.output(logits, 'logits');
  } else {
    const logits = lmHead(cfg, p, op.reshape(h, [B * T, C])); // [B·T, V]
    loss = g.output(op.softmaxCrossEntropy(logits, targets, -100), 'loss');
  }

  if (opts.train) {
    const wrt = [...inputs.values()];
    const grads = gradients(g, loss, wrt);
    wrt.forEach((x, i) => g.output(grads[i]!, gradName(x.name)));
  }
  lastAxisCrossEntropy(g, { elementwiseLogSoftmax: opts.device === 'webgpu' });
  return { graph: g, dropoutSites };
}
