// The sampler's exponentials as a WebAssembly SIMD kernel: w = exp((x − max)·invT) over the
// vocabulary, four lanes at a time, because a Math.exp call per logit is most of a
// temperature-sampling step (figures in README.md, Measurements). Float32 precision
// (Cephes' expf polynomial, relative error ~1e-7) is what the logits have anyway. Where wasm SIMD
// is missing, expWeights returns undefined and the caller keeps its Math.exp loop.
import { F32, I32, PAGE, V128, add, f32const, get, i32add, i32const, kernelModuleBytes, load, mul, set, simd, splat, store, sub, tee, vec, wasm, type WasmMemory } from '../wasm/assembler.js';

const LOWEST = -87; // below this exp underflows float32's normal range: such weights are 0

/** expw(src, dst, bytes, max, invT): dst[i] = exp((src[i] − max)·invT), 0 where that is below e^−87. */
function expBody(): number[] {
  const [SRC, DST, N, MAX, INVT] = [0, 1, 2, 3, 4];
  const I = 5; // i32 byte index
  const [X, K, R, P, VMAX, VINVT, VLOW, VLOG2E, VC1, VC2, VONE, VBIAS] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
  const COEF = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
  const VCOEF = COEF.map((_, k) => 18 + k);
  const [ge, and, max, nearest, truncSat, i32x4add, shl, i32splat] = [0x46, 0x4e, 0xe9, 0x6a, 0xf8, 0xae, 0xab, 0x11].map(simd) as number[][];
  const splatConst = (x: number, local: number) => [...f32const(x), ...splat!, ...set(local)];
  const code = [
    ...get(MAX), ...splat, ...set(VMAX),
    ...get(INVT), ...splat, ...set(VINVT),
    ...splatConst(LOWEST, VLOW), ...splatConst(Math.LOG2E, VLOG2E), ...splatConst(0.693359375, VC1), ...splatConst(-2.12194440e-4, VC2), ...splatConst(1, VONE),
    ...COEF.flatMap((c, k) => splatConst(c, VCOEF[k]!)),
    ...i32const(127), ...i32splat!, ...set(VBIAS),
    ...i32const(0), ...set(I),
    0x02, 0x40, // block
    0x03, 0x40, // loop
    ...get(I), ...get(N), 0x4f, 0x0d, 1, // br_if out when i >= n
    ...get(SRC), ...get(I), ...i32add, ...load, ...get(VMAX), ...sub, ...get(VINVT), ...mul, ...set(X),
    // k = round(x·log2 e), r = x − k·ln 2 (in two parts), exp(x) = 2^k · (1 + r + r²·p(r))
    ...get(X), ...get(VLOW), ...max!, ...tee(R), ...get(VLOG2E), ...mul, ...nearest!, ...set(K),
    ...get(R), ...get(K), ...get(VC1), ...mul, ...sub, ...get(K), ...get(VC2), ...mul, ...sub, ...set(R),
    ...get(VCOEF[0]!), ...VCOEF.slice(1).flatMap((c) => [...get(R), ...mul, ...get(c), ...add]), ...set(P),
    ...get(DST), ...get(I), ...i32add,
    ...get(P), ...get(R), ...mul, ...get(R), ...mul, ...get(R), ...add, ...get(VONE), ...add,
    ...get(K), ...truncSat!, ...get(VBIAS), ...i32x4add!, ...i32const(23), ...shl!, ...mul, // × 2^k built in the exponent bits
    ...get(X), ...get(VLOW), ...ge!, ...and!,
    ...store,
    ...get(I), ...i32const(16), ...i32add, ...set(I),
    0x0c, 0, // br loop
    0x0b, 0x0b, // end loop, end block
  ];
  return [...vec([[1, I32], [12 + COEF.length, V128]]), ...code, 0x0b];
}

type ExpKernel = (src: number, dst: number, bytes: number, max: number, invT: number) => void;

let instance: { kernel: ExpKernel; memory: WasmMemory } | null | undefined;

function kernel(): { kernel: ExpKernel; memory: WasmMemory } | null {
  if (instance === undefined) {
    try {
      const module = new wasm.Module(kernelModuleBytes([{ name: 'expw', params: [I32, I32, I32, F32, F32], results: [], body: expBody() }]));
      const memory = new wasm.Memory({ initial: 1 });
      instance = { kernel: new wasm.Instance(module, { env: { mem: memory } }).exports.expw as ExpKernel, memory };
    } catch {
      instance = null; // no wasm SIMD here
    }
  }
  return instance;
}

/**
 * out[i] = exp((logits[i] − max)·invT) for every i, 0 where that is below e^−87; returns Σ out
 * (summed in float64), or undefined where the kernel is unavailable (then nothing is written).
 */
export function expWeights(logits: ArrayLike<number>, max: number, invT: number, out: Float64Array): number | undefined {
  const k = kernel();
  if (!k) return undefined;
  const n = logits.length;
  const padded = Math.ceil(n / 4) * 4;
  const need = 2 * padded * 4;
  if (k.memory.buffer.byteLength < need) k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / PAGE));
  const src = new Float32Array(k.memory.buffer, 0, padded);
  const dst = new Float32Array(k.memory.buffer, padded * 4, padded);
  src.set(logits as ArrayLike<number>);
  src.fill(-Infinity, n);
  k.kernel(0, padded * 4, padded * 4, max, invT);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += out[i] = dst[i]!;
  return sum;
}
