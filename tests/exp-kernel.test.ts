// The sampler's wasm SIMD exponentials against Math.exp (float64): relative error within what
// float32 arguments allow, exactly 1 at the maximum, exactly 0 below e^−87 and for −∞.
import { describe, expect, it } from 'vitest';
import { expWeights } from '../src/model/exp-kernel.js';
import { Rng } from '../src/model/rng.js';

describe('expWeights (wasm SIMD)', () => {
  it('matches Math.exp over the range that matters, with the sum in float64', () => {
    const rng = new Rng(5);
    for (const [n, temperature] of [[50257, 1], [7, 0.3], [1001, 2.5]] as const) {
      const logits = Float32Array.from({ length: n }, () => rng.normal() * 8);
      logits[3] = -Infinity; // a banned token
      logits[1] = 1e6; // the maximum
      const out = new Float64Array(n);
      const sum = expWeights(logits, 1e6, 1 / temperature, out);
      expect(sum).toBeDefined(); // Node has wasm SIMD: the kernel ran, not a fallback
      let reference = 0;
      for (let i = 0; i < n; i++) {
        const x = (logits[i]! - 1e6) / temperature;
        const e = Math.exp(x);
        reference += e;
        if (x < -87) expect(out[i]).toBe(0);
        else expect(Math.abs(out[i]! / e - 1)).toBeLessThan(1e-6 * Math.max(1, -x)); // float32 x: error grows with |x|
      }
      expect(out[1]).toBe(1);
      expect(out[3]).toBe(0);
      expect(Math.abs(sum! / reference - 1)).toBeLessThan(1e-6);
    }
  });

  it('keeps relative error ~1e-7 near the maximum, where the probability mass is', () => {
    const xs = Float32Array.from({ length: 4096 }, (_, i) => -i / 256); // 0 … −16
    const out = new Float64Array(xs.length);
    expWeights(xs, 0, 1, out);
    let worst = 0;
    xs.forEach((x, i) => (worst = Math.max(worst, Math.abs(out[i]! / Math.exp(x) - 1))));
    expect(worst).toBeLessThan(5e-7);
  });
});
