// AdamW and the gradient norm as WebAssembly SIMD kernels (f32x4), assembled here from their
// instructions: the optimizer's flat loops are the part of training that runs in JS, and V8
// does not vectorize them (figures in src/train/README.md).
//
// The kernel reads and writes WebAssembly memory only, so a trainer's four flat buffers
// (parameters, gradients, AdamW's m and v) are carved out of one fixed-size memory: WasmArena.
// Wasm32 memories stop at 4 GiB; bigger models fall back to plain Float32Arrays and the JS loop.

import { F32, F64, I32, PAGE, V128, add, div, f64const, get, i32add, i32const, kernelModuleBytes, load, mul, set, simd, splat, sqrt, store, sub, tee, vec, wasm, type WasmMemory } from '../wasm/assembler.js';

/**
 * adamw(p, g, m, v, bytes, b1, c1, b2, c2, stepSize, invBc2Sqrt, eps, keep, gradScale), byte
 * offsets and a byte count that is a multiple of 16; with γ = gradScale·g:
 *   m = b1·m + c1·γ;  v = b2·v + c2·γ²;  p = p·keep − stepSize·m / (√v·invBc2Sqrt + eps)
 */
function adamwBody(): number[] {
  const [P, G, M, V, N] = [0, 1, 2, 3, 4]; // params 5..13 are the f32 scalars
  const I = 14; // i32 byte index
  const S = 15; // splats of params 5..13 → locals 15..23
  const [B1, C1, B2, C2, STEP, INV, EPS, KEEP, GS] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) => S + k) as number[];
  const [GV, MV, VV] = [24, 25, 26];
  const at = (base: number) => [...get(base), ...get(I), ...i32add];
  const code = [
    ...[5, 6, 7, 8, 9, 10, 11, 12, 13].flatMap((p, k) => [...get(p), ...splat, ...set(S + k)]),
    ...i32const(0), ...set(I),
    0x02, 0x40, // block
    0x03, 0x40, // loop
    ...get(I), ...get(N), 0x4f, 0x0d, 1, // br_if out when i >= n
    ...at(G), ...load, ...get(GS!), ...mul, ...set(GV),
    ...get(B1!), ...at(M), ...load, ...mul, ...get(C1!), ...get(GV), ...mul, ...add, ...set(MV),
    ...at(M), ...get(MV), ...store,
    ...get(B2!), ...at(V), ...load, ...mul, ...get(C2!), ...get(GV), ...get(GV), ...mul, ...mul, ...add, ...set(VV),
    ...at(V), ...get(VV), ...store,
    ...at(P),
    ...at(P), ...load, ...get(KEEP!), ...mul,
    ...get(STEP!), ...get(MV), ...mul,
    ...get(VV), ...sqrt, ...get(INV!), ...mul, ...get(EPS!), ...add,
    ...div, ...sub, ...store,
    ...get(I), ...i32const(16), ...i32add, ...set(I),
    0x0c, 0, // br loop
    0x0b, 0x0b, // end loop, end block
  ];
  return [...vec([[1, I32], [12, V128]]), ...code, 0x0b];
}

/** sumsq(p, bytes) → Σ p[i]² as f64: f32x4 partial sums over 1024-float chunks, chunks added in f64. */
function sumsqBody(): number[] {
  const [P, N, I, END, ACC, TOT, X] = [0, 1, 2, 3, 4, 5, 6];
  const lane = (k: number) => [...get(ACC), ...simd(31), k, 0xbb, 0xa0]; // f32x4.extract_lane k, f64.promote_f32, f64.add
  const code = [
    ...f64const(0), ...set(TOT),
    ...i32const(0), ...set(I),
    0x02, 0x40,
    0x03, 0x40,
    ...get(I), ...get(N), 0x4f, 0x0d, 1,
    ...get(I), ...i32const(4096), ...i32add, ...tee(END), ...get(N), ...get(END), ...get(N), 0x49, 0x1b, ...set(END), // end = min(i + 4096, n)
    0x43, 0, 0, 0, 0, ...splat, ...set(ACC),
    0x03, 0x40,
    ...get(P), ...get(I), ...i32add, ...load, ...tee(X), ...get(X), ...mul, ...get(ACC), ...add, ...set(ACC),
    ...get(I), ...i32const(16), ...i32add, ...tee(I), ...get(END), 0x49, 0x0d, 0, // br_if inner while i < end
    0x0b,
    ...get(TOT), ...lane(0), ...lane(1), ...lane(2), ...lane(3), ...set(TOT),
    0x0c, 0,
    0x0b, 0x0b,
    ...get(TOT),
  ];
  return [...vec([[2, I32], [1, V128], [1, F64], [1, V128]]), ...code, 0x0b];
}

function moduleBytes(): Uint8Array {
  return kernelModuleBytes([
    { name: 'adamw', params: [I32, I32, I32, I32, I32, ...Array<number>(9).fill(F32)], results: [], body: adamwBody() },
    { name: 'sumsq', params: [I32, I32], results: [F64], body: sumsqBody() },
  ]);
}

type AdamWKernel = (p: number, g: number, m: number, v: number, bytes: number, b1: number, c1: number, b2: number, c2: number, stepSize: number, invBc2Sqrt: number, eps: number, keep: number, gradScale: number) => void;
type SumsqKernel = (p: number, bytes: number) => number;

let compiled: object | null | undefined;
function kernelModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = new wasm.Module(moduleBytes());
    } catch {
      compiled = null; // no wasm SIMD here: the JS loop is used
    }
  }
  return compiled;
}

const MAX_BYTES = 65536 * PAGE; // wasm32: 4 GiB

/** Float32Arrays carved out of one fixed WebAssembly memory (never grown, so views stay valid). */
export class WasmArena {
  private used = 0;

  private constructor(
    readonly memory: WasmMemory,
    private readonly kernels: { adamw: AdamWKernel; sumsq: SumsqKernel },
  ) {}

  /** An arena for `floats` floats (each allocation 64-byte aligned), or undefined where wasm can't hold it. */
  static create(floats: number, allocations = 4): WasmArena | undefined {
    const mod = kernelModule();
    const bytes = floats * 4 + allocations * 64;
    if (!mod || bytes > MAX_BYTES - PAGE) return undefined;
    try {
      const memory = new wasm.Memory({ initial: Math.ceil(bytes / PAGE) });
      const instance = new wasm.Instance(mod, { env: { mem: memory } });
      return new WasmArena(memory, instance.exports as { adamw: AdamWKernel; sumsq: SumsqKernel });
    } catch {
      return undefined; // the address space could not be reserved
    }
  }

  /** A zeroed Float32Array of n floats inside the arena. */
  alloc(n: number): Float32Array {
    const offset = Math.ceil(this.used / 64) * 64;
    if (offset + n * 4 > this.memory.buffer.byteLength) throw new Error(`wasm arena full (${this.memory.buffer.byteLength} bytes)`);
    this.used = offset + n * 4;
    return new Float32Array(this.memory.buffer, offset, n);
  }

  owns(...arrays: Float32Array[]): boolean {
    return arrays.every((a) => a.buffer === this.memory.buffer && a.byteOffset % 16 === 0);
  }

  /** AdamW on floats [start, start + count) of each buffer (count rounded up to 4: buffers are padded). */
  adamw(
    p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, start: number, count: number,
    k: { b1: number; b2: number; stepSize: number; invBc2Sqrt: number; eps: number; keep: number; gradScale: number },
  ): void {
    const bytes = Math.ceil(count / 4) * 16;
    const at = (a: Float32Array) => a.byteOffset + start * 4;
    if (start * 4 + bytes > p.byteLength) throw new Error('adamw kernel: range outside the buffers');
    this.kernels.adamw(at(p), at(g), at(m), at(v), bytes, k.b1, 1 - k.b1, k.b2, 1 - k.b2, k.stepSize, k.invBc2Sqrt, k.eps, k.keep, k.gradScale);
  }

  /** Σ x² over a buffer of the arena whose length is a multiple of 4 (as FlatLayout's are). */
  sumOfSquares(x: Float32Array): number {
    if (x.length % 4) throw new Error('sumOfSquares kernel: length must be a multiple of 4');
    return this.kernels.sumsq(x.byteOffset, x.byteLength);
  }
}
