// Hugging Face GPT-2 checkpoint folders: config.json + model.safetensors, or the sharded form,
// model.safetensors.index.json + the shards its weight_map names (each tensor read in place).
// A PEFT LoRA adapter folder loads as its base with the adapter merged in (peft-adapter.ts).
//
// Loading maps the file's tensors onto parameterSpecs(config) by name. Checkpoints found in
// the wild differ in ways that do not change the model, and all of them are accepted:
//   - keys with or without the `transformer.` prefix (GPT2LMHeadModel vs GPT2Model saves);
//   - `lm_head.weight` present or not: GPT-2 ties the output head to wte, so it is ignored
//     (its shape is checked) unless config.json has tie_word_embeddings false, in which case it
//     is the model's own output head and must be there;
//   - `h.N.attn.bias` (the causal mask) and `h.N.attn.masked_bias` buffers, in any dtype and
//     rank, saved by older transformers versions: ignored, the graphs build their own mask;
//   - an all-zero `c_attn.bias` when config.json says qkv_bias is false (we write one so that
//     transformers, which always expects it, can load our no-bias models).
// A classifier (config.json's architectures: GPT2ForSequenceClassification) also has its head
// `score.weight`, outside the `transformer.` prefix, and no output head tied to wte.
// Anything else is an error, since silently dropping a tensor would mean running a
// different model than the one saved.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hasAlpacaTemplate, writeAlpacaChatFiles } from './chat-template.js';
import { fromHFConfig, toHFConfig, type GPTConfig } from './config.js';
import { writeFileAtomic } from './durable.js';
import { readJsonObject } from './json-file.js';
import { isPeftAdapterFolder, mergePeftAdapter, modelFolders, readPeftAdapter } from './peft-adapter.js';
import { CLASSIFIER_HEAD, LM_HEAD, parameterSpecs } from './gpt.js';
import { numel, type Params } from './params.js';
import { openSafetensors, readTensorF32, writeSafetensors, type SafetensorsFile, type TensorInfo } from './safetensors.js';

/**
 * Where one parameter's float32 values are. 'file' sources are raw little-endian float32
 * bytes inside a file (ORT can memory-map them as external data, so nothing is read up
 * front); converted (F16/BF16) tensors live in memory. The offset may be unaligned: the
 * hub's gpt2 file has an unpadded header.
 */
export type WeightSource =
  | { kind: 'file'; path: string; offset: number; length: number; shape: number[] }
  | { kind: 'memory'; data: Float32Array; shape: number[] };

export interface Checkpoint {
  config: GPTConfig;
  dir: string;
  /** One entry per parameterSpecs(config) name (no `transformer.` prefix), in that order. */
  weights: Map<string, WeightSource>;
}

export interface LoadOptions {
  /** Called after each parameter is resolved (conversions of F16/BF16 files take a while). */
  onProgress?: (done: number, total: number) => void;
  /** A PEFT LoRA adapter folder to merge into `dir`'s weights (instead of into the base it names). */
  lora?: string;
}

const PREFIX = 'transformer.';
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

export function loadCheckpoint(dir: string, opts: LoadOptions = {}): Checkpoint {
  if (opts.lora !== undefined || isPeftAdapterFolder(dir)) return loadAdapted(dir, opts);
  const configPath = path.join(dir, 'config.json');
  const weightsPath = path.join(dir, 'model.safetensors');
  const config = fromHFConfig(readJson(configPath, dir), configPath);
  // Saving again (convert, a second finetune) must keep the template the folder chats in.
  if (!config.chatTemplate && hasAlpacaTemplate(dir)) config.chatTemplate = 'alpaca';
  const indexPath = path.join(dir, SHARD_INDEX);
  const sharded = !fs.existsSync(weightsPath) && fs.existsSync(indexPath);
  if (!fs.existsSync(weightsPath) && !sharded) {
    const hint = fs.existsSync(path.join(dir, 'pytorch_model.bin')) ? ' (only pytorch_model.bin is there: convert it to safetensors)' : '';
    throw new Error(`checkpoint ${dir}: missing ${weightsPath}${hint}`);
  }
  const where = sharded ? indexPath : weightsPath;
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  const files = sharded ? openShards(dir, indexPath) : [openSafetensors(weightsPath)];
  // ORT maps external data from the real file: a Hub cache's snapshot entries are symlinks.
  const realPaths = new Map(files.map((f) => [f, fs.realpathSync(f.path)]));

  // Strip the prefix, refusing files where both spellings of one name appear.
  const byName = new Map<string, { key: string; info: TensorInfo; file: SafetensorsFile }>();
  for (const file of files) {
    for (const [key, info] of file.tensors) {
      const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
      const other = byName.get(name);
      if (other) fail(`tensor '${name}' appears twice, as '${other.key}' and '${key}'${sharded ? ` (in ${path.basename(other.file.path)} and ${path.basename(file.path)})` : ''}`);
      byName.set(name, { key, info, file });
    }
  }

  const C = config.nEmbd;
  const specs = parameterSpecs(config);
  const expected = new Map(specs.map((s) => [s.name, s.shape]));
  for (const [name, { key, info, file }] of byName) {
    if (expected.has(name)) continue;
    if (name === LM_HEAD) { // expected (and so handled above) when untied
      if (!sameShape(info.shape, [config.vocabSize, C])) {
        fail(`tensor '${key}' has shape ${fmt(info.shape)}, expected ${fmt([config.vocabSize, C])} (the output head tied to wte)`);
      }
      continue;
    }
    const buffer = /^h\.(\d+)\.attn\.(bias|masked_bias)$/.exec(name);
    if (buffer && Number(buffer[1]) < config.nLayer) continue;
    const qkvBias = /^h\.(\d+)\.attn\.c_attn\.bias$/.exec(name);
    if (qkvBias && !config.qkvBias && Number(qkvBias[1]) < config.nLayer) {
      if (!sameShape(info.shape, [3 * C])) fail(`tensor '${key}' has shape ${fmt(info.shape)}, expected ${fmt([3 * C])}`);
      if (!FLOAT_DTYPES.has(info.dtype) || readTensorF32(file, key).some((v) => v !== 0)) {
        fail(`tensor '${key}' is not all zeros, but config.json has qkv_bias false: the model would change if it were dropped`);
      }
      continue;
    }
    if (name === CLASSIFIER_HEAD) fail(`tensor '${key}' is a classification head, but config.json's architectures does not name GPT2ForSequenceClassification`);
    fail(`unexpected tensor '${key}' (not a GPT-2 parameter for n_layer=${config.nLayer}; check config.json)`);
  }

  const weights = new Map<string, WeightSource>();
  specs.forEach((spec, i) => {
    const found = byName.get(spec.name);
    if (!found) {
      const why = spec.name === LM_HEAD ? '; config.json has tie_word_embeddings false, so the output head is not wte' : '';
      return fail(`missing tensor '${spec.name}' (looked for '${spec.name}' and '${PREFIX}${spec.name}'${why})`);
    }
    const { key, info, file } = found;
    if (!sameShape(info.shape, spec.shape)) fail(`tensor '${key}' has shape ${fmt(info.shape)}, expected ${fmt(spec.shape)}`);
    if (!FLOAT_DTYPES.has(info.dtype)) fail(`tensor '${key}' has dtype ${info.dtype}, expected F32, F16 or BF16`);
    weights.set(
      spec.name,
      info.dtype === 'F32'
        ? { kind: 'file', path: realPaths.get(file)!, offset: info.begin, length: info.end - info.begin, shape: [...spec.shape] }
        : { kind: 'memory', data: readTensorF32(file, key), shape: [...spec.shape] },
    );
    opts.onProgress?.(i + 1, specs.length);
  });
  return { config, dir, weights };
}

const SHARD_INDEX = 'model.safetensors.index.json';

/** A full model folder's weight files: model.safetensors, or the shard index and the shards it names. */
export function weightFiles(dir: string): string[] {
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, SHARD_INDEX);
  if (fs.existsSync(single) || !fs.existsSync(index)) return [single];
  return [index, ...shardFiles(readJsonObject(index), index).map((s) => path.join(dir, s))];
}

/** The shard files an index's weight_map names (each once, in order): plain names beside the index. */
export function shardFiles(index: Record<string, unknown>, where: string): string[] {
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${where}: no weight_map object`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== 'string' || !s.endsWith('.safetensors') || /[/\\]/.test(s) || s.startsWith('.')) {
      throw new Error(`${where}: weight_map names ${JSON.stringify(s)}, not a .safetensors file beside the index`);
    }
  }
  return shards as string[];
}

/** Opens every shard and checks it holds exactly the tensors the index assigns to it. */
function openShards(dir: string, indexPath: string): SafetensorsFile[] {
  const index = readJson(indexPath, dir);
  const map = index.weight_map as Record<string, string>;
  return shardFiles(index, indexPath).map((shard) => {
    const file = openSafetensors(path.join(dir, shard));
    for (const key of file.tensors.keys()) {
      if (map[key] !== shard) throw new Error(`${indexPath}: ${shard} holds tensor '${key}', which the weight_map ${key in map ? `puts in ${map[key]}` : 'does not list'}`);
    }
    for (const [key, s] of Object.entries(map)) {
      if (s === shard && !file.tensors.has(key)) throw new Error(`${indexPath}: the weight_map puts tensor '${key}' in ${shard}, which does not hold it`);
    }
    return file;
  });
}

/**
 * A PEFT LoRA adapter (peft-adapter.ts) merged into its base, innermost adapter first when
 * adapters nest: the base's config, its untouched tensors read in place, the adapted ones in memory.
 */
function loadAdapted(dir: string, opts: LoadOptions): Checkpoint {
  const folders = modelFolders(dir, opts.lora);
  const adapters = folders.slice(0, -1);
  const base = loadCheckpoint(folders.at(-1)!, { onProgress: opts.onProgress });
  const config = { ...base.config };
  for (const adapterDir of adapters.toReversed()) {
    const merged = mergePeftAdapter(config, readPeftAdapter(adapterDir), (names) => materialize(new Map(names.map((n) => [n, base.weights.get(n)!]))));
    for (const [name, t] of merged) base.weights.set(name, { kind: 'memory', data: t.data, shape: t.shape });
  }
  // The adapter's chat template is the one the merged model was trained on.
  if (!config.chatTemplate && adapters.some((d) => hasAlpacaTemplate(d))) config.chatTemplate = 'alpaca';
  return { config, dir: adapters[0]!, weights: base.weights };
}

function readJson(file: string, dir: string): Record<string, unknown> {
  if (!fs.existsSync(file)) throw new Error(`checkpoint ${dir}: missing ${file}`);
  return readJsonObject(file);
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

export interface SaveOptions {
  /** Storage dtype of model.safetensors (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
}

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/**
 * Write a folder that both loadCheckpoint and transformers' GPT2LMHeadModel.from_pretrained
 * (GPT2ForSequenceClassification for a config with labels) load: keys carry the `transformer.`
 * prefix as save_pretrained writes them (the classifier's `score.weight` and an untied
 * `lm_head.weight` do not), a tied lm_head is left out (it is wte). Each file is replaced atomically; the weights go first, so a crash between
 * the two writes leaves new weights with the old config rather than the reverse.
 */
export function saveCheckpoint(dir: string, config: GPTConfig, params: Params, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const specs = parameterSpecs(config);
  const known = new Set(specs.map((s) => s.name));
  for (const name of params.keys()) {
    if (!known.has(name)) throw new Error(`saveCheckpoint ${dir}: parameter '${name}' is not part of this config's GPT-2`);
  }
  const C = config.nEmbd;
  const tensors: Parameters<typeof writeSafetensors>[1] = [];
  for (const spec of specs) {
    const t = params.get(spec.name);
    if (!t) throw new Error(`saveCheckpoint ${dir}: missing parameter '${spec.name}'`);
    if (!sameShape(t.shape, spec.shape) || t.data.length !== numel(spec.shape)) {
      throw new Error(`saveCheckpoint ${dir}: parameter '${spec.name}' has shape ${fmt(t.shape)} (${t.data.length} values), expected ${fmt(spec.shape)}`);
    }
    const outside = spec.name === CLASSIFIER_HEAD || spec.name === LM_HEAD; // heads sit outside `transformer.`
    tensors.push({ name: outside ? spec.name : PREFIX + spec.name, dtype, shape: spec.shape, data: t.data });
    if (!config.qkvBias && spec.name.endsWith('.attn.c_attn.weight')) {
      // transformers' GPT-2 always has a c_attn bias; zeros make it the same model.
      const name = spec.name.replace(/weight$/, 'bias');
      tensors.push({ name: PREFIX + name, dtype, shape: [3 * C], data: new Float32Array(3 * C) });
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });
  if (config.chatTemplate === 'alpaca') writeAlpacaChatFiles(dir, config.contextLength);
  const hf = { ...toHFConfig(config), torch_dtype: TORCH_DTYPE[dtype] };
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(hf, null, 2) + '\n');
}

/** Read every weight into memory as float32 (for training and tests). */
export function materialize(weights: Map<string, WeightSource>): Params {
  const params: Params = new Map();
  const fds = new Map<string, number>(); // one descriptor per file, not per tensor
  try {
    for (const [name, w] of weights) {
      if (w.kind === 'memory') {
        params.set(name, { shape: [...w.shape], data: w.data });
        continue;
      }
      let fd = fds.get(w.path);
      if (fd === undefined) fds.set(w.path, (fd = fs.openSync(w.path, 'r')));
      // A fresh ArrayBuffer is aligned whatever the (possibly odd) file offset was.
      const data = new Float32Array(w.length / 4);
      const bytes = new Uint8Array(data.buffer);
      let done = 0;
      while (done < w.length) {
        const n = fs.readSync(fd, bytes, done, Math.min(w.length - done, 1 << 30), w.offset + done);
        if (n === 0) throw new Error(`${w.path}: unexpected end of file reading '${name}' at byte ${w.offset + done}`);
        done += n;
      }
      params.set(name, { shape: [...w.shape], data });
    }
  } finally {
    for (const fd of fds.values()) fs.closeSync(fd);
  }
  return params;
}
