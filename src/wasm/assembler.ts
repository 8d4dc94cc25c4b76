// A minimal WebAssembly binary writer, enough for small SIMD kernels written as instruction lists
// (src/train/kernels.ts: AdamW and the gradient norm; src/model/exp-kernel.ts: the sampler's
// exponentials). Each kernel module imports one memory, `env.mem`, and exports its functions.

export const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
export const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};
export const str = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
export const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export const get = (i: number) => [0x20, ...uleb(i)];
export const set = (i: number) => [0x21, ...uleb(i)];
export const tee = (i: number) => [0x22, ...uleb(i)];
export const f32const = (x: number) => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)];
export const f64const = (x: number) => [0x44, ...new Uint8Array(new Float64Array([x]).buffer)];
export const i32const = (x: number) => [0x41, ...sleb(x)];
export const simd = (op: number) => [0xfd, ...uleb(op)];
export const load = [...simd(0), 4, 0]; // v128.load align=16 offset=0
export const store = [...simd(11), 4, 0];
export const [splat, sqrt, add, sub, mul, div] = [19, 227, 228, 229, 230, 231].map(simd) as [number[], number[], number[], number[], number[], number[]];
export const i32add = [0x6a];

/** A function of a kernel module: its signature (params → results) and body (locals + code + end). */
export interface KernelFunction {
  name: string;
  params: number[];
  results: number[];
  body: number[];
}

/** A module of `functions` that imports its memory as env.mem (min 1 page) and exports each by name. */
export function kernelModuleBytes(functions: KernelFunction[]): Uint8Array {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec(f.results.map((r) => [r]))]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...str('env'), ...str('mem'), 0x02, 0x00, 0x01]])), // memory, min 1 page
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...str(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(functions.map((f) => [...uleb(f.body.length), ...f.body]))),
  ]);
}

// The project's lib settings (ES2023, no DOM) carry no WebAssembly typings: the little used here.
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
export const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export const PAGE = 65536;
