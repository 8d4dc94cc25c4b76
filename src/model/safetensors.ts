// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: little-endian u64 N] [N bytes: JSON header] [data region]
//
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]}, with offsets
// relative to the start of the data region (byte 8 + N), plus an optional "__metadata__"
// object of strings. Nothing guarantees that the data region starts at an aligned file
// offset: the Python library pads the header to a multiple of 8, but the hub's `gpt2` file
// has an unpadded header. So bytes are always read into freshly allocated buffers (aligned
// by construction) and never viewed in place.
//
// Reading never loads the whole file: the header is read through a file descriptor and
// each tensor's bytes are read on demand, so multi-gigabyte checkpoints cost only what is used.
import * as fs from 'node:fs';
import { writeAll, writeFileAtomic } from './durable.js';

/** Bytes per element of each dtype the format defines (sub-byte float types are not supported). */
export const DTYPE_SIZES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Same limit as the Python library: a larger header is corruption, not a real model. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file: the tensor occupies [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  /** File offset of the data region (8 + header length); may be unaligned. */
  dataStart: number;
  /** Tensors in header order. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const isNonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// Float32Array views over file bytes assume the host stores floats little-endian, as the
// file does. Every platform Node ships for is little-endian; fail loudly rather than
// silently byte-swap weights if that ever changes.
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function assertLittleEndianHost(): void {
  if (!HOST_LITTLE_ENDIAN) throw new Error('safetensors: big-endian hosts are not supported');
}

// ---------------------------------------------------------------------------------------
// Reading

/** Parse and validate the header of a safetensors file, without reading any tensor data. */
export function openSafetensors(file: string): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new Error(`${file}: ${msg}`);
  };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    return fail(`cannot open: ${(e as Error).message}`);
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) fail(`file is ${fileSize} bytes, too short for a safetensors header (needs at least 8)`);

    const lenBytes = readExactly(fd, 0, 8, file);
    const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(fileSize - 8)) {
      fail(`header length ${headerLen} runs past the end of the file (${fileSize} bytes; truncated, or not a safetensors file?)`);
    }
    const n = Number(headerLen);
    if (n > MAX_HEADER_BYTES) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const dataStart = 8 + n;
    const dataSize = fileSize - dataStart;

    const headerText = new TextDecoder('utf-8').decode(readExactly(fd, 8, n, file));
    let header: unknown;
    try {
      header = JSON.parse(headerText);
    } catch (e) {
      return fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');

    let metadata: Record<string, string> = {};
    const tensors = new Map<string, TensorInfo>();
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = parseMetadata(entry, fail);
        continue;
      }
      const where = `tensor '${name}'`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`${where}: header entry is not an object`);
      const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
      if (typeof dtype !== 'string') return fail(`${where}: missing dtype`);
      const size = DTYPE_SIZES[dtype];
      if (size === undefined) fail(`${where}: unknown dtype '${dtype}' (known: ${Object.keys(DTYPE_SIZES).join(', ')})`);
      if (!Array.isArray(shape) || !shape.every(isNonNegInt)) return fail(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
        return fail(`${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
      }
      const [b, e] = offsets as [number, number];
      if (e < b) fail(`${where}: data_offsets [${b}, ${e}] end before they begin`);
      const expected = numel(shape) * size!;
      if (e - b !== expected) {
        fail(`${where}: shape [${shape.join(', ')}] × ${dtype} needs ${expected} bytes but data_offsets [${b}, ${e}] span ${e - b}`);
      }
      if (e > dataSize) {
        fail(`${where} ends at byte ${dataStart + e} but the file has only ${fileSize} bytes (truncated?)`);
      }
      tensors.set(name, { dtype, shape: [...shape], begin: dataStart + b, end: dataStart + e });
    }
    checkNoOverlaps(tensors, fail);
    return { path: file, dataStart, tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

function parseMetadata(entry: unknown, fail: (msg: string) => never): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail('__metadata__ is not an object');
  // The format says string → string; keep any other value as its JSON text rather than
  // refusing a file whose weights are fine.
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

/** Gaps between tensors are allowed (some writers leave them); overlapping bytes are not. */
function checkNoOverlaps(tensors: Map<string, TensorInfo>, fail: (msg: string) => never): void {
  const byStart = [...tensors].filter(([, t]) => t.end > t.begin).sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let prev: [string, TensorInfo] | undefined;
  for (const cur of byStart) {
    if (prev && cur[1].begin < prev[1].end) {
      fail(
        `tensors '${prev[0]}' (bytes ${prev[1].begin}-${prev[1].end}) and '${cur[0]}' (bytes ${cur[1].begin}-${cur[1].end}) overlap`,
      );
    }
    if (!prev || cur[1].end > prev[1].end) prev = cur;
  }
}

/** Read `length` bytes at `position` into a new (hence aligned) buffer; short reads are errors. */
function readExactly(fd: number, position: number, length: number, file: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    // readSync handles at most 2 GiB per call.
    const n = fs.readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new Error(`${file}: unexpected end of file at byte ${position + done} (truncated?)`);
    done += n;
  }
  return out;
}

function tensorInfo(file: SafetensorsFile, name: string): TensorInfo {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`${file.path}: no tensor '${name}'`);
  return t;
}

/** The raw little-endian bytes of one tensor, read from disk (only that tensor's bytes). */
export function readTensorBytes(file: SafetensorsFile, name: string): Uint8Array {
  const t = tensorInfo(file, name);
  const fd = fs.openSync(file.path, 'r');
  try {
    return readExactly(fd, t.begin, t.end - t.begin, file.path);
  } catch (e) {
    throw new Error(`${(e as Error).message} while reading tensor '${name}'`);
  } finally {
    fs.closeSync(fd);
  }
}

/** One tensor as float32, converting from F16 or BF16 if needed. */
export function readTensorF32(file: SafetensorsFile, name: string): Float32Array {
  const t = tensorInfo(file, name);
  if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
    throw new Error(`${file.path}: tensor '${name}' has dtype ${t.dtype}; only F32, F16 and BF16 convert to float32`);
  }
  assertLittleEndianHost();
  const bytes = readTensorBytes(file, name); // fresh buffer at offset 0: safe to view as any type
  if (t.dtype === 'F32') return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
  const halves = new Uint16Array(bytes.buffer, 0, bytes.byteLength / 2);
  return t.dtype === 'F16' ? f16ArrayToF32(halves) : bf16ArrayToF32(halves);
}

// ---------------------------------------------------------------------------------------
// float16 / bfloat16 conversions. Both work on the bit patterns through a shared scratch
// Float32Array, which is how JavaScript exposes a float's bits.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE 754 binary16 bits → value. Exact: every half is representable as a float32. */
export function f16ToF32(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  const exp = (bits >>> 10) & 0x1f;
  let mant = bits & 0x3ff;
  let out: number;
  if (exp === 0x1f) {
    out = sign | 0x7f800000 | (mant << 13); // inf, or NaN keeping its payload
  } else if (exp !== 0) {
    out = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  } else if (mant === 0) {
    out = sign; // ±0
  } else {
    // Subnormal half (mant · 2^-24) is a normal float32: shift the mantissa up until its
    // leading 1 becomes the implicit bit, lowering the exponent by one per shift.
    let e = -14;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    out = sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13);
  }
  scratchU32[0] = out >>> 0;
  return scratchF32[0]!;
}

/**
 * Value → binary16 bits, rounding to nearest with ties to even (as numpy and PyTorch do).
 * The value is first rounded to float32, so this is exactly float32 → float16.
 * Overflow gives ±inf, underflow gives subnormals and then ±0, NaN stays NaN.
 */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00; // NaN (forced quiet) / inf
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding
  if (e <= 0) {
    // Subnormal half: the result counts units of 2^-24. Restore the implicit bit and shift
    // right by 14 - e; values below half the smallest subnormal round to zero.
    if (e < -10) return sign;
    return sign | roundShift(mant | 0x800000, 14 - e);
  }
  // Normal: drop 13 mantissa bits. A carry out of the mantissa correctly bumps the
  // exponent, and from the largest finite value on to infinity (0x7c00).
  return sign | ((e << 10) + roundShift(mant, 13));
}

/** x >> s rounded to nearest, ties to even. */
function roundShift(x: number, s: number): number {
  const q = x >>> s;
  const rem = x & ((1 << s) - 1);
  const half = 1 << (s - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

/** bfloat16 bits → value: bfloat16 is the top half of a float32. */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** Value → bfloat16 bits, rounding to nearest with ties to even; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40; // NaN: keep it NaN after truncation
  // Adding 0x7fff plus the lowest kept bit rounds half to even; overflow carries into inf.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// All 65536 halves decoded once: converting an array is then one table lookup per element.
let f16Table: Float32Array | undefined;

export function f16ArrayToF32(halves: Uint16Array): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  const table = f16Table;
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]!]!;
  return out;
}

export function bf16ArrayToF32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) outBits[i] = halves[i]! << 16;
  return out;
}

export function f32ArrayToF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i]!);
  return out;
}

export function f32ArrayToBf16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16(values[i]!);
  return out;
}

// ---------------------------------------------------------------------------------------
// Writing

export interface WriteOptions {
  metadata?: Record<string, string>;
  /** Pad the header with spaces to a multiple of 8, as the Python library does (default true). */
  alignHeader?: boolean;
}

/** A tensor given as raw little-endian bytes of any dtype (e.g. U8/BOOL buffers, 0-rank). */
export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export interface FloatTensor {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  data: Float32Array;
}

/** An entry to write: its size is known up front (for the header), its bytes are produced on demand. */
interface PendingTensor {
  name: string;
  dtype: string;
  shape: number[];
  byteLength: number;
  bytes: () => Uint8Array;
}

/** Write float32 data as F32, F16 or BF16 tensors. */
export function writeSafetensors(file: string, tensors: FloatTensor[], opts: WriteOptions = {}): void {
  assertLittleEndianHost();
  const pending = tensors.map((t): PendingTensor => {
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`${file}: tensor '${t.name}' has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${numel(t.shape)}`);
    }
    const data = t.data;
    // Convert one tensor at a time while writing, so an F16 copy of a whole model never sits in memory.
    const bytes =
      t.dtype === 'F32'
        ? () => new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : t.dtype === 'F16'
          ? () => asBytes(f32ArrayToF16(data))
          : t.dtype === 'BF16'
            ? () => asBytes(f32ArrayToBf16(data))
            : undefined;
    if (!bytes) throw new Error(`${file}: tensor '${t.name}': cannot write float data as dtype ${String(t.dtype)}`);
    return { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: data.length * DTYPE_SIZES[t.dtype]!, bytes };
  });
  writePending(file, pending, opts);
}

/** Write tensors given as raw bytes, in any dtype the format defines. */
export function writeSafetensorsRaw(file: string, tensors: RawTensor[], opts: WriteOptions = {}): void {
  const pending = tensors.map((t): PendingTensor => {
    const size = DTYPE_SIZES[t.dtype];
    if (size === undefined) throw new Error(`${file}: tensor '${t.name}': unknown dtype '${t.dtype}'`);
    if (t.data.byteLength !== numel(t.shape) * size) {
      throw new Error(
        `${file}: tensor '${t.name}' has ${t.data.byteLength} bytes but shape [${t.shape.join(', ')}] × ${t.dtype} needs ${numel(t.shape) * size}`,
      );
    }
    return { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength, bytes: () => t.data };
  });
  writePending(file, pending, opts);
}

const asBytes = (a: Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function writePending(file: string, tensors: PendingTensor[], opts: WriteOptions): void {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) throw new Error(`${file}: duplicate or reserved tensor name '${t.name}'`);
    if (!t.shape.every(isNonNegInt)) throw new Error(`${file}: tensor '${t.name}' has invalid shape ${JSON.stringify(t.shape)}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.byteLength] };
    offset += t.byteLength;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  if (opts.alignHeader ?? true) {
    // Spaces are valid trailing JSON whitespace; padding makes the data region 8-byte aligned.
    const padded = new Uint8Array(Math.ceil(headerBytes.length / 8) * 8).fill(0x20);
    padded.set(headerBytes);
    headerBytes = padded;
  }
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(headerBytes.length), true);

  writeFileAtomic(file, (fd) => {
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const t of tensors) {
      const bytes = t.bytes();
      if (bytes.byteLength !== t.byteLength) throw new Error(`${file}: tensor '${t.name}' changed size while being written`);
      writeAll(fd, bytes);
    }
  });
}
