// The KV cache kept on the device (WebGPU, here on Mesa's software Vulkan): the same logits as the
// CPU through prefill, decode, slot moves and rows joining a running batch, with only tokens,
// positions, the mask, indices and logits crossing the bus. Skips where WebGPU cannot start,
// except in CI, which installs lavapipe (.ci/run).
import { describe, expect, it } from 'vitest';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { DeviceKVCache } from '../src/model/device-cache.js';
import { generate } from '../src/model/generation.js';
import { ModelSession, type ForwardRow, type SessionOptions } from '../src/model/session.js';
import { skipWithoutWebgpu } from './helpers/webgpu.js';

const cfg: GPTConfig = { vocabSize: 97, contextLength: 40, nEmbd: 32, nLayer: 2, nHead: 4, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
const params = randomInit(cfg, 7);
const weights = new Map([...params].map(([name, t]) => [name, { kind: 'memory' as const, data: t.data, shape: t.shape }]));
const open = (o: SessionOptions) => ModelSession.create(cfg, weights, { threads: 1, slots: 3, ...o });

async function webgpuError(): Promise<string | undefined> {
  try {
    await (await open({ device: 'webgpu', slots: 1 })).close();
    return undefined;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}
const skip = skipWithoutWebgpu('tests/device-cache.test.ts', await webgpuError());

/**
 * A scheduler's life in miniature: three prompts of different lengths prefilled together, decode
 * steps, the middle sequence ending (the last moves into its slot, as the scheduler does), and a
 * new prompt joining the running batch in one call. Returns every call's logits.
 */
async function script(model: ModelSession): Promise<{ logits: Float32Array[][]; transfers: ModelSession['lastTransfer'][] }> {
  const logits: Float32Array[][] = [];
  const transfers: ModelSession['lastTransfer'][] = [];
  const call = async (rows: ForwardRow[]) => {
    logits.push((await model.forward(rows)).map((l) => Float32Array.from(l)));
    transfers.push(model.lastTransfer);
  };
  const seqs = [
    { slot: 0, tokens: [1, 2, 3, 4, 5] },
    { slot: 1, tokens: [9, 8] },
    { slot: 2, tokens: [20, 21, 22] },
  ];
  await call(seqs.map((s) => ({ slot: s.slot, tokens: s.tokens, start: 0, logits: 'last' })));
  for (let step = 0; step < 4; step++) {
    await call(seqs.map((s) => ({ slot: s.slot, tokens: [(s.tokens.length * 7 + step) % cfg.vocabSize], start: s.tokens.length, logits: 'last' })));
    for (const s of seqs) s.tokens.push((s.tokens.length * 7 + step) % cfg.vocabSize);
  }
  // Sequence 1 ends; sequence 2 moves into slot 1, and a new prompt takes slot 2 beside a decode.
  model.cache.moveSlot(2, 1);
  seqs.splice(1, 1);
  seqs[1]!.slot = 1;
  seqs.push({ slot: 2, tokens: [40, 41, 42, 43] });
  await call([
    { slot: 0, tokens: [3], start: seqs[0]!.tokens.length, logits: 'last' },
    { slot: 1, tokens: [4], start: seqs[1]!.tokens.length, logits: 'all' },
    { slot: 2, tokens: seqs[2]!.tokens, start: 0, logits: 'all' },
  ]);
  seqs[0]!.tokens.push(3);
  seqs[1]!.tokens.push(4);
  for (let step = 0; step < 3; step++) {
    await call(seqs.map((s) => ({ slot: s.slot, tokens: [step + 1], start: s.tokens.length, logits: 'last' })));
    for (const s of seqs) s.tokens.push(step + 1);
  }
  await model.close();
  return { logits, transfers };
}

function maxDiff(a: Float32Array[][], b: Float32Array[][]): number {
  let d = 0;
  a.forEach((call, i) => call.forEach((row, j) => row.forEach((x, k) => (d = Math.max(d, Math.abs(x - b[i]![j]![k]!))))));
  return d;
}

describe.skipIf(skip)('KV cache on the WebGPU device', () => {
  it('gives the CPU logits at every call, on the device and on the host', async () => {
    const cpu = await script(await open({ device: 'cpu' }));
    const onDevice = await script(await open({ device: 'webgpu' }));
    const onHost = await script(await open({ device: 'webgpu', kvCache: 'host' }));
    expect(onDevice.logits.map((c) => c.map((r) => r.length))).toEqual(cpu.logits.map((c) => c.map((r) => r.length)));
    expect(maxDiff(onDevice.logits, cpu.logits)).toBeLessThan(1e-4);
    expect(maxDiff(onHost.logits, cpu.logits)).toBeLessThan(1e-4);
  });

  it('decodes on int8 weights with the cache on the device as with it on the host', async () => {
    // (Not against the CPU: its MatMulNBits at accuracy_level 4 also quantizes the activations, WebGPU's does not.)
    const onDevice = await script(await open({ device: 'webgpu', quantize: 'int8' }));
    const onHost = await script(await open({ device: 'webgpu', quantize: 'int8', kvCache: 'host' }));
    expect(maxDiff(onDevice.logits, onHost.logits)).toBeLessThan(1e-6);
  });

  it('speculative decoding with the cache on the device gives the CPU tokens of plain decoding', async () => {
    const tokens = async (model: ModelSession) => {
      const out: number[] = [];
      for await (const s of generate(model, [1, 2, 3, 4, 5], { maxTokens: 20, temperature: 0, ignoreEos: true })) out.push(s.token);
      await model.close();
      return out;
    };
    const drafted = await open({ device: 'webgpu', draft: 'int8', slots: 1 });
    expect(drafted.cache).toBeInstanceOf(DeviceKVCache);
    expect(await tokens(drafted)).toEqual(await tokens(await open({ device: 'cpu', slots: 1 })));
  });

  it('moves only tokens, positions, the mask, indices and logits once the cache is on the device', async () => {
    const B = 3;
    const { nLayer: L, nHead: H, nEmbd: C, vocabSize: V } = cfg;
    const decode = async (model: ModelSession, start: number) => {
      await model.forward(Array.from({ length: B }, (_, b) => ({ slot: b, tokens: [b + 1], start, logits: 'last' as const })));
      return model.lastTransfer;
    };
    const device = await open({ device: 'webgpu' });
    await decode(device, 0); // the first run uploads the zeroed cache
    const d = await decode(device, 10);
    await device.close();
    const P = 40; // positions read: 10 rounded up to 64, capped at the context length
    const small = B * 8 * 2 /* tokens, positions */ + B * (P + 1) * 4 /* mask */ + B * 8 /* logit_rows */ + B * 8 /* slots */ + 8 /* read_len */ + B * H * 3 * 8; /* write_at */
    expect(d).toEqual({ toDevice: small, fromDevice: B * V * 4 });

    const host = await open({ device: 'webgpu', kvCache: 'host' });
    await decode(host, 0);
    const h = await decode(host, 10);
    await host.close();
    const read = 40; // the used positions rounded up to 64, capped at the cache's capacity (here the context)
    const cache = 2 * L * B * C * read * 4;
    expect(h.toDevice).toBe(B * 8 * 3 + B * (read + 1) * 4 + cache);
    expect(h.fromDevice).toBe(B * V * 4 + 2 * L * B * C * 4); // logits and the new K/V rows
  });
});

describe('KV cache placement', () => {
  it('refuses a device cache where the provider returns every output to the host', async () => {
    await expect(open({ device: 'cpu', kvCache: 'device' })).rejects.toThrow(/needs the webgpu device/);
  });
});
