// What `--model` names: a folder, or a Hugging Face Hub model id `ORG/NAME[@REVISION]` fetched
// into the shared Hugging Face cache. An existing folder wins over a Hub id of the same spelling.
//
// A Hub model is used from the cache without any request when everything it needs is there:
// config.json and its safetensors (one file, or the index and every shard), or a PEFT adapter's
// two files and its base, and the optional files either present or marked absent (.no_exist).
// Otherwise the Hub is asked for the revision's commit and listing, and only the files a GPT-2
// needs are fetched: config first (to refuse other architectures before gigabytes of weights).
import fs from 'node:fs';
import path from 'node:path';
import {
  cachedCommit,
  cachedSnapshotDir,
  formatRepoSpec,
  HubError,
  hubSettings,
  isFile,
  knownMissing,
  parseRepoSpec,
  RemoteSnapshot,
  repoCacheDir,
  type DownloadEvent,
  type HubSettings,
  type RepoSpec,
} from '../hub/index.js';
import { PROMPT_FILES } from './chat-template.js';
import { shardFiles, weightFiles } from './checkpoint.js';
import { resolveModelDir } from './default-model.js';
import { readJsonObject } from './json-file.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, MAX_NESTING } from './peft-adapter.js';
import { openSafetensors } from './safetensors.js';

export interface ResolvedModel {
  /** What the model is called: the folder's name, or the Hub id as given (`ORG/NAME[@REV]`). */
  id: string;
  dir: string;
}

export interface ResolveOptions {
  /** Download progress (the CLI renders it: src/cli/progress.ts). */
  onProgress?: (e: DownloadEvent) => void;
  /** Ask the Hub even when the cache has the model, re-checking every cached file's hash (`scratchgpt download`). */
  refresh?: boolean;
  /** An adapter for --lora: its own base is not needed (the adapter goes onto another model), so it is not fetched. */
  withoutBase?: boolean;
  /** Instead of the environment's HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, cache folder. */
  hub?: Partial<HubSettings>;
}

const CONFIG = 'config.json';
const WEIGHTS = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
/** Fetched when the repo has them; absent ones are marked so the cache still counts as complete. */
const OPTIONAL_FILES = PROMPT_FILES;
/** An adapter's base may itself be an adapter's…: as deep as the loader follows them. */
const MAX_DEPTH = MAX_NESTING;

export async function resolveModel(spec: string | undefined, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  if (spec === undefined) {
    const dir = resolveModelDir(undefined);
    return { id: path.basename(dir), dir };
  }
  const local = path.resolve(spec);
  if (fs.existsSync(local)) {
    if (!fs.statSync(local).isDirectory()) throw new Error(`--model ${spec} is a file: give a model folder (config.json + model.safetensors) or a Hugging Face model id ORG/NAME`);
    return { id: path.basename(local), dir: local };
  }
  const repo = parseRepoSpec(spec);
  if (!repo) {
    const hint = /^[\w.-]+$/.test(spec) ? ` (Hub models are named ORG/NAME, e.g. openai-community/${spec})` : '';
    throw new Error(`no folder '${spec}'${hint}: give a model folder (config.json + model.safetensors) or a Hugging Face model id ORG/NAME[@REVISION]`);
  }
  try {
    return { id: formatRepoSpec(repo), dir: await fetchHubModel(repo, opts) };
  } catch (e) {
    if (!(e instanceof HubError && e.code === 'repo_not_found' && e.repo === repo.repo)) throw e;
    const s = hubSettings(opts.hub);
    throw new HubError(
      'repo_not_found',
      `'${spec}' is neither a folder here nor a model on ${s.endpoint}${s.token ? ' that HF_TOKEN can read' : ''}: check the path, or the id (ORG/NAME as on ${s.endpoint}/models)${s.token ? '' : '; for a private model set HF_TOKEN'}`,
    );
  }
}

/** The snapshot folder of a Hub model (or adapter, with its base), from the cache or downloaded. */
export async function fetchHubModel(spec: RepoSpec, opts: ResolveOptions = {}, depth = 0): Promise<string> {
  const settings = hubSettings(opts.hub);
  const label = formatRepoSpec(spec);
  const cached = inspectCached(spec, settings, opts.withoutBase ? MAX_DEPTH : depth);
  if (cached.complete && !opts.refresh) return cached.dir!;
  if (settings.offline) {
    if (cached.usable) return cached.dir!;
    throw new HubError(
      'offline_not_cached',
      `HF_HUB_OFFLINE is set and ${label} is not in the Hugging Face cache ${settings.cacheDir} (${cached.why}): unset HF_HUB_OFFLINE to download it, or run 'scratchgpt download ${label}' where there is network, with the same HF_HOME`,
    );
  }
  try {
    return await fetchOnline(spec, settings, opts, depth);
  } catch (e) {
    if (e instanceof HubError && e.code === 'network' && cached.usable) {
      throw new HubError('network', `${e.message}; ${label} is in the cache: set HF_HUB_OFFLINE=1 to use it without the network`);
    }
    throw e;
  }
}

interface CacheState {
  dir?: string;
  /** Config and weights are there: enough to run (offline mode settles for this). */
  usable: boolean;
  /** Nothing left to ask the Hub. */
  complete: boolean;
  why?: string;
}

function inspectCached(spec: RepoSpec, settings: HubSettings, depth: number): CacheState {
  const repoDir = repoCacheDir(settings.cacheDir, spec.repo);
  const commit = cachedCommit(repoDir, spec.revision);
  const dir = cachedSnapshotDir(spec.repo, spec.revision, settings.cacheDir);
  if (!dir || !commit) return { usable: false, complete: false, why: `no snapshot for ${spec.revision ?? 'main'}` };
  const at = (f: string) => path.join(dir, f);
  let usable = false;
  let why = `the snapshot lacks ${CONFIG} or the weights`;
  let base: RepoSpec | undefined;
  if (isFile(at(WEIGHTS)) || isFile(at(INDEX))) {
    usable = isFile(at(CONFIG)) && weightsComplete(dir);
  } else if (isFile(at(ADAPTER_CONFIG))) {
    usable = safetensorsComplete(at(ADAPTER_WEIGHTS));
    why = `the snapshot lacks ${ADAPTER_WEIGHTS}`;
    try {
      if (usable) base = adapterBase(at(ADAPTER_CONFIG), spec.repo);
    } catch {
      usable = false; // an unreadable adapter_config.json: fetch it again
    }
  }
  let complete = usable && OPTIONAL_FILES.every((f) => isFile(at(f)) || knownMissing(repoDir, commit, f));
  if (usable && base && depth < MAX_DEPTH) {
    const b = inspectCached(base, settings, depth + 1);
    usable = b.usable;
    complete &&= b.complete;
    why = `its base ${formatRepoSpec(base)} is not cached`;
  }
  return { dir, usable, complete, ...(usable ? {} : { why }) };
}

/** A safetensors file whose header reads and whose tensors lie inside it (a truncated copy fails). */
function safetensorsComplete(file: string): boolean {
  try {
    openSafetensors(file);
    return true;
  } catch {
    return false;
  }
}

function weightsComplete(dir: string): boolean {
  try {
    return weightFiles(dir).filter((f) => f.endsWith('.safetensors')).every(safetensorsComplete);
  } catch {
    return false; // an unreadable index: fetch again
  }
}

async function fetchOnline(spec: RepoSpec, settings: HubSettings, opts: ResolveOptions, depth: number): Promise<string> {
  const label = formatRepoSpec(spec);
  const snap = await RemoteSnapshot.open(spec.repo, spec.revision, settings);
  const has = (f: string) => snap.files.has(f);
  const optional = OPTIONAL_FILES.filter(has);
  const progress = { onProgress: opts.onProgress };
  if (has(WEIGHTS) || has(INDEX) || (has(CONFIG) && !has(ADAPTER_CONFIG))) {
    if (!has(CONFIG)) throw new HubError('bad_response', `${label} has safetensors but no ${CONFIG}: it is not a transformers model folder; ask its authors, or pick another model`);
    await snap.fetch([CONFIG, ...(!has(WEIGHTS) && has(INDEX) ? [INDEX] : []), ...optional]);
    checkGpt2(readJsonObject(path.join(snap.dir, CONFIG)), label);
    let weights: string[];
    if (has(WEIGHTS)) weights = [WEIGHTS];
    else if (has(INDEX)) {
      weights = shardFiles(readJsonObject(path.join(snap.dir, INDEX)), `${label}: ${INDEX}`);
      const absent = weights.filter((s) => !has(s));
      if (absent.length) throw new HubError('bad_response', `${label}: ${INDEX} names ${absent.join(', ')}, which the repo does not have; pick another revision`);
    } else throw noSafetensors(label, snap.files);
    await snap.fetch(weights, progress);
    snap.markMissing(OPTIONAL_FILES);
    snap.publish();
    return snap.dir;
  }
  if (has(ADAPTER_CONFIG)) {
    if (!has(ADAPTER_WEIGHTS)) {
      throw new HubError(
        'bad_response',
        `${label} is a PEFT adapter without ${ADAPTER_WEIGHTS}${has('adapter_model.bin') ? ' (it has only adapter_model.bin, a PyTorch pickle)' : ''}: scratchgpt reads safetensors only; re-save it with PEFT's save_pretrained (safe_serialization=True)`,
      );
    }
    await snap.fetch([ADAPTER_CONFIG, ...optional]);
    const base = adapterBase(path.join(snap.dir, ADAPTER_CONFIG), label);
    await snap.fetch([ADAPTER_WEIGHTS], progress);
    snap.markMissing(OPTIONAL_FILES);
    if (base && depth < MAX_DEPTH && !opts.withoutBase) await fetchHubModel(base, opts, depth + 1);
    snap.publish();
    return snap.dir;
  }
  throw noSafetensors(label, snap.files);
}

/** The Hub base an adapter names, unless that name is a folder here (which wins, as for --model). */
function adapterBase(configFile: string, label: string): RepoSpec | undefined {
  const j = readJsonObject(configFile);
  const name = j.base_model_name_or_path;
  if (typeof name !== 'string' || !name) throw new HubError('bad_response', `${label}: ${ADAPTER_CONFIG} names no base_model_name_or_path`);
  if (fs.existsSync(path.resolve(name))) return undefined;
  const rev = typeof j.revision === 'string' && j.revision && !name.includes('@') ? `@${j.revision}` : '';
  // Not an id: a path on its author's machine, which the adapter loader reports.
  return parseRepoSpec(name + rev, { legacy: true });
}

function checkGpt2(config: Record<string, unknown>, label: string): void {
  const type = config.model_type;
  const archs = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [];
  if ((type === undefined || type === 'gpt2') && (archs.length === 0 || archs.some((a) => a.startsWith('GPT2')))) return;
  const what = [type !== undefined && `model_type '${String(type)}'`, archs.length && `architectures ${archs.join(', ')}`].filter(Boolean).join(', ');
  throw new HubError('bad_response', `${label} is not a GPT-2 (config.json: ${what}): scratchgpt runs GPT-2 checkpoints only (model_type gpt2), e.g. openai-community/gpt2 or distilbert/distilgpt2`);
}

function noSafetensors(label: string, files: Map<string, unknown>): HubError {
  const names = [...files.keys()];
  if (names.some((f) => /^pytorch_model(-\d+-of-\d+)?\.bin(\.index\.json)?$/.test(f))) {
    return new HubError(
      'bad_response',
      `${label} has only pytorch_model.bin, no model.safetensors: scratchgpt reads safetensors only (pickles can run code); convert it with transformers (from_pretrained, then save_pretrained) and pass the folder, or use a revision with safetensors (the Hub's conversion bot opens one as ${label.split('@')[0]}@refs/pr/N)`,
    );
  }
  if (names.some((f) => /^(tf_model\.h5|flax_model\.msgpack)$/.test(f))) {
    return new HubError('bad_response', `${label} has only TensorFlow or Flax weights, no model.safetensors: convert it with transformers (save_pretrained) and pass the folder`);
  }
  return new HubError('bad_response', `${label} has no ${CONFIG} with model.safetensors (nor a PEFT adapter): it is not a transformers GPT-2 model repo`);
}
