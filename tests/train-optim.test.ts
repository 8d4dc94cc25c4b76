// AdamW, gradient clipping and the LR schedule against straightforward references.
import { describe, expect, it } from 'vitest';
import { AdamW, clipCoefficient, decays, globalNorm } from '../src/train/adamw.js';
import { FlatLayout } from '../src/train/flat.js';
import { WasmArena } from '../src/train/kernels.js';
import { learningRate } from '../src/train/schedule.js';

/** PyTorch's AdamW step for one tensor, written out plainly (arrays of numbers). */
function referenceAdamW(p: number[], g: number[], m: number[], v: number[], t: number, lr: number, wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): void {
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - lr * wd); // decoupled weight decay
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    const mHat = m[i]! / (1 - b1 ** t);
    const vHat = v[i]! / (1 - b2 ** t);
    p[i] = p[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
}

describe('AdamW', () => {
  const specs = [
    { name: 'h.0.mlp.c_fc.weight', shape: [3, 5] },
    { name: 'h.0.mlp.c_fc.bias', shape: [5] },
    { name: 'wte.weight', shape: [7, 3] },
    { name: 'ln_f.weight', shape: [3] },
  ];

  it.each(['js loop', 'wasm kernel'])('matches a plain implementation of PyTorch AdamW over several steps (%s)', (kind) => {
    const layout = new FlatLayout(specs);
    expect(layout.segments.map((s) => s.offset)).toEqual([0, 16, 32, 64]); // 16-float alignment
    const arena = kind === 'wasm kernel' ? WasmArena.create(4 * layout.size) : undefined;
    if (kind === 'wasm kernel') expect(arena).toBeDefined();
    const opt = new AdamW(layout, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }, 'matrices', arena);
    const params = arena?.alloc(layout.size) ?? layout.alloc();
    expect(arena?.owns(params, opt.m, opt.v) ?? false).toBe(kind === 'wasm kernel');
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    for (const s of layout.segments) for (let i = 0; i < s.size; i++) params[s.offset + i] = rand();
    const ref = layout.segments.map((s) => ({
      p: Array.from(layout.view(params, s.name)),
      m: new Array(s.size).fill(0),
      v: new Array(s.size).fill(0),
      wd: s.name === 'h.0.mlp.c_fc.weight' ? 0.1 : 0, // only matrices decay by default
    }));
    const grads = arena?.alloc(layout.size) ?? layout.alloc();
    for (let t = 1; t <= 6; t++) {
      const lr = 1e-2 / t;
      for (const s of layout.segments) for (let i = 0; i < s.size; i++) grads[s.offset + i] = rand() * (t % 2 ? 1 : 1e-4);
      const scale = t % 3 ? 1 : 0.25; // micro-batch averaging and clipping fold into the update
      opt.update(params, grads, lr, scale);
      layout.segments.forEach((s, k) => referenceAdamW(ref[k]!.p, Array.from(layout.view(grads, s.name), (g) => g * scale), ref[k]!.m, ref[k]!.v, t, lr, ref[k]!.wd, 0.9, 0.95));
    }
    expect(opt.step).toBe(6);
    layout.segments.forEach((s, k) => {
      const got = layout.view(params, s.name);
      ref[k]!.p.forEach((x, i) => expect(Math.abs(got[i]! - x)).toBeLessThan(1e-6));
    });
    expect(params[15]).toBe(0); // padding never moves
  });

  it('decays matrices only by default; the policy is configurable', () => {
    expect(['h.0.attn.c_attn.weight', 'h.3.mlp.c_proj.weight', 'wte.weight', 'h.0.ln_1.weight', 'h.0.attn.c_attn.bias'].map((n) => decays(n, 'matrices'))).toEqual([true, true, false, false, false]);
    expect(decays('wte.weight', 'matrices+embeddings')).toBe(true);
    expect(decays('lm_head.weight', 'matrices')).toBe(true); // an untied output head is a linear layer's weight
    expect(decays('h.0.ln_1.bias', 'all')).toBe(true);
    expect(decays('h.0.attn.c_proj.weight', 'none')).toBe(false);
  });
});

describe('gradient clipping', () => {
  it('the global norm (JS and wasm) and clip_grad_norm_\'s factor', () => {
    expect(globalNorm(new Float32Array([3, 4, 0, 0]))).toBe(5);
    expect(clipCoefficient(5, 1)).toBeCloseTo(0.2, 6);
    expect(clipCoefficient(0.5, 1)).toBe(1);
    const arena = WasmArena.create(10_000)!;
    const g = arena.alloc(9000); // several of the kernel's 1024-float chunks, and a partial one
    let expected = 0;
    for (let i = 0; i < g.length; i++) expected += (g[i] = Math.sin(i) * (i % 7)) ** 2;
    expect(globalNorm(g, arena) / Math.sqrt(expected)).toBeCloseTo(1, 6);
    expect(globalNorm(g)).toBeCloseTo(Math.sqrt(expected), 3);
  });
});

describe('learning-rate schedule', () => {
  const s = { peakLr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 };
  it('warms up linearly to the peak, then follows a cosine down to the floor', () => {
    expect(learningRate(s, 0)).toBeCloseTo(1e-4, 12);
    expect(learningRate(s, 4)).toBeCloseTo(5e-4, 12);
    expect(learningRate(s, 9)).toBeCloseTo(1e-3, 12);
    expect(learningRate(s, 10)).toBeCloseTo(1e-3, 12);
    expect(learningRate(s, 60)).toBeCloseTo((1e-3 + 1e-4) / 2, 12); // half way: cos = 0
    expect(learningRate(s, 110)).toBe(1e-4);
    expect(learningRate(s, 500)).toBe(1e-4);
    for (let t = 11; t < 110; t++) expect(learningRate(s, t)).toBeLessThan(learningRate(s, t - 1));
  });
  it('without warmup starts at the peak', () => {
    expect(learningRate({ ...s, warmupSteps: 0 }, 0)).toBe(1e-3);
  });
});
