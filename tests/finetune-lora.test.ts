// LoRA (appendix E): the adapter's gradients against central differences (float64, as
// grad.test.ts checks every op; and through a whole tiny GPT against the float64 reference),
// merged weights computing what base + adapters compute, and a LoRA finetune whose output is
// exactly base ⊕ adapters with every other tensor untouched.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint, type WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { parameterSpecs } from '../src/model/gpt.js';
import type { Params } from '../src/model/params.js';
import { Rng } from '../src/model/rng.js';
import { openSafetensors, readTensorF32 } from '../src/model/safetensors.js';
import { gradients } from '../src/onnx/grad.js';
import { Graph } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops.js';
import { serialize } from '../src/onnx/serialize.js';
import { IGNORE_INDEX, type Batch } from '../src/train/data.js';
import { runFinetune } from '../src/train/finetune.js';
import { FlatLayout } from '../src/train/flat.js';
import { loraAdapt, loraInit, loraSpecs, mergeLora, type LoraConfig } from '../src/train/lora.js';
import { TrainSession } from '../src/train/session.js';
import { randomParams, referenceForward } from './reference/gpt-reference.js';
import { centralDifference } from './reference/finite-difference.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-lora-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Random adapters with B ≠ 0 (at init B = 0, which would hide A's gradient and the merge). */
function randomAdapters(cfg: GPTConfig, lora: LoraConfig, seed: number): Params {
  const rng = new Rng(seed);
  const adapters = loraInit(cfg, lora, seed);
  for (const [name, t] of adapters) if (name.endsWith('.lora_B')) for (let i = 0; i < t.data.length; i++) t.data[i] = 0.3 * rng.normal();
  return adapters;
}

/** Bitwise equality (vitest's toEqual walks 800k-element arrays slowly). */
const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

const memory = (params: Params): Map<string, WeightSource> => new Map([...params].map(([n, t]) => [n, { kind: 'memory' as const, data: t.data, shape: t.shape }]));

describe('LoRA gradients', () => {
  it('the adapter path y + (alpha/r)·(x·A)·B: dx, dA, dB match float64 central differences', async () => {
    const lora = { rank: 2, alpha: 3 };
    const shapes = { x: [2, 3, 4], W: [4, 5], A: [4, 2], B: [2, 5] };
    const g = new Graph('lora_check');
    const inputs = Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, g.input(n, 'float64', s)]));
    const p = (name: string) => inputs[name.endsWith('lora_A') ? 'A' : name.endsWith('lora_B') ? 'B' : 'W']!;
    const y = loraAdapt(lora, p)('layer', inputs.x!, op.matmul(inputs.x!, inputs.W!));
    const rng = new Rng(1);
    const R = g.constant(Float64Array.from({ length: 30 }, () => rng.next() * 2 - 1), [2, 3, 5]);
    const loss = g.output(op.reduceSum(op.mul(y, R), [0, 1, 2], false), 'loss');
    const wrt = [inputs.x!, inputs.A!, inputs.B!, inputs.W!];
    gradients(g, loss, wrt).forEach((d, i) => g.output(d, `grad${i}`));
    const { bytes } = serialize(g);
    const session = await ort.InferenceSession.create(bytes);
    const data = Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, Float64Array.from({ length: s.reduce((a, b) => a * b) }, () => rng.next() * 2 - 1)]));
    const feeds = () => Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, new ort.Tensor('float64', data[n]!, s)]));
    const out = await session.run(feeds());
    const lossAt = async () => Number((await session.run(feeds(), ['loss'])).loss!.data[0]);
    const eps = 1e-6;
    for (const [i, name] of ['x', 'A', 'B', 'W'].entries()) {
      const analytic = out[`grad${i}`]!.data as Float64Array;
      const x = data[name]!;
      for (let j = 0; j < x.length; j++) {
        const x0 = x[j]!;
        x[j] = x0 + eps;
        const up = await lossAt();
        x[j] = x0 - eps;
        const down = await lossAt();
        x[j] = x0;
        expect(Math.abs((up - down) / (2 * eps) - analytic[j]!), `${name}[${j}]`).toBeLessThan(1e-7);
      }
    }
  });

  it('through a whole tiny GPT: ORT gradients of every adapter match central differences of the float64 reference on merged weights', async () => {
    const cfg: GPTConfig = { vocabSize: 61, contextLength: 8, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
    const lora = { rank: 2, alpha: 4 };
    const [B, T] = [2, 6];
    const base = randomParams(cfg, 2);
    const adapters = randomAdapters(cfg, lora, 3);
    const layout = new FlatLayout(loraSpecs(cfg, lora.rank));
    const session = await TrainSession.create(cfg, layout, memory(base), { batchSize: B, seqLen: T, train: true, lora, threads: 1 });
    const rng = new Rng(4);
    const tokens = Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
    const targets = Array.from({ length: B * T }, (_, i) => (i % 5 === 4 ? IGNORE_INDEX : rng.int(cfg.vocabSize)));
    const batch: Batch = { tokens: BigInt64Array.from(tokens.map(BigInt)), targets: BigInt64Array.from(targets.map(BigInt)), count: targets.filter((t) => t >= 0).length };
    const grads = layout.alloc();
    const loss = await session.run(layout.pack(adapters), batch, { grads });
    await session.close();

    const referenceLoss = (): number => {
      const merged = mergeLora(cfg, base, adapters, lora);
      let sum = 0;
      for (let b = 0; b < B; b++) {
        const logits = referenceForward(cfg, merged, tokens.slice(b * T, (b + 1) * T));
        for (let t = 0; t < T; t++) {
          const target = targets[b * T + t]!;
          if (target < 0) continue;
          const row = logits[t]!;
          const max = Math.max(...row);
          sum += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[target]!;
        }
      }
      return sum / batch.count;
    };
    expect(Math.abs(loss - referenceLoss())).toBeLessThan(1e-5);
    for (const seg of layout.segments) {
      const view = adapters.get(seg.name)!.data;
      for (let k = 0; k < 2; k++) {
        const i = rng.int(seg.size);
        const numeric = centralDifference(view, i, referenceLoss);
        const analytic = grads[seg.offset + i]!;
        expect(Math.abs(analytic - numeric), `${seg.name}[${i}]: ORT ${analytic}, central difference ${numeric}`).toBeLessThan(2e-4 + 2e-3 * Math.abs(numeric));
      }
    }
  });
});

describe('LoRA merge', () => {
  const cfg: GPTConfig = { vocabSize: 61, contextLength: 8, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: false, layerNormEpsilon: 1e-5, labels: ['a', 'b', 'c'] };

  it('merged weights give the adapted model\'s logits', async () => {
    const lora = { rank: 4, alpha: 8 };
    const [B, T] = [3, 7];
    const base = randomParams(cfg, 5);
    const adapters = randomAdapters(cfg, lora, 6);
    const rng = new Rng(7);
    const batch: Batch = {
      tokens: BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(cfg.vocabSize))),
      targets: BigInt64Array.from([0n, 2n, 1n]),
      count: 3,
      lastRows: BigInt64Array.from([6, T + 2, 2 * T + 4].map(BigInt)),
    };
    const adapted = new FlatLayout(loraSpecs(cfg, lora.rank));
    const s1 = await TrainSession.create(cfg, adapted, memory(base), { batchSize: B, seqLen: T, train: false, head: 'classify', lora, threads: 1 });
    const viaAdapters = new Float32Array(B * 3);
    const loss1 = await s1.run(adapted.pack(adapters), batch, { logits: viaAdapters });
    await s1.close();

    const merged = mergeLora(cfg, base, adapters, lora);
    const head = new FlatLayout(parameterSpecs(cfg).filter((s) => s.name === 'score.weight'));
    const rest = new Map([...merged].filter(([n]) => n !== 'score.weight'));
    const s2 = await TrainSession.create(cfg, head, memory(rest), { batchSize: B, seqLen: T, train: false, head: 'classify', threads: 1 });
    const viaMerged = new Float32Array(B * 3);
    const loss2 = await s2.run(head.pack(merged), batch, { logits: viaMerged });
    await s2.close();
    expect(Math.max(...viaAdapters.map((v, i) => Math.abs(v - viaMerged[i]!)))).toBeLessThan(1e-5);
    expect(Math.abs(loss1 - loss2)).toBeLessThan(1e-6);
    // and the adapters changed something: B ≠ 0
    expect(merged.get('h.0.attn.c_attn.weight')!.data).not.toEqual(base.get('h.0.attn.c_attn.weight')!.data);
  });

  it('a LoRA finetune writes base ⊕ adapters (HF layout), trains the head, leaves every other tensor as it was', async () => {
    const lmCfg: GPTConfig = { vocabSize: 50257, contextLength: 32, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
    const baseDir = path.join(tmp, 'base');
    saveCheckpoint(baseDir, lmCfg, randomParams(lmCfg, 8, 0.05));
    const workDir = path.join(tmp, 'work');
    const out = path.join(tmp, 'out');
    const lora = { rank: 2, alpha: 4 };
    const result = await runFinetune({
      baseModelDir: baseDir,
      outDir: out,
      workDir,
      task: { type: 'classification' },
      method: { type: 'lora', ...lora },
      train: Array.from({ length: 8 }, (_, i) => ({ text: i % 2 ? 'yes it is' : 'no it is not', label: i % 2 ? 'yes' : 'no' })),
      epochs: 2,
      batchSize: 4,
      lr: 1e-2,
      seed: 1,
      threads: 1,
    });
    expect(result.steps).toBe(4);
    const file = openSafetensors(path.join(workDir, 'adapter.safetensors'));
    expect(file.metadata).toMatchObject({ rank: '2', alpha: '4' });
    const adapters: Params = new Map([...file.tensors.keys()].map((n) => [n, { shape: file.tensors.get(n)!.shape, data: readTensorF32(file, n) }]));
    expect(adapters.size).toBe(2 * 4 * 2);
    expect(adapters.get('h.1.mlp.c_fc.lora_B')!.data.some((v) => v !== 0)).toBe(true); // trained away from 0

    const base = materialize(loadCheckpoint(baseDir).weights);
    const got = materialize(loadCheckpoint(out).weights);
    const want = mergeLora(lmCfg, base, adapters, lora);
    for (const name of base.keys()) expect(sameBits(got.get(name)!.data, want.get(name)!.data), name).toBe(true);
    for (const name of ['wte.weight', 'wpe.weight', 'h.0.ln_1.weight', 'h.1.mlp.c_fc.bias']) expect(sameBits(got.get(name)!.data, base.get(name)!.data), name).toBe(true);
    expect(sameBits(got.get('h.1.mlp.c_fc.weight')!.data, base.get('h.1.mlp.c_fc.weight')!.data)).toBe(false);
    expect(got.get('score.weight')!.data.some((v) => v !== 0)).toBe(true);
  });
});
