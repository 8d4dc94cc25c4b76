// PEFT LoRA adapter folders: hand-written in PEFT's exact layout (adapter_config.json as
// save_pretrained writes it, get_peft_model_state_dict's key names), merged at load into the
// weights a plain float64 computation of W + scale·(lora_B·lora_A)ᵀ gives, running the logits
// the float64 reference forward pass gives on those weights; the base found beside the adapter,
// absolute, from the current folder or in the Hugging Face cache; what we refuse, in one line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import type { Params } from '../src/model/params.js';
import { ModelSession } from '../src/model/session.js';
import { writeSafetensors } from '../src/model/safetensors.js';
import { makeRng, randomParams, referenceForward } from './reference/gpt-reference.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-adapter-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cfg: GPTConfig = { vocabSize: 64, contextLength: 16, nEmbd: 8, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const baseParams = randomParams(cfg, 1, 0.2);
const baseDir = path.join(tmp, 'base');
saveCheckpoint(baseDir, cfg, baseParams);

/** adapter_config.json as PEFT 0.13's LoraConfig.save_pretrained wrote it for GPT-2 (sorted keys, indent 2). */
function peftConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: '../base',
    bias: 'none',
    fan_in_fan_out: true,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: 6,
    lora_dropout: 0.05,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: 2,
    rank_pattern: {},
    revision: null,
    target_modules: ['c_proj', 'c_attn'],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
    ...over,
  };
}

interface Factor {
  /** The module as GPT2LMHeadModel names it, e.g. transformer.h.0.attn.c_attn. */
  module: string;
  /** PEFT's orientation: lora_A [r, in], lora_B [out, r]. */
  A: { shape: number[]; data: Float32Array };
  /** Left out of the file when undefined. */
  B?: { shape: number[]; data: Float32Array };
}

/** Random PEFT factors for modules, with their rank (B ≠ 0, unlike a fresh PEFT init). */
function factors(modules: [string, number][], seed: number): Factor[] {
  const rng = makeRng(seed);
  const dims = (m: string): [number, number] => {
    const w = baseParams.get(`${m.replace(/^transformer\./, '')}.weight`)!.shape;
    return [w[0]!, w[1]!]; // Conv1D [in, out]
  };
  const rand = (n: number) => Float32Array.from({ length: n }, () => 0.5 * rng.normal());
  return modules.map(([module, r]) => {
    const [inDim, outDim] = dims(module);
    return { module, A: { shape: [r, inDim], data: rand(r * inDim) }, B: { shape: [outDim, r], data: rand(outDim * r) } };
  });
}

function writeAdapter(name: string, config: Record<string, unknown>, fs_: Factor[], extra: { name: string; shape: number[] }[] = []): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  const tensors = fs_.flatMap((f) => [
    { name: `base_model.model.${f.module}.lora_A.weight`, dtype: 'F32' as const, ...f.A },
    ...(f.B ? [{ name: `base_model.model.${f.module}.lora_B.weight`, dtype: 'F32' as const, ...f.B }] : []),
  ]);
  for (const e of extra) tensors.push({ name: e.name, dtype: 'F32', shape: e.shape, data: new Float32Array(e.shape.reduce((a, b) => a * b, 1)) });
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { metadata: { format: 'pt' } });
  return dir;
}

/** The merged weights in float64, written out with loops: W[i][j] + scale·Σ_k lora_B[j][k]·lora_A[k][i]. */
function expectedMerge(f: Factor[], scaleOf: (module: string, r: number) => number): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const { module, A, B } of f) {
    const name = `${module.replace(/^transformer\./, '')}.weight`;
    const W = baseParams.get(name)!;
    const [inDim, outDim] = W.shape as [number, number];
    const r = A.shape[0]!;
    const scale = scaleOf(module, r);
    const merged = new Float64Array(W.data.length);
    for (let i = 0; i < inDim; i++) {
      for (let j = 0; j < outDim; j++) {
        let delta = 0;
        for (let k = 0; k < r; k++) delta += B!.data[j * r + k]! * A.data[k * inDim + i]!;
        merged[i * outDim + j] = W.data[i * outDim + j]! + scale * delta;
      }
    }
    out.set(name, merged);
  }
  return out;
}

async function logits(dir: string, tokens: number[], lora?: string): Promise<Float32Array> {
  const model = await ModelSession.load(dir, { threads: 1, lora });
  try {
    return Float32Array.from((await model.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]))[0]!);
  } finally {
    await model.close();
  }
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

const allModules = (layers: string[]): [string, number][] => [0, 1].flatMap((l) => layers.map((x): [string, number] => [`transformer.h.${l}.${x}`, 2]));

describe('PEFT LoRA adapters', () => {
  const tokens = [3, 17, 42, 5, 60, 9, 1];
  const cases: { name: string; config: Record<string, unknown>; modules: [string, number][]; scale: (module: string, r: number) => number }[] = [
    {
      name: 'alpha/r on c_attn and both c_proj (target_modules by name)',
      config: peftConfig(),
      modules: allModules(['attn.c_attn', 'attn.c_proj', 'mlp.c_proj']),
      scale: (_m, r) => 6 / r,
    },
    {
      name: 'use_rslora alpha/√r, rank_pattern and alpha_pattern overrides, all-linear, layers_to_transform',
      config: peftConfig({ use_rslora: true, r: 4, lora_alpha: 8, target_modules: 'all-linear', layers_to_transform: [1], rank_pattern: { 'mlp.c_fc': 3 }, alpha_pattern: { 'h.1.attn.c_attn': 2 } }),
      modules: [
        ['transformer.h.1.attn.c_attn', 4],
        ['transformer.h.1.attn.c_proj', 4],
        ['transformer.h.1.mlp.c_fc', 3],
        ['transformer.h.1.mlp.c_proj', 4],
      ],
      scale: (m, r) => (m.endsWith('h.1.attn.c_attn') ? 2 : 8) / Math.sqrt(r),
    },
  ];
  for (const [i, c] of cases.entries()) {
    it(`merges W + scale·(lora_B·lora_A)ᵀ in Conv1D orientation: ${c.name}`, async () => {
      const f = factors(c.modules, 10 + i);
      const dir = writeAdapter(`adapter-${i}`, c.config, f);
      const want = expectedMerge(f, c.scale);
      const got = materialize(loadCheckpoint(dir).weights);
      for (const [name, w] of want) expect(maxDiff(got.get(name)!.data, w), name).toBeLessThan(1e-6 * Math.max(1, ...w.map(Math.abs)));
      for (const [name, t] of baseParams) if (!want.has(name)) expect(got.get(name)!.data, name).toEqual(t.data);

      // The model that runs: the float64 reference forward pass on the expected weights.
      const merged: Params = new Map([...baseParams].map(([name, t]) => [name, want.has(name) ? { shape: t.shape, data: Float32Array.from(want.get(name)!) } : t]));
      const reference = referenceForward(cfg, merged, tokens);
      const ours = await logits(dir, tokens);
      const V = cfg.vocabSize;
      reference.forEach((row, t) => expect(maxDiff(ours.subarray(t * V, (t + 1) * V), row), `position ${t}`).toBeLessThan(1e-4));
      const plain = await logits(baseDir, tokens);
      expect(maxDiff(ours, plain)).toBeGreaterThan(1e-2); // the adapter changes the model
    });
  }

  it('takes keys without the transformer. prefix (a GPT2Model base) and fan_in_fan_out false (PEFT forces true on Conv1D)', () => {
    const f = factors([['h.0.mlp.c_fc', 2], ['h.1.mlp.c_fc', 2]], 20);
    const dir = writeAdapter('gpt2model-keys', peftConfig({ target_modules: ['c_fc'], fan_in_fan_out: false }), f);
    const want = expectedMerge(f, (_m, r) => 6 / r);
    const got = materialize(loadCheckpoint(dir).weights);
    for (const [name, w] of want) expect(maxDiff(got.get(name)!.data, w), name).toBeLessThan(1e-5);
  });

  it('finds the base absolute, beside the adapter, from the current folder, in the Hugging Face cache; --lora overrides it', async () => {
    const f = factors(allModules(['attn.c_attn']), 30);
    const config = peftConfig({ target_modules: ['c_attn'] });
    const want = materialize(loadCheckpoint(writeAdapter('beside', config, f)).weights);
    const same = (dir: string, lora?: string) => {
      const got = materialize(loadCheckpoint(dir, { lora }).weights);
      for (const [name, t] of want) expect(got.get(name)!.data, name).toEqual(t.data);
    };
    same(writeAdapter('absolute', { ...config, base_model_name_or_path: baseDir }, f));

    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      same(writeAdapter('from-cwd/nested', { ...config, base_model_name_or_path: 'base' }, f));
    } finally {
      process.chdir(cwd);
    }

    // A snapshot in the Hub cache layout (models--ORG--NAME/refs/main → snapshots/<commit>).
    const cache = path.join(tmp, 'hf-cache');
    const commit = 'a'.repeat(40);
    const snapshot = path.join(cache, 'models--tiny-org--tiny-gpt2', 'snapshots', commit);
    fs.mkdirSync(snapshot, { recursive: true });
    fs.mkdirSync(path.join(cache, 'models--tiny-org--tiny-gpt2', 'refs'));
    fs.writeFileSync(path.join(cache, 'models--tiny-org--tiny-gpt2', 'refs', 'main'), commit);
    for (const file of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(baseDir, file), path.join(snapshot, file));
    const hubAdapter = writeAdapter('hub-base', { ...config, base_model_name_or_path: 'tiny-org/tiny-gpt2' }, f);
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      same(hubAdapter);
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }

    // --lora: the given model is the base, whatever the adapter names.
    const elsewhere = writeAdapter('names-a-missing-base', { ...config, base_model_name_or_path: '/nowhere/gpt2' }, f);
    expect(() => loadCheckpoint(elsewhere)).toThrow(/^[^\n]*base \/nowhere\/gpt2 is not a local folder[^\n]*--model BASE --lora/);
    same(baseDir, elsewhere);
    expect(Array.from(await logits(baseDir, [1, 2, 3], elsewhere))).toEqual(Array.from(await logits(path.join(tmp, 'beside'), [1, 2, 3])));
  });

  it('refuses what it cannot merge, each in one line', () => {
    const ok = factors(allModules(['attn.c_attn']), 40);
    const config = peftConfig({ target_modules: ['c_attn'] });
    const refusals: [string, Record<string, unknown>, Factor[], { name: string; shape: number[] }[], RegExp][] = [
      ['dora', { ...config, use_dora: true }, ok, [], /DoRA adapters \(use_dora\) are not supported/],
      ['bias', { ...config, bias: 'all' }, ok, [], /bias "all" is not supported/],
      ['modules-to-save', { ...config, modules_to_save: ['lm_head'] }, ok, [], /modules_to_save \["lm_head"\] is not supported/],
      ['ia3', { ...config, peft_type: 'IA3' }, ok, [], /peft_type "IA3" is not supported: only LoRA/],
      ['llama', { ...config, target_modules: ['q_proj', 'v_proj'] }, ok, [], /target_modules \["q_proj","v_proj"\] are not in GPT-2/],
      ['embedding', { ...config, target_modules: ['c_attn', 'wte'] }, ok, [], /selects transformer\.wte, an embedding: only GPT-2's Conv1D layers/],
      ['head', { ...config, target_modules: ['c_attn', 'lm_head'] }, ok, [], /selects lm_head, the output head/],
      ['pissa', { ...config, init_lora_weights: 'pissa' }, ok, [], /init_lora_weights "pissa" is not supported \(PEFT rewrites the base weights/],
      ['missing-b', config, ok.map((f, i) => (i === 0 ? { ...f, B: undefined } : f)), [], /transformer\.h\.0\.attn\.c_attn has lora_B missing/],
      ['rank', config, factors(allModules(['attn.c_attn']).map(([m]): [string, number] => [m, 3]), 43), [], /lora_A is \[3, 8\] and lora_B \[24, 3\], but adapter_config\.json gives it rank 2/],
      ['unselected', config, [...ok, ...factors([['transformer.h.0.mlp.c_fc', 2]], 41)], [], /transformer\.h\.0\.mlp\.c_fc has LoRA factors but target_modules does not select it/],
      ['not-in-file', { ...config, target_modules: ['c_attn', 'c_fc'] }, ok, [], /target_modules selects transformer\.h\.0\.mlp\.c_fc, but the file has no LoRA factors for it/],
      ['magnitude', config, ok, [{ name: 'base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector', shape: [24] }], /a DoRA magnitude/],
      ['other-size', config, factors(allModules(['attn.c_attn']), 42).map((f) => ({ ...f, A: { shape: [2, 16], data: new Float32Array(32) } })), [], /\[8, 24\] in the base, but the adapter's factors are for \[16, 24\]: it was trained on another base model/],
    ];
    for (const [name, c, f, extra, message] of refusals) {
      const dir = writeAdapter(`refuse-${name}`, c, f, extra);
      let error: Error | undefined;
      try {
        loadCheckpoint(dir);
      } catch (e) {
        error = e as Error;
      }
      expect(error?.message, name).toMatch(message);
      expect(error!.message, name).not.toContain('\n');
    }
  });
});
