// PEFT LoRA adapter folders, as huggingface/peft's save_pretrained writes them:
//
//   adapter_config.json        LoraConfig.to_dict(): peft_type "LORA", r, lora_alpha, target_modules,
//                              base_model_name_or_path, …
//   adapter_model.safetensors  get_peft_model_state_dict(): for GPT-2,
//                              base_model.model.transformer.h.0.attn.c_attn.lora_A.weight [r, in]
//                              base_model.model.transformer.h.0.attn.c_attn.lora_B.weight [out, r]
//
// GPT-2's linear layers are Conv1D, weights [in, out]: PEFT forces fan_in_fan_out=True on them,
// so its merge is W += scale·(lora_B·lora_A)ᵀ = scale·lora_Aᵀ·lora_Bᵀ, which is mergeLowRank with
// A = lora_Aᵀ, B = lora_Bᵀ. scale = lora_alpha/r, or lora_alpha/√r with use_rslora (per-module
// overrides from rank_pattern and alpha_pattern, matched as PEFT's get_pattern_key does).
//
// An adapter is merged into its base at load, so it runs exactly as fast as the base model. The
// base is base_model_name_or_path: an absolute folder; a folder relative to the adapter's own
// (our extension, so that weights/ folders move together; PEFT itself reads it from the current
// folder, which we try next); or a Hub id whose snapshot is in the local Hugging Face cache.
// Options that change what the adapter computes beyond W + scale·ΔW on Conv1D layers (DoRA,
// trained biases, modules_to_save, other PEFT methods, inits that rewrite the base) are refused
// with one line, never approximated.
import fs from 'node:fs';
import path from 'node:path';
import { cachedSnapshotDir, isDir, isFile } from '../hub/cache.js';
import { parseRepoSpec } from '../hub/repo-id.js';
import type { GPTConfig } from './config.js';
import { writeFileAtomic } from './durable.js';
import { readJsonObject } from './json-file.js';
import { mergeLowRank, transpose } from './lora-merge.js';
import type { Params, Tensor } from './params.js';
import { openSafetensors, readTensorF32, writeSafetensors } from './safetensors.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** GPT-2's Conv1D layers in each block, by the names PEFT's target_modules use. */
const CONV1D_LAYERS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

/** Key prefix of get_peft_model_state_dict (PeftModel.base_model is the LoraModel, .model the transformers model). */
const KEY_PREFIX = 'base_model.model.';
/** Adapters nest (an adapter's base may be an adapter) at most this deep. */
export const MAX_NESTING = 4;

export interface PeftAdapter {
  dir: string;
  /** Every adapted layer (`h.{l}.{attn.c_attn|…}`) in Conv1D orientation: A [in, r], B [r, out], and its scale. */
  layers: Map<string, { A: Tensor; B: Tensor; scale: number }>;
  /** Refuses, in one line, an adapter whose targets or layers do not fit this model (mergePeftAdapter calls it). */
  check(config: GPTConfig): void;
}

/** A folder holding a PEFT adapter and no full model (a folder with both is the full model). */
export function isPeftAdapterFolder(dir: string): boolean {
  return isFile(path.join(dir, ADAPTER_CONFIG)) && !isFile(path.join(dir, 'model.safetensors')) && !isFile(path.join(dir, 'model.safetensors.index.json'));
}

/**
 * The folders a model is made of, outermost first: the adapter(s), then the full model they
 * apply to. `lora` applies that adapter to `dir` instead of the base it names. A plain model
 * folder is just [dir].
 */
export function modelFolders(dir: string, lora?: string): string[] {
  const chain: string[] = [];
  let next = dir;
  if (lora !== undefined) {
    if (!isPeftAdapterFolder(lora)) throw new Error(`--lora ${lora}: no ${ADAPTER_CONFIG} there (a PEFT LoRA adapter folder has ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
    chain.push(path.resolve(lora));
  }
  while (isPeftAdapterFolder(next)) {
    const at = path.resolve(next);
    if (chain.includes(at)) throw new Error(`${at}: adapters name each other as base (${[...chain, at].join(' → ')})`);
    if (chain.length >= MAX_NESTING) throw new Error(`${chain[0]}: adapters nest more than ${MAX_NESTING} deep`);
    chain.push(at);
    const { name, revision } = baseReference(at);
    next = resolveAdapterBase(at, name, revision);
  }
  return [...chain, path.resolve(next)];
}

/** Where base_model_name_or_path points: a folder (absolute, beside the adapter, from the cwd) or a cached Hub snapshot. */
export function resolveAdapterBase(adapterDir: string, name: string, revision?: string): string {
  const candidates = path.isAbsolute(name) ? [name] : [path.resolve(adapterDir, name), path.resolve(name)];
  const found = candidates.find(isDir);
  if (found) return found;
  const repo = path.isAbsolute(name) ? undefined : parseRepoSpec(name, { legacy: true });
  const cached = repo && cachedSnapshotDir(repo.repo, repo.revision ?? revision);
  if (cached) return cached;
  const where = path.isAbsolute(name) ? '' : ` (looked beside the adapter, in the current folder${repo ? ' and in the Hugging Face cache' : ''})`;
  throw new Error(`${adapterDir}: base ${name} is not a local folder${where}: give the base with --model BASE --lora ${adapterDir}${repo ? `, or download it first (scratchgpt download ${name})` : ''}`);
}

function baseReference(dir: string): { name: string; revision?: string } {
  const j = readConfig(dir);
  const name = j.base_model_name_or_path;
  if (typeof name !== 'string' || !name) throw new Error(`${path.join(dir, ADAPTER_CONFIG)}: no base_model_name_or_path: give the base with --model BASE --lora ${dir}`);
  return { name, ...(typeof j.revision === 'string' && j.revision ? { revision: j.revision } : {}) };
}

/** Reads and checks an adapter folder; layer names and shapes are checked against a model by mergePeftAdapter. */
export function readPeftAdapter(dir: string): PeftAdapter {
  const configFile = path.join(dir, ADAPTER_CONFIG);
  const j = readConfig(dir);
  const fail = (msg: string): never => {
    throw new Error(`${configFile}: ${msg}`);
  };
  checkSupported(j, fail);
  const r = positive(j.r, 'r', fail);
  const alpha = positive(j.lora_alpha, 'lora_alpha', fail);
  const rslora = j.use_rslora === true;
  const rankPattern = patternMap(j.rank_pattern, 'rank_pattern', fail);
  const alphaPattern = patternMap(j.alpha_pattern, 'alpha_pattern', fail);
  const targets = targetMatcher(j, fail);

  const weightsFile = path.join(dir, ADAPTER_WEIGHTS);
  if (!isFile(weightsFile)) {
    const bin = isFile(path.join(dir, 'adapter_model.bin'));
    throw new Error(`${dir}: no ${ADAPTER_WEIGHTS}${bin ? ' (only adapter_model.bin, a PyTorch pickle: re-save it with PEFT, safe_serialization=True)' : ''}`);
  }
  const file = openSafetensors(weightsFile);
  const wfail = (msg: string): never => {
    throw new Error(`${weightsFile}: ${msg}`);
  };
  // key → module name as PEFT saw it (with or without `transformer.`), layer name, A or B.
  const parts = new Map<string, { module?: string; A?: Tensor; B?: Tensor }>();
  let spelling: string | undefined;
  for (const key of file.tensors.keys()) {
    const m = /^base_model\.model\.((?:transformer\.)?)(h\.(\d+)\.(?:attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj))\.lora_(A|B)\.weight$/.exec(key);
    if (!m) wfail(`tensor '${key}' is not a LoRA factor of a GPT-2 Conv1D layer (${KEY_PREFIX}transformer.h.N.{attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj}.lora_{A,B}.weight): ${describeKey(key)}`);
    const [, prefix, layer, , which] = m!;
    if (spelling !== undefined && spelling !== prefix) wfail(`keys both with and without the 'transformer.' prefix`);
    spelling = prefix!;
    const info = file.tensors.get(key)!;
    if (info.shape.length !== 2 || !['F32', 'F16', 'BF16'].includes(info.dtype)) wfail(`tensor '${key}' is ${info.dtype} [${info.shape.join(', ')}], expected a 2-D F32, F16 or BF16 matrix`);
    const t = { shape: [...info.shape], data: readTensorF32(file, key) };
    const entry = parts.get(layer!) ?? {};
    entry.module = prefix + layer!;
    entry[which as 'A' | 'B'] = transpose(t); // lora_A [r, in] → A [in, r]; lora_B [out, r] → B [r, out]
    parts.set(layer!, entry);
  }
  const layers = new Map<string, { A: Tensor; B: Tensor; scale: number }>();
  for (const [layer, { module, A, B }] of parts) {
    if (!A || !B) wfail(`${module} has lora_${A ? 'B' : 'A'} missing`);
    const rank = patternValue(rankPattern, module!) ?? r;
    const layerAlpha = patternValue(alphaPattern, module!) ?? alpha;
    if (A!.shape[1] !== rank || B!.shape[0] !== rank) wfail(`${module}: lora_A is [${A!.shape[1]}, ${A!.shape[0]}] and lora_B [${B!.shape[1]}, ${B!.shape[0]}], but adapter_config.json gives it rank ${rank}`);
    layers.set(layer, { A: A!, B: B!, scale: rslora ? layerAlpha / Math.sqrt(rank) : layerAlpha / rank });
  }
  if (layers.size === 0) wfail('no LoRA tensors');
  return {
    dir,
    layers,
    check(config: GPTConfig) {
      targets.check(config, spelling ?? 'transformer.', (module) => {
        const layer = module.replace(/^transformer\./, '');
        if (!layers.has(layer)) wfail(`target_modules selects ${module}, but the file has no LoRA factors for it`);
      });
      for (const { module } of parts.values()) if (!targets.selects(module!)) wfail(`${module} has LoRA factors but target_modules does not select it`);
      const beyond = [...layers.keys()].find((l) => Number(/^h\.(\d+)\./.exec(l)![1]) >= config.nLayer);
      if (beyond) wfail(`${beyond}: the base has ${config.nLayer} layers: the adapter was trained on another base model`);
    },
  };
}

/**
 * The adapter merged into `config`'s weights: returns the new weights of the adapted layers only
 * (`read` gives the base's current values of the names asked for).
 */
export function mergePeftAdapter(config: GPTConfig, adapter: PeftAdapter, read: (names: string[]) => Params): Params {
  adapter.check(config);
  const names = [...adapter.layers.keys()].map((l) => `${l}.weight`);
  const base = read(names);
  const merged: Params = new Map();
  for (const [layer, { A, B, scale }] of adapter.layers) {
    const W = base.get(`${layer}.weight`)!;
    const [inDim, outDim] = W.shape as [number, number];
    if (A.shape[0] !== inDim || B.shape[1] !== outDim) {
      throw new Error(`${path.join(adapter.dir, ADAPTER_WEIGHTS)}: ${layer} is [${inDim}, ${outDim}] in the base, but the adapter's factors are for [${A.shape[0]}, ${B.shape[1]}]: it was trained on another base model`);
    }
    merged.set(`${layer}.weight`, mergeLowRank(W, A, B, scale, `${adapter.dir}: ${layer}`));
  }
  return merged;
}

export interface AdapterToWrite {
  /** base_model_name_or_path: a Hub id, an absolute folder, or a folder relative to the adapter's. */
  base: string;
  /** The base's Hub revision, when `base` is a Hub id pinned to one. */
  revision?: string;
  rank: number;
  alpha: number;
  /** `h.{l}.{layer}.lora_A` [in, r] and `.lora_B` [r, out], as finetuning trains them (train/lora.ts). */
  adapters: Params;
  /** Storage dtype of the factors (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/**
 * Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` as PEFT's save_pretrained
 * does for a GPT2LMHeadModel with LoraConfig(r, lora_alpha, target_modules=['c_attn', 'c_fc',
 * 'c_proj'], fan_in_fan_out=True, task_type='CAUSAL_LM'), so PeftModel.from_pretrained loads it
 * too. The config holds the fields PEFT has written since 0.9 (newer ones default when absent,
 * and older PEFT versions refuse fields they do not know).
 */
export function writePeftAdapter(dir: string, a: AdapterToWrite): void {
  const tensors: Parameters<typeof writeSafetensors>[1] = [];
  const targets = new Set<string>();
  for (const [name, t] of a.adapters) {
    const m = /^(h\.\d+\.(?:attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj))\.lora_(A|B)$/.exec(name);
    if (!m) throw new Error(`writePeftAdapter: '${name}' is not a LoRA factor of a GPT-2 Conv1D layer`);
    targets.add(m[1]!.split('.').at(-1)!);
    const peft = transpose(t); // A [in, r] → lora_A [r, in]; B [r, out] → lora_B [out, r]
    tensors.push({ name: `${KEY_PREFIX}transformer.${m[1]}.lora_${m[2]}.weight`, dtype: a.dtype ?? 'F32', shape: peft.shape, data: peft.data });
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), tensors, { metadata: { format: 'pt' } });
  // Keys sorted, as save_pretrained's json.dumps(sort_keys=True) writes them.
  const config: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: a.base,
    bias: 'none',
    fan_in_fan_out: true,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: a.alpha,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: a.rank,
    rank_pattern: {},
    revision: a.revision ?? null,
    target_modules: [...targets].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
  writeFileAtomic(path.join(dir, ADAPTER_CONFIG), JSON.stringify(config, null, 2));
}

// ---------------------------------------------------------------------------------------
// adapter_config.json

function readConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(file)) throw new Error(`${dir}: no ${ADAPTER_CONFIG}`);
  return readJsonObject(file);
}

const isSet = (v: unknown): boolean => v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);

/** What we refuse, field by field: anything that is more than W + scale·ΔW on Conv1D weights. */
function checkSupported(j: Record<string, unknown>, fail: (msg: string) => never): void {
  const merge = 'merge it into its base with PEFT (merge_and_unload) and load the merged model';
  if (j.peft_type !== 'LORA') fail(`peft_type ${JSON.stringify(j.peft_type ?? null)} is not supported: only LoRA adapters (peft_type "LORA") are`);
  if (j.use_dora === true) fail(`DoRA adapters (use_dora) are not supported: ${merge}`);
  if (j.bias !== undefined && j.bias !== 'none') fail(`bias ${JSON.stringify(j.bias)} is not supported (the adapter trains biases too): only bias "none" is; ${merge}`);
  if (isSet(j.modules_to_save)) fail(`modules_to_save ${JSON.stringify(j.modules_to_save)} is not supported (whole modules saved beside the LoRA factors): ${merge}`);
  const others: [string, string][] = [
    ['lora_bias', 'a bias on lora_B'],
    ['layer_replication', 'layer replication'],
    ['trainable_token_indices', 'trainable tokens'],
    ['target_parameters', 'LoRA on parameters'],
    ['alora_invocation_tokens', 'activated LoRA (aLoRA)'],
    ['use_qalora', 'QA-LoRA'],
    ['velora_config', 'VeLoRA'],
    ['monteclora_config', 'MonteCLoRA'],
    ['use_bdlora', 'block-diagonal LoRA'],
    ['arrow_config', 'Arrow routing'],
    ['kasa_config', 'KaSA'],
  ];
  for (const [field, what] of others) if (isSet(j[field])) fail(`${field} (${what}) is not supported: ${merge}`);
  // These inits rewrite the base weights when PEFT creates the adapter, so the factors only fit that rewritten base.
  const init = j.init_lora_weights;
  if (typeof init === 'string' && !['gaussian', 'eva', 'orthogonal'].includes(init)) {
    fail(`init_lora_weights ${JSON.stringify(init)} is not supported (PEFT rewrites the base weights for it): convert the adapter to plain LoRA with PEFT (path_initial_model_for_weight_conversion) or ${merge}`);
  }
}

function positive(v: unknown, field: string, fail: (msg: string) => never): number {
  if (typeof v !== 'number' || !(v > 0)) fail(`${field} must be a positive number, got ${JSON.stringify(v)}`);
  return v as number;
}

function patternMap(v: unknown, field: string, fail: (msg: string) => never): Map<string, number> {
  if (v === undefined || v === null) return new Map();
  if (typeof v !== 'object' || Array.isArray(v)) fail(`${field} must be an object`);
  const out = new Map<string, number>();
  for (const [k, x] of Object.entries(v as object)) out.set(k, positive(x, `${field}[${JSON.stringify(k)}]`, fail));
  return out;
}

/** PEFT's get_pattern_key: the first pattern key that matches the end of the module name at a dot. */
function patternValue(patterns: Map<string, number>, module: string): number | undefined {
  for (const [key, value] of patterns) if (pyRegex(`^(.*\\.)?(${key})$`).test(module)) return value;
  return undefined;
}

interface TargetMatcher {
  selects(module: string): boolean;
  /** Refuses targets GPT-2 does not have or we cannot adapt; calls `adapted` for every selected Conv1D layer. */
  check(config: GPTConfig, prefix: string, adapted: (module: string) => void): void;
}

/** PEFT's check_target_module_exists for target_modules, exclude_modules, layers_to_transform and layers_pattern. */
function targetMatcher(j: Record<string, unknown>, fail: (msg: string) => never): TargetMatcher {
  const raw = j.target_modules;
  let list: string[] | undefined;
  let regex: RegExp | undefined;
  if (typeof raw === 'string') {
    if (raw.toLowerCase() === 'all-linear') list = ['c_attn', 'c_proj', 'c_fc']; // every Conv1D; the output head is excluded
    else regex = pyRegex(`^(?:${raw})$`, fail);
  } else if (raw === undefined || raw === null) list = ['c_attn']; // PEFT's default for gpt2 (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
  else if (Array.isArray(raw) && raw.length && raw.every((t) => typeof t === 'string')) list = raw as string[];
  else fail(`target_modules must be a module name list or a regex, got ${JSON.stringify(raw ?? null)}`);
  const excluded = j.exclude_modules;
  const excludes = (key: string): boolean =>
    typeof excluded === 'string' ? pyRegex(`^(?:${excluded})$`, fail).test(key) : Array.isArray(excluded) && excluded.some((e) => key === e || key.endsWith(`.${String(e)}`));
  const layersToTransform = j.layers_to_transform;
  const layerPatterns = typeof j.layers_pattern === 'string' ? [j.layers_pattern] : Array.isArray(j.layers_pattern) ? (j.layers_pattern as string[]) : [];
  const inLayers = (key: string): boolean => {
    if (layersToTransform === undefined || layersToTransform === null || (Array.isArray(layersToTransform) && layersToTransform.length === 0)) return true;
    const index = (layerPatterns.length ? layerPatterns.map((p) => pyRegex(`^.*?\\.${p}\\.(\\d+)\\.`).exec(key)).find(Boolean) : /^.*?\.[^.]*\.(\d+)\./.exec(key)) ?? undefined;
    if (!index) return false;
    const n = Number(index[1]);
    return Array.isArray(layersToTransform) ? layersToTransform.includes(n) : layersToTransform === n;
  };
  const named = (key: string, t: string) => key === t || key.endsWith(`.${t}`);
  const selects = (key: string): boolean => {
    if (excludes(key)) return false;
    if (regex) return regex.test(key);
    return list!.some((t) => named(key, t)) && inLayers(key);
  };
  return {
    selects,
    check(config, prefix, adapted) {
      const modules = gpt2Modules(config, prefix);
      if (list) {
        const absent = list.filter((t) => !modules.some(([key]) => named(key, t)));
        if (absent.length) fail(`target_modules ${JSON.stringify(absent)} ${absent.length > 1 ? 'are' : 'is'} not in GPT-2 (its linear layers are c_attn, c_proj, c_fc): the adapter is for another architecture`);
      } else if (!modules.some(([key]) => regex!.test(key))) fail(`target_modules ${JSON.stringify(raw)} matches no GPT-2 module: the adapter is for another architecture`);
      for (const [key, kind] of modules) {
        if (!selects(key)) continue;
        if (kind !== 'conv1d') fail(`target_modules selects ${key}, ${kind}: only GPT-2's Conv1D layers (c_attn, c_proj, c_fc) are supported`);
        adapted(key);
      }
    },
  };
}

/** GPT2LMHeadModel's named_modules() (GPT2ForSequenceClassification's for a classifier), with what each is. */
function gpt2Modules(config: GPTConfig, prefix: string): [string, string][] {
  const t = prefix;
  const out: [string, string][] = [
    [`${t}wte`, 'an embedding'],
    [`${t}wpe`, 'an embedding'],
    [`${t}drop`, 'a dropout'],
    [`${t}ln_f`, 'a LayerNorm'],
    [config.labels ? 'score' : 'lm_head', 'the output head'],
  ];
  if (t) out.push([t.slice(0, -1), 'the whole transformer']);
  out.push([`${t}h`, 'the block list']);
  for (let l = 0; l < config.nLayer; l++) {
    const h = `${t}h.${l}`;
    out.push([h, 'a whole block'], [`${h}.ln_1`, 'a LayerNorm'], [`${h}.ln_2`, 'a LayerNorm'], [`${h}.attn`, 'a whole attention module'], [`${h}.mlp`, 'a whole MLP']);
    out.push([`${h}.attn.attn_dropout`, 'a dropout'], [`${h}.attn.resid_dropout`, 'a dropout'], [`${h}.mlp.act`, 'an activation'], [`${h}.mlp.dropout`, 'a dropout']);
    for (const layer of CONV1D_LAYERS) out.push([`${h}.${layer}`, 'conv1d']);
  }
  return out;
}

/** What a key we do not read belongs to, when we can tell. */
function describeKey(key: string): string {
  if (/lora_magnitude_vector/.test(key)) return 'a DoRA magnitude (use_dora), not supported';
  if (/lora_embedding_[AB]/.test(key)) return 'LoRA on an embedding, not supported';
  if (/\.bias$/.test(key)) return 'a trained bias, not supported';
  if (!key.startsWith(KEY_PREFIX)) return `not a PEFT key (PEFT's start with '${KEY_PREFIX}')`;
  return 'not supported';
}

/** A Python `re` pattern as a JS RegExp (the common syntax is the same; named groups differ). */
function pyRegex(source: string, fail?: (msg: string) => never): RegExp {
  try {
    return new RegExp(source.replace(/\(\?P<(\w+)>/g, '(?<$1>').replace(/\(\?P=(\w+)\)/g, '\\k<$1>'));
  } catch (e) {
    if (fail) return fail(`cannot read the pattern ${JSON.stringify(source)}: ${(e as Error).message}`);
    throw e;
  }
}
