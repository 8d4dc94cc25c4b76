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
// neither inputs nor backward work.
import { Graph, type Value } from '../onnx/graph.js';
import { gradients } from '../onnx/grad.js';
import * as op from '../onnx/ops.js';
import type { GPTConfig } from '../model/config.js';
import { classifierHead, lmHead, mergeHeads, scaledDotProduct, splitHeads, transformer, type AttendFn, type DropoutFn, type ParamFn } from '../model/gpt.js';
import { parameterSpecs } from '../model/params.js';
import { loraAdapt, loraSpecs, type LoraConfig } from './lora.js';

export interface TrainGraphOptions {
  batchSize: number;
  seqLen: number;
  /** Names of the parameters that are graph inputs (and get gradients). */
  trainable: ReadonlySet<string>;
  /** Places a frozen parameter as an initializer (WeightPlacer.weight). */
  weight: (g: Graph, name: string, shape: number[]) => Value;
  /** true: outputs gradients too (and dropout applies if cfg.dropout > 0); false: loss only. */
  train: boolean;
  /** 'lm' (default): next-token loss at every position; 'classify': the classifier head at one position per row. */
  head?: 'lm' | 'classify';
  /** LoRA adapters on the blocks' linear layers; their lora_A/lora_B tensors are parameters like any other. */
  lora?: LoraConfig;
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

const HIDDEN = -1e9; // additive causal mask: exp(-1e9 - max) is exactly 0 in float32

export const gradName = (param: string): string => `grad.${param}`;

export function buildTrainGraph(cfg: GPTConfig, opts: TrainGraphOptions): TrainGraph {
  const { batchSize: B, seqLen: T } = opts;
  if (T > cfg.contextLength) throw new Error(`sequence length ${T} exceeds the context length ${cfg.contextLength}`);
  const g = new Graph(opts.train ? 'gpt2_train' : 'gpt2_eval');
  const C = cfg.nEmbd;
  const H = cfg.nHead;
  const hd = C / H;

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
  const causal = new Float32Array(T * T);
  for (let t = 0; t < T; t++) causal.fill(HIDDEN, t * T + t + 1, (t + 1) * T);
  const mask = g.constant(causal, [1, 1, T, T], 'causal_mask');

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

  const attend: AttendFn = (l, q, k, v) => {
    const [qh, kh, vh] = [splitHeads(q, H, hd), splitHeads(k, H, hd), splitHeads(v, H, hd)]; // [B, H, T, hd]
    const y = scaledDotProduct(qh, op.transpose(kh, [0, 1, 3, 2]), vh, mask, hd, dropout, `h.${l}.attn_weights`);
    return mergeHeads(y, C); // [B, T, C]
  };

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
  fastCrossEntropy(g);
  return { graph: g, dropoutSites };
}

/**
 * ORT runs SoftmaxCrossEntropyLoss as its function body, whose LogSoftmax over [N, V, 1] is ~2×
 * slower than LogSoftmax over the last axis of [N, V] (measured: 63 vs 29 ms at N=1024, V=50257),
 * more under the memory pressure of a training step. After autodiff (which differentiates the
 * SoftmaxCrossEntropyLoss node), each such node is replaced by the same mean over targets ≠
 * ignore_index of -log_softmax(x)[target], written with last-axis ops.
 */
function fastCrossEntropy(g: Graph): void {
  for (const node of [...g.nodes]) {
    if (node.op !== 'SoftmaxCrossEntropyLoss' || node.attrs.reduction !== 'mean' || node.inputs.length !== 2) continue;
    const [logits, targets] = node.inputs.map((n) => g.get(n)) as [Value, Value];
    if (logits.rank !== 2) continue;
    replaceNode(g, node, () => {
      const N = logits.shape[0]!;
      const ignore = op.scalar(targets, node.attrs.ignore_index as number);
      const skip = op.equal(targets, ignore); // [N]
      const safe = op.where(skip, op.scalar(targets, 0), targets);
      const logp = op.logSoftmax(logits, -1); // [N, V]
      const picked = op.reshape(op.gatherElements(logp, op.reshape(safe, [N as number, 1]), 1), [N as number]);
      const zero = op.scalar(logp, 0);
      const keep = op.where(skip, zero, op.scalar(logp, 1));
      const loss = op.div(op.neg(op.reduceSum(op.where(skip, zero, picked), [0], false)), op.reduceSum(keep, [0], false));
      return node.outputs.length > 1 ? [loss, logp] : [loss];
    });
  }
}

/** Replaces `node` by the nodes `build` appends, in its place; consumers read the new outputs. */
function replaceNode(g: Graph, node: Graph['nodes'][number], build: () => Value[]): void {
  const at = g.nodes.indexOf(node);
  const before = g.nodes.length;
  const outs = build();
  const added = g.nodes.splice(before);
  g.nodes.splice(at, 1, ...added);
  const rename = new Map(node.outputs.map((o, i) => [o, outs[i]!]));
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => rename.get(i)?.name ?? i);
  g.outputs.forEach((o, i) => {
    const r = rename.get(o.name);
    if (r) g.outputs[i] = r;
  });
  for (const o of node.outputs) g.producer.delete(o);
}
