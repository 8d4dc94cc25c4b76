import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, materialize, saveCheckpoint } from '../src/model/checkpoint.js';
import { toHFConfig, type GPTConfig } from '../src/model/config.js';
import { parameterSpecs, randomInit } from '../src/model/gpt.js';
import type { Params } from '../src/model/params.js';
import { Rng } from '../src/model/rng.js';
import { ModelSession } from '../src/model/session.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, writeSafetensorsRaw, type RawTensor } from '../src/model/safetensors.js';

const tiny: GPTConfig = { vocabSize: 64, contextLength: 16, nEmbd: 8, nLayer: 2, nHead: 2, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'checkpoint-test-'));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});
let counter = 0;
const freshDir = (): string => path.join(root, `ckpt${counter++}`);

/** randomInit leaves biases at 0 and LayerNorm at 1; fill every tensor so that mix-ups show. */
function distinctParams(config: GPTConfig, seed = 1): Params {
  const rng = new Rng(seed);
  const params = randomInit(config, seed);
  for (const t of params.values()) for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal();
  return params;
}

const f32Bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

interface Layout {
  prefix: boolean;
  lmHead: boolean;
  mask: 'none' | 'F32' | 'U8' | 'BOOL';
  maskedBias: boolean;
  alignHeader: boolean;
  /** Extra metadata text, to move the data region's start. */
  pad?: string;
}

/** Write a checkpoint the way some other tool would have, to test what we accept. */
function writeLayout(dir: string, config: GPTConfig, params: Params, layout: Layout): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHFConfig(config)));
  const T = config.contextLength;
  const p = layout.prefix ? 'transformer.' : '';
  const tensors: RawTensor[] = [];
  if (layout.lmHead) tensors.push({ name: 'lm_head.weight', dtype: 'F32', shape: [config.vocabSize, config.nEmbd], data: f32Bytes(params.get('wte.weight')!.data) });
  for (const spec of parameterSpecs(config)) {
    tensors.push({ name: p + spec.name, dtype: 'F32', shape: spec.shape, data: f32Bytes(params.get(spec.name)!.data) });
    const layer = /^h\.(\d+)\.ln_1\.weight$/.exec(spec.name)?.[1];
    if (layer === undefined) continue;
    const tril = new Uint8Array(T * T).map((_, i) => (i % T <= Math.floor(i / T) ? 1 : 0));
    if (layout.mask === 'F32') tensors.push({ name: `${p}h.${layer}.attn.bias`, dtype: 'F32', shape: [1, 1, T, T], data: f32Bytes(Float32Array.from(tril)) });
    if (layout.mask === 'U8' || layout.mask === 'BOOL') tensors.push({ name: `${p}h.${layer}.attn.bias`, dtype: layout.mask, shape: [1, 1, T, T], data: tril });
    if (layout.maskedBias) tensors.push({ name: `${p}h.${layer}.attn.masked_bias`, dtype: 'F32', shape: [], data: f32Bytes(new Float32Array([-1e4])) });
  }
  // Sorted by name, as the Python library orders its output: a different order from ours.
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
  const file = path.join(dir, 'model.safetensors');
  writeSafetensorsRaw(file, tensors, { metadata: { format: 'pt', ...(layout.pad ? { pad: layout.pad } : {}) }, alignHeader: layout.alignHeader });
  return file;
}

function expectSameParams(actual: Params, expected: Params): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, t] of expected) {
    expect(actual.get(name)!.shape, name).toEqual(t.shape);
    expect(actual.get(name)!.data, name).toEqual(t.data);
  }
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('saveCheckpoint / loadCheckpoint', () => {
  it('round-trips F32 exactly, with weights pointing into the file', () => {
    const dir = freshDir();
    const params = distinctParams(tiny);
    saveCheckpoint(dir, tiny, params);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']); // no temp files left
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ n_positions: 16, n_embd: 8, torch_dtype: 'float32' });

    const progress: [number, number][] = [];
    const ck = loadCheckpoint(dir, { onProgress: (d, t) => progress.push([d, t]) });
    expect(ck.config).toEqual({ ...tiny, chatTemplate: undefined });
    expect(ck.dir).toBe(dir);
    const n = parameterSpecs(tiny).length;
    expect(progress.length).toBe(n);
    expect(progress.at(-1)).toEqual([n, n]);
    for (const w of ck.weights.values()) {
      expect(w.kind).toBe('file');
      if (w.kind === 'file') expect(w.path).toBe(path.join(dir, 'model.safetensors'));
    }
    // 'file' offsets really are the raw float32 bytes.
    const wte = ck.weights.get('wte.weight')!;
    if (wte.kind !== 'file') throw new Error('expected a file source');
    const raw = fs.readFileSync(wte.path).subarray(wte.offset, wte.offset + wte.length);
    expect(new Float32Array(Uint8Array.from(raw).buffer)).toEqual(params.get('wte.weight')!.data);
    expectSameParams(materialize(ck.weights), params);
  });

  it('writes transformer.-prefixed keys and no lm_head, like save_pretrained', () => {
    const dir = freshDir();
    saveCheckpoint(dir, tiny, distinctParams(tiny));
    const buf = fs.readFileSync(path.join(dir, 'model.safetensors'));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    expect(header.__metadata__).toEqual({ format: 'pt' });
    const keys = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(keys.every((k) => k.startsWith('transformer.'))).toBe(true);
    expect(keys).toHaveLength(parameterSpecs(tiny).length);
    expect(keys.some((k) => k.includes('lm_head'))).toBe(false); // tied: the head is wte
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).tie_word_embeddings).toBe(true);
    expect((8 + n) % 8).toBe(0);
  });

  it.each(['F16', 'BF16'] as const)('round-trips %s within its precision, as in-memory weights', (dtype) => {
    const dir = freshDir();
    const params = distinctParams(tiny);
    saveCheckpoint(dir, tiny, params, { dtype });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype).toBe(dtype === 'F16' ? 'float16' : 'bfloat16');
    const ck = loadCheckpoint(dir);
    for (const w of ck.weights.values()) expect(w.kind).toBe('memory');
    const loaded = materialize(ck.weights);
    const round = dtype === 'F16' ? (v: number) => f16ToF32(f32ToF16(v)) : (v: number) => bf16ToF32(f32ToBf16(v));
    for (const [name, t] of params) {
      expect(loaded.get(name)!.shape).toEqual(t.shape);
      expect(loaded.get(name)!.data, name).toEqual(t.data.map(round));
    }
  });

  it('creates the directory and replaces an existing checkpoint', () => {
    const dir = path.join(freshDir(), 'nested', 'deeper');
    saveCheckpoint(dir, tiny, distinctParams(tiny, 1));
    const second = distinctParams(tiny, 2);
    saveCheckpoint(dir, tiny, second);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    expectSameParams(materialize(loadCheckpoint(dir).weights), second);
  });

  it('writes zero c_attn biases when qkv_bias is off, and ignores them on load', () => {
    const config = { ...tiny, qkvBias: false };
    const dir = freshDir();
    const params = distinctParams(config);
    saveCheckpoint(dir, config, params);
    const buf = fs.readFileSync(path.join(dir, 'model.safetensors'));
    const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString());
    expect(header['transformer.h.0.attn.c_attn.bias'].shape).toEqual([24]);
    const ck = loadCheckpoint(dir);
    expect(ck.config.qkvBias).toBe(false);
    expect(ck.weights.has('h.0.attn.c_attn.bias')).toBe(false);
    expectSameParams(materialize(ck.weights), params);
  });

  it('refuses a nonzero c_attn bias when qkv_bias is off', () => {
    const dir = freshDir();
    const file = writeLayout(dir, tiny, distinctParams(tiny), { prefix: true, lmHead: false, mask: 'none', maskedBias: false, alignHeader: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...toHFConfig(tiny), qkv_bias: false }));
    expect(errorOf(() => loadCheckpoint(dir))).toBe(
      `${file}: tensor 'transformer.h.0.attn.c_attn.bias' is not all zeros, but config.json has qkv_bias false: the model would change if it were dropped`,
    );
  });

  it('refuses parameters that do not fit the config', () => {
    const params = distinctParams(tiny);
    params.set('extra.weight', { shape: [1], data: new Float32Array(1) });
    expect(() => saveCheckpoint(freshDir(), tiny, params)).toThrow(/'extra.weight' is not part/);
    params.delete('extra.weight');
    params.set('wpe.weight', { shape: [8, 8], data: new Float32Array(64) });
    expect(() => saveCheckpoint(freshDir(), tiny, params)).toThrow(/'wpe.weight' has shape \[8, 8\] \(64 values\), expected \[16, 8\]/);
    params.delete('wpe.weight');
    expect(() => saveCheckpoint(freshDir(), tiny, params)).toThrow(/missing parameter 'wpe.weight'/);
  });
});

/** Logits of every position for a fixed prompt, through ORT, for a checkpoint folder. */
async function logitsOf(dir: string): Promise<Float32Array> {
  const model = await ModelSession.load(dir);
  const [logits] = await model.forward([{ slot: 0, tokens: [1, 5, 9, 63, 0, 2], start: 0, logits: 'all' }]);
  await model.close();
  return logits!;
}

describe('untied output head (tie_word_embeddings false)', () => {
  const untied: GPTConfig = { ...tiny, tieWordEmbeddings: false };
  const keysOf = (file: string): string[] => {
    const buf = fs.readFileSync(file);
    return Object.keys(JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString())).filter((k) => k !== '__metadata__');
  };

  it('saves lm_head.weight (unprefixed) and tie_word_embeddings false, and loads them to the same logits', async () => {
    const dir = freshDir();
    const params = distinctParams(untied);
    saveCheckpoint(dir, untied, params);
    const keys = keysOf(path.join(dir, 'model.safetensors'));
    expect(keys).toContain('lm_head.weight');
    expect(keys.filter((k) => !k.startsWith('transformer.'))).toEqual(['lm_head.weight']);
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ tie_word_embeddings: false, architectures: ['GPT2LMHeadModel'] });

    const ck = loadCheckpoint(dir);
    expect(ck.config).toEqual({ ...untied, chatTemplate: undefined });
    expect([...ck.weights.keys()].at(-1)).toBe('lm_head.weight');
    expectSameParams(materialize(ck.weights), params);

    const tokens = [3, 1, 4, 1, 5, 9];
    const memory = await ModelSession.create(untied, new Map([...params].map(([k, t]) => [k, { kind: 'memory' as const, data: t.data, shape: t.shape }])));
    const loaded = await ModelSession.load(dir);
    const [a] = await memory.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]);
    const [b] = await loaded.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]);
    expect(b).toEqual(a);
    // and the head really is lm_head: the same weights read as a tied model give other logits
    const tied = await ModelSession.create(tiny, new Map([...params].filter(([k]) => k !== 'lm_head.weight').map(([k, t]) => [k, { kind: 'memory' as const, data: t.data, shape: t.shape }])));
    const [c] = await tied.forward([{ slot: 0, tokens, start: 0, logits: 'all' }]);
    expect(c).not.toEqual(a);
    await Promise.all([memory.close(), loaded.close(), tied.close()]);
  });

  it('a config.json without tie_word_embeddings, or with true, stays tied', () => {
    for (const tie of [undefined, true]) {
      const dir = freshDir();
      saveCheckpoint(dir, tiny, distinctParams(tiny));
      const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      if (tie === undefined) delete hf.tie_word_embeddings;
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hf));
      const ck = loadCheckpoint(dir);
      expect(ck.config.tieWordEmbeddings).toBeUndefined();
      expect(ck.weights.has('lm_head.weight')).toBe(false);
    }
  });

  it('names a missing lm_head when config.json unties it', () => {
    const dir = freshDir();
    saveCheckpoint(dir, tiny, distinctParams(tiny));
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...hf, tie_word_embeddings: false }));
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(/missing tensor 'lm_head.weight' .*tie_word_embeddings false/);
  });

  it('loads an untied lm_head under either key spelling, and checks its shape', () => {
    const params = distinctParams(untied);
    const dir = freshDir();
    writeLayout(dir, untied, params, { prefix: false, lmHead: false, mask: 'F32', maskedBias: true, alignHeader: false });
    expectSameParams(materialize(loadCheckpoint(dir).weights), params);
    const bad = freshDir();
    fs.mkdirSync(bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify(toHFConfig(untied)));
    writeSafetensorsRaw(
      path.join(bad, 'model.safetensors'),
      parameterSpecs(untied).map((s) => {
        const shape = s.name === 'lm_head.weight' ? [s.shape[1]!, s.shape[0]!] : s.shape;
        return { name: s.name, dtype: 'F32', shape, data: f32Bytes(params.get(s.name)!.data) };
      }),
    );
    expect(errorOf(() => loadCheckpoint(bad))).toMatch(/tensor 'lm_head.weight' has shape \[8, 64\], expected \[64, 8\]/);
  });
});

describe('checkpoint layouts found in the wild', () => {
  const params = distinctParams(tiny, 7);
  let expected: Float32Array;
  beforeAll(async () => {
    const dir = freshDir();
    saveCheckpoint(dir, tiny, params);
    expected = await logitsOf(dir);
  });
  const layouts: Layout[] = [];
  for (const prefix of [true, false])
    for (const lmHead of [true, false])
      for (const mask of ['none', 'F32', 'U8', 'BOOL'] as const)
        for (const maskedBias of [true, false]) layouts.push({ prefix, lmHead, mask, maskedBias, alignHeader: mask !== 'U8' });

  it.each(layouts)('loads %o to the same parameters and logits', async (layout) => {
    const dir = freshDir();
    writeLayout(dir, tiny, params, layout);
    const ck = loadCheckpoint(dir);
    expect([...ck.weights.keys()]).toEqual(parameterSpecs(tiny).map((s) => s.name));
    expectSameParams(materialize(ck.weights), params);
    expect(await logitsOf(dir)).toEqual(expected);
  });

  it('loads F16 and BF16 checkpoints to the logits of their rounded weights', async () => {
    for (const [dtype, round] of [['F16', (x: number) => f16ToF32(f32ToF16(x))], ['BF16', (x: number) => bf16ToF32(f32ToBf16(x))]] as const) {
      const rounded: Params = new Map([...params].map(([k, t]) => [k, { shape: t.shape, data: t.data.map(round) }]));
      const [half, ref] = [freshDir(), freshDir()];
      saveCheckpoint(half, tiny, params, { dtype });
      saveCheckpoint(ref, tiny, rounded);
      expect(await logitsOf(half), dtype).toEqual(await logitsOf(ref));
    }
  });

  it('loads the hub gpt2 layout: unpadded header, unprefixed keys, uint8-era buffers', async () => {
    const dir = freshDir();
    // Lengthen the metadata until the data region starts at an offset that is not a multiple of 4.
    for (let pad = ''; ; pad += 'x') {
      const file = writeLayout(dir, tiny, params, { prefix: false, lmHead: false, mask: 'F32', maskedBias: true, alignHeader: false, pad });
      if ((8 + Number(fs.readFileSync(file).readBigUInt64LE(0))) % 4 !== 0) break;
    }
    const ck = loadCheckpoint(dir);
    const offsets = [...ck.weights.values()].map((w) => (w.kind === 'file' ? w.offset : 0));
    expect(offsets.every((o) => o % 4 !== 0)).toBe(true); // every float tensor is misaligned in the file
    expectSameParams(materialize(ck.weights), params);
    expect(await logitsOf(dir)).toEqual(expected); // ORT maps the unaligned tensors straight from the file
  });
});

describe('checkpoint errors', () => {
  const base: Layout = { prefix: true, lmHead: false, mask: 'none', maskedBias: false, alignHeader: true };

  it('names a missing config.json or model.safetensors', () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    expect(errorOf(() => loadCheckpoint(dir))).toBe(`checkpoint ${dir}: missing ${path.join(dir, 'config.json')}`);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHFConfig(tiny)));
    expect(errorOf(() => loadCheckpoint(dir))).toBe(`checkpoint ${dir}: missing ${path.join(dir, 'model.safetensors')}`);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"n_embd": ');
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(new RegExp(`^${escape(path.join(dir, 'config.json'))}: not valid JSON`));
  });

  it('names a missing tensor', () => {
    const dir = freshDir();
    const params = distinctParams(tiny);
    const file = writeLayout(dir, { ...tiny, nLayer: 1 }, params, base); // layer 1 never written
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHFConfig(tiny)));
    expect(errorOf(() => loadCheckpoint(dir))).toBe(
      `${file}: missing tensor 'h.1.ln_1.weight' (looked for 'h.1.ln_1.weight' and 'transformer.h.1.ln_1.weight')`,
    );
  });

  it('names an unexpected tensor', () => {
    const dir = freshDir();
    const params = distinctParams(tiny);
    const file = writeLayout(dir, tiny, params, base);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHFConfig({ ...tiny, nLayer: 1 })));
    expect(errorOf(() => loadCheckpoint(dir))).toBe(
      `${file}: unexpected tensor 'transformer.h.1.attn.c_attn.bias' (not a GPT-2 parameter for n_layer=1; check config.json)`,
    );
  });

  it('names a tensor with the wrong shape', () => {
    const dir = freshDir();
    const file = writeLayout(dir, tiny, distinctParams(tiny), base);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHFConfig({ ...tiny, contextLength: 32 })));
    expect(errorOf(() => loadCheckpoint(dir))).toBe(`${file}: tensor 'transformer.wpe.weight' has shape [16, 8], expected [32, 8]`);
  });

  it('checks the shape of an lm_head it ignores', () => {
    const dir = freshDir();
    const file = writeLayout(dir, tiny, distinctParams(tiny), base);
    writeSafetensorsRaw(file, [{ name: 'lm_head.weight', dtype: 'F32', shape: [8, 64], data: new Uint8Array(2048) }]);
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(/tensor 'lm_head.weight' has shape \[8, 64\], expected \[64, 8\]/);
  });

  it('refuses a name given both with and without the prefix', () => {
    const dir = freshDir();
    const file = writeLayout(dir, tiny, distinctParams(tiny), base);
    fs.renameSync(file, file + '.orig');
    writeSafetensorsRaw(file, [
      { name: 'transformer.wte.weight', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
      { name: 'wte.weight', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
    ]);
    expect(errorOf(() => loadCheckpoint(dir))).toBe(`${file}: tensor 'wte.weight' appears twice, as 'transformer.wte.weight' and 'wte.weight'`);
  });

  it('refuses integer weights', () => {
    const dir = freshDir();
    const params = distinctParams(tiny);
    const file = writeLayout(dir, tiny, params, base);
    writeSafetensorsRaw(
      file,
      parameterSpecs(tiny).map((s) => ({ name: s.name, dtype: 'I32', shape: s.shape, data: f32Bytes(params.get(s.name)!.data) })),
    );
    expect(errorOf(() => loadCheckpoint(dir))).toBe(`${file}: tensor 'wte.weight' has dtype I32, expected F32, F16 or BF16`);
  });

  it('passes on header errors: corrupt JSON, truncation, overlaps', () => {
    const dir = freshDir();
    const file = writeLayout(dir, tiny, distinctParams(tiny), base);
    const good = fs.readFileSync(file);

    const corrupt = Buffer.from(good);
    corrupt[8] = 0x78; // 'x' where the header's opening brace was
    fs.writeFileSync(file, corrupt);
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(new RegExp(`^${escape(file)}: header is not valid JSON`));

    fs.writeFileSync(file, good.subarray(0, good.length - 3)); // the last tensor (names are sorted) loses 3 bytes
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(
      new RegExp(`^${escape(file)}: tensor 'transformer.wte.weight' ends at byte ${good.length} but the file has only ${good.length - 3} bytes \\(truncated\\?\\)$`),
    );

    const n = Number(good.readBigUInt64LE(0));
    const header = JSON.parse(good.subarray(8, 8 + n).toString());
    header['transformer.ln_f.bias'].data_offsets = header['transformer.ln_f.weight'].data_offsets; // same shape, same bytes
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([len, json, good.subarray(8 + n)]));
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(
      new RegExp(`^${escape(file)}: tensors 'transformer.ln_f.(weight|bias)' .* and 'transformer.ln_f.(weight|bias)' .* overlap$`),
    );
  });
});

describe('randomInit', () => {
  const config: GPTConfig = { ...tiny, vocabSize: 256, nEmbd: 64, nLayer: 4, nHead: 4 };
  const std = (a: Float32Array): number => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);

  it('follows GPT-2 initialisation', () => {
    const p = randomInit(config, 42);
    expect([...p.keys()]).toEqual(parameterSpecs(config).map((s) => s.name));
    for (const spec of parameterSpecs(config)) expect(p.get(spec.name)!.shape).toEqual(spec.shape);
    expect(std(p.get('wte.weight')!.data)).toBeCloseTo(0.02, 3);
    expect(std(p.get('h.0.attn.c_attn.weight')!.data)).toBeCloseTo(0.02, 3);
    expect(std(p.get('h.1.mlp.c_fc.weight')!.data)).toBeCloseTo(0.02, 3);
    const resid = 0.02 / Math.sqrt(8);
    expect(std(p.get('h.0.attn.c_proj.weight')!.data) / resid).toBeCloseTo(1, 1);
    expect(std(p.get('h.3.mlp.c_proj.weight')!.data) / resid).toBeCloseTo(1, 1);
    expect(p.get('ln_f.weight')!.data.every((v) => v === 1)).toBe(true);
    expect(p.get('h.2.ln_1.weight')!.data.every((v) => v === 1)).toBe(true);
    for (const name of ['ln_f.bias', 'h.0.ln_2.bias', 'h.0.attn.c_attn.bias', 'h.1.mlp.c_proj.bias']) {
      expect(p.get(name)!.data.every((v) => v === 0), name).toBe(true);
    }
  });

  it('is deterministic for a seed and differs across seeds', () => {
    expectSameParams(randomInit(tiny, 3), randomInit(tiny, 3));
    expect(randomInit(tiny, 3).get('wte.weight')!.data).not.toEqual(randomInit(tiny, 4).get('wte.weight')!.data);
    const untied: GPTConfig = { ...tiny, tieWordEmbeddings: false };
    for (const scheme of ['gpt2', 'pytorch'] as const) {
      expectSameParams(randomInit(untied, 3, scheme), randomInit(untied, 3, scheme));
      expect(randomInit(untied, 3, scheme).get('lm_head.weight')!.data).not.toEqual(randomInit(untied, 4, scheme).get('lm_head.weight')!.data);
    }
    // untying appends lm_head: every other tensor draws as the tied model's does
    const tied = randomInit(tiny, 3);
    const withHead = randomInit(untied, 3);
    withHead.delete('lm_head.weight');
    expectSameParams(withHead, tied);
    expect(std(randomInit(untied, 3).get('lm_head.weight')!.data)).toBeGreaterThan(0.01);
  });

  it("'pytorch' follows the book's GPTModel under PyTorch defaults", () => {
    const untied: GPTConfig = { ...config, tieWordEmbeddings: false, qkvBias: true };
    const p = randomInit(untied, 7, 'pytorch');
    expect([...p.keys()]).toEqual(parameterSpecs(untied).map((s) => s.name));
    const C = untied.nEmbd;
    // nn.Embedding: N(0, 1)
    for (const name of ['wte.weight', 'wpe.weight']) {
      const d = p.get(name)!.data;
      expect(std(d), name).toBeCloseTo(1, 1);
      expect(Math.abs(d.reduce((s, v) => s + v, 0) / d.length), name).toBeLessThan(0.05);
    }
    // nn.Linear weight and bias: U(±1/√fan_in), std bound/√3, fan_in = the layer's input width
    const linear: [string, number][] = [
      ['h.0.attn.c_attn.weight', C],
      ['h.0.attn.c_attn.bias', C],
      ['h.1.attn.c_proj.weight', C],
      ['h.1.attn.c_proj.bias', C],
      ['h.2.mlp.c_fc.weight', C],
      ['h.2.mlp.c_fc.bias', C],
      ['h.3.mlp.c_proj.weight', 4 * C],
      ['h.3.mlp.c_proj.bias', 4 * C],
      ['lm_head.weight', C],
    ];
    for (const [name, fanIn] of linear) {
      const d = p.get(name)!.data;
      const bound = 1 / Math.sqrt(fanIn);
      expect(d.every((v) => Math.abs(v) <= bound), name).toBe(true);
      expect(Math.max(...d.map(Math.abs)), name).toBeGreaterThan(0.9 * bound); // fills the interval
      if (d.length >= 1000) expect(std(d) / (bound / Math.sqrt(3)), name).toBeCloseTo(1, 1);
    }
    // LayerNorm: scale 1, shift 0
    for (const name of ['ln_f.weight', 'h.0.ln_1.weight', 'h.3.ln_2.weight']) expect(p.get(name)!.data.every((v) => v === 1), name).toBe(true);
    for (const name of ['ln_f.bias', 'h.0.ln_1.bias', 'h.3.ln_2.bias']) expect(p.get(name)!.data.every((v) => v === 0), name).toBe(true);
    // a classifier's score [K, C] is an nn.Linear(C, K) too: fan_in C
    const score = randomInit({ ...config, labels: ['a', 'b', 'c'] }, 7, 'pytorch').get('score.weight')!.data;
    expect(score.every((v) => Math.abs(v) <= 1 / Math.sqrt(C))).toBe(true);
    expect(() => randomInit(config, 1, 'xavier' as never)).toThrow(/unknown scheme 'xavier'/);
  });
});

describe('Rng', () => {
  it('is uniform in [0, 1) and repeatable', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = a.next();
      expect(x === b.next()).toBe(true);
      if (!(x >= 0 && x < 1)) throw new Error(`out of range: ${x}`);
      sum += x;
    }
    expect(sum / 100_000).toBeCloseTo(0.5, 2);
    expect(new Rng(1).next()).not.toBe(new Rng(2).next());
    expect(new Rng(2 ** 32 + 1).next()).not.toBe(new Rng(1).next());
    expect(new Rng(-1).next()).not.toBe(new Rng(1).next());
    expect(() => new Rng(NaN)).toThrow(/seed/);
  });

  it('gives standard normals', () => {
    const r = new Rng(9);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    expect(s / n).toBeCloseTo(0, 2);
    expect(s2 / n).toBeCloseTo(1, 1);
  });

  it('draws integers in range', () => {
    const r = new Rng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(r.int(7));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
