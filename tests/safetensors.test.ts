import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  openSafetensors,
  readTensorBytes,
  readTensorF32,
  writeSafetensors,
  writeSafetensorsRaw,
} from '../src/model/safetensors.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-test-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
const tmpFile = (): string => path.join(dir, `t${counter++}.safetensors`);

/** Build a file by hand (header object + data bytes), to produce layouts the writer refuses to. */
function handMade(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): string {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = tmpFile();
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
  return file;
}

const ramp = (n: number, scale = 0.37): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * scale * (i + 1));

describe('float16 conversion', () => {
  it('decodes special values', () => {
    expect(f16ToF32(0x0000)).toBe(0);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x7bff)).toBe(65504); // largest finite
    expect(f16ToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16ToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16ToF32(0x8001)).toBe(-(2 ** -24));
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f16ToF32(0x7c01)).toBeNaN(); // signalling NaN pattern is still NaN, not inf
  });

  it('encodes special values', () => {
    expect(f32ToF16(0)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    expect(f32ToF16(1e6)).toBe(0x7c00); // overflow → inf
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f16ToF32(f32ToF16(NaN))).toBeNaN();
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(1e-10)).toBe(0x0000); // underflow → 0
    expect(f32ToF16(-1e-10)).toBe(0x8000);
  });

  it('rounds to nearest, ties to even', () => {
    expect(f32ToF16(65519)).toBe(0x7bff); // below the midpoint to "65536"
    expect(f32ToF16(65520)).toBe(0x7c00); // the tie goes to even, which is inf
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie between 0x3c00 and 0x3c01 → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02 → even
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal → 0
    expect(f32ToF16(2 ** -25 * 1.001)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // subnormal tie → even
    expect(f32ToF16(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up out of the subnormals
  });

  it('round-trips every finite half and rounds every midpoint to even', () => {
    const wrong: string[] = []; // collected, since 130k expect() calls would be slow
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaNs
      if (f32ToF16(f16ToF32(h)) !== h) wrong.push(`roundtrip ${h.toString(16)}`);
    }
    for (const sign of [0, 0x8000]) {
      for (let h = 0; h < 0x7bff; h++) {
        // A midpoint between adjacent halves needs 12 significant bits: exact in float32.
        const mid = (f16ToF32(sign | h) + f16ToF32(sign | (h + 1))) / 2;
        if (f32ToF16(mid) !== (sign | (h % 2 === 0 ? h : h + 1))) wrong.push(`midpoint after ${(sign | h).toString(16)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('bfloat16 conversion', () => {
  it('handles special values', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(f32ToBf16(-2)).toBe(0xc000);
    expect(Object.is(bf16ToF32(f32ToBf16(-0)), -0)).toBe(true);
    expect(f32ToBf16(Infinity)).toBe(0x7f80);
    expect(f32ToBf16(-Infinity)).toBe(0xff80);
    expect(bf16ToF32(f32ToBf16(NaN))).toBeNaN();
    // A NaN whose payload lives only in the low 16 bits must not truncate to inf.
    const nanBits = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    expect(bf16ToF32(f32ToBf16(nanBits))).toBeNaN();
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // float32 max rounds up to inf
    expect(bf16ToF32(0x0001)).toBe(2 ** -133); // subnormal
  });

  it('rounds to nearest, ties to even', () => {
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    const wrong: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue; // NaNs
      if (f32ToBf16(bf16ToF32(h)) !== h) wrong.push(`roundtrip ${h.toString(16)}`);
      if ((h & 0x7fff) < 0x7f7f) {
        const mid = (bf16ToF32(h) + bf16ToF32(h + 1)) / 2; // 9 significant bits: exact in float32
        if (f32ToBf16(mid) !== (h % 2 === 0 ? h : h + 1)) wrong.push(`midpoint after ${h.toString(16)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('safetensors writer and reader', () => {
  it('round-trips F32 exactly, F16 and BF16 within their precision', () => {
    const a = ramp(24);
    const file = tmpFile();
    writeSafetensors(
      file,
      [
        { name: 'a32', dtype: 'F32', shape: [4, 6], data: a },
        { name: 'a16', dtype: 'F16', shape: [4, 6], data: a },
        { name: 'abf', dtype: 'BF16', shape: [2, 3, 4], data: a },
      ],
      { metadata: { format: 'pt', note: 'x' } },
    );
    const f = openSafetensors(file);
    expect(f.metadata).toEqual({ format: 'pt', note: 'x' });
    expect([...f.tensors.keys()]).toEqual(['a32', 'a16', 'abf']);
    expect(f.tensors.get('abf')!.shape).toEqual([2, 3, 4]);
    expect(f.tensors.get('a16')!.dtype).toBe('F16');
    expect(f.dataStart % 8).toBe(0); // padded header by default
    expect(readTensorF32(f, 'a32')).toEqual(a);
    const h = readTensorF32(f, 'a16');
    const b = readTensorF32(f, 'abf');
    for (let i = 0; i < a.length; i++) {
      expect(Math.abs(h[i]! - a[i]!)).toBeLessThanOrEqual(Math.abs(a[i]!) * 2 ** -11);
      expect(Math.abs(b[i]! - a[i]!)).toBeLessThanOrEqual(Math.abs(a[i]!) * 2 ** -8);
      expect(h[i]).toBe(f16ToF32(f32ToF16(a[i]!)));
      expect(b[i]).toBe(bf16ToF32(f32ToBf16(a[i]!)));
    }
  });

  it('reads files whose data region starts at an unaligned offset', () => {
    let unaligned = 0;
    for (let pad = 0; pad < 8; pad++) {
      const file = tmpFile();
      const a = ramp(7); // 28 bytes: later tensors are misaligned too
      const b = ramp(5, 2);
      writeSafetensors(
        file,
        [
          { name: 'a', dtype: 'F32', shape: [7], data: a },
          { name: 'h', dtype: 'F16', shape: [1], data: new Float32Array([0.5]) }, // 2 bytes: shifts the next one
          { name: 'b', dtype: 'F32', shape: [5], data: b },
        ],
        { metadata: { pad: 'x'.repeat(pad) }, alignHeader: false },
      );
      const f = openSafetensors(file);
      if (f.dataStart % 4 !== 0) unaligned++;
      expect(f.dataStart).toBe(8 + JSON.stringify(JSON.parse(fs.readFileSync(file).subarray(8, f.dataStart).toString())).length);
      expect(readTensorF32(f, 'a')).toEqual(a);
      expect(readTensorF32(f, 'h')).toEqual(new Float32Array([0.5]));
      expect(readTensorF32(f, 'b')).toEqual(b);
    }
    expect(unaligned).toBeGreaterThan(0);
  });

  it('writes and reads raw dtypes, 0-rank and empty tensors', () => {
    const file = tmpFile();
    const scalar = new Uint8Array(new Float32Array([-1e4]).buffer);
    writeSafetensorsRaw(file, [
      { name: 'mask_u8', dtype: 'U8', shape: [1, 1, 3, 3], data: new Uint8Array([1, 0, 0, 1, 1, 0, 1, 1, 1]) },
      { name: 'mask_bool', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
      { name: 'scalar', dtype: 'F32', shape: [], data: scalar },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
    ]);
    const f = openSafetensors(file);
    expect(f.tensors.get('scalar')).toMatchObject({ dtype: 'F32', shape: [] });
    expect([...readTensorBytes(f, 'mask_u8')]).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
    expect([...readTensorBytes(f, 'mask_bool')]).toEqual([1, 0]);
    expect(readTensorF32(f, 'scalar')).toEqual(new Float32Array([-1e4]));
    expect(readTensorF32(f, 'empty').length).toBe(0);
    expect(() => readTensorF32(f, 'mask_u8')).toThrow(/mask_u8.*U8/);
    expect(() => readTensorF32(f, 'nope')).toThrow(`${file}: no tensor 'nope'`);
  });

  it('writes atomically, replacing an existing file and leaving no temp files', () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const file = path.join(sub, 'm.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    writeSafetensors(file, [{ name: 'y', dtype: 'F32', shape: [1], data: new Float32Array([3]) }]);
    expect(fs.readdirSync(sub)).toEqual(['m.safetensors']);
    expect([...openSafetensors(file).tensors.keys()]).toEqual(['y']);
    // A failed write leaves the old file alone and cleans up.
    expect(() => writeSafetensors(file, [{ name: 'z', dtype: 'F32', shape: [3], data: new Float32Array(2) }])).toThrow(/'z'.*2 values/);
    expect(fs.readdirSync(sub)).toEqual(['m.safetensors']);
    expect([...openSafetensors(file).tensors.keys()]).toEqual(['y']);
  });

  it('refuses to write bad input', () => {
    expect(() => writeSafetensorsRaw(tmpFile(), [{ name: 'a', dtype: 'Q7', shape: [1], data: new Uint8Array(1) }])).toThrow(/'a'.*unknown dtype 'Q7'/);
    expect(() => writeSafetensorsRaw(tmpFile(), [{ name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(4) }])).toThrow(/'a' has 4 bytes/);
    const t = { name: 'a', dtype: 'F32' as const, shape: [1], data: new Float32Array(1) };
    expect(() => writeSafetensors(tmpFile(), [t, t])).toThrow(/duplicate.*'a'/);
  });

  it('allows gaps between tensors', () => {
    const data = new Uint8Array(16);
    new DataView(data.buffer).setFloat32(12, 7.5, true);
    const file = handMade({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } }, data);
    expect(readTensorF32(openSafetensors(file), 'b')).toEqual(new Float32Array([7.5]));
  });
});

describe('safetensors header validation', () => {
  const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

  it('rejects a file shorter than 8 bytes', () => {
    const file = tmpFile();
    fs.writeFileSync(file, Buffer.from([1, 2, 3]));
    expect(() => openSafetensors(file)).toThrow(`${file}: file is 3 bytes, too short`);
  });

  it('rejects a header length beyond the file', () => {
    const file = tmpFile();
    const b = Buffer.alloc(20);
    b.writeBigUInt64LE(1000n);
    fs.writeFileSync(file, b);
    expect(() => openSafetensors(file)).toThrow(new RegExp(`^${escape(file)}: header length 1000 runs past the end of the file \\(20 bytes`));
    b.writeBigUInt64LE(0xffffffffffffffffn);
    fs.writeFileSync(file, b);
    expect(() => openSafetensors(file)).toThrow(/header length 18446744073709551615 runs past/);
  });

  it('rejects a header that is not JSON, or not an object', () => {
    const bad = handMade(null, new Uint8Array(0), '{"a": {"dtype": "F32", ');
    expect(() => openSafetensors(bad)).toThrow(new RegExp(`^${escape(bad)}: header is not valid JSON`));
    const arr = handMade([1, 2]);
    expect(() => openSafetensors(arr)).toThrow(`${arr}: header is not a JSON object`);
    const entry = handMade({ w: 5 });
    expect(() => openSafetensors(entry)).toThrow(`${entry}: tensor 'w': header entry is not an object`);
    const meta = handMade({ __metadata__: 'x' });
    expect(() => openSafetensors(meta)).toThrow(`${meta}: __metadata__ is not an object`);
  });

  it('rejects unknown dtypes and malformed shapes or offsets', () => {
    const dt = handMade({ w: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => openSafetensors(dt)).toThrow(`${dt}: tensor 'w': unknown dtype 'F12'`);
    const sh = handMade({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => openSafetensors(sh)).toThrow(`${sh}: tensor 'w': shape [-1] is not a list of non-negative integers`);
    const off = handMade({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4));
    expect(() => openSafetensors(off)).toThrow(`${off}: tensor 'w': data_offsets [0] is not a pair`);
    const rev = handMade({ w: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4));
    expect(() => openSafetensors(rev)).toThrow(/tensor 'w': data_offsets \[4, 0\] end before they begin/);
  });

  it('rejects a shape that does not match the byte span', () => {
    const file = handMade({ 'h.0.attn.c_attn.weight': f32(0, 16, [2, 3]) }, new Uint8Array(16));
    expect(() => openSafetensors(file)).toThrow(
      `${file}: tensor 'h.0.attn.c_attn.weight': shape [2, 3] × F32 needs 24 bytes but data_offsets [0, 16] span 16`,
    );
  });

  it('rejects a truncated file', () => {
    const file = tmpFile();
    writeSafetensors(file, [
      { name: 'wte.weight', dtype: 'F32', shape: [4, 4], data: ramp(16) },
      { name: 'h.0.attn.c_attn.weight', dtype: 'F32', shape: [4, 12], data: ramp(48) },
    ]);
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 10);
    expect(() => openSafetensors(file)).toThrow(
      `${file}: tensor 'h.0.attn.c_attn.weight' ends at byte ${size} but the file has only ${size - 10} bytes (truncated?)`,
    );
  });

  it('rejects overlapping tensors', () => {
    const file = handMade({ a: f32(0, 8), b: f32(12, 16), c: f32(4, 12) }, new Uint8Array(16));
    const s = openSafetensorsError(file);
    expect(s).toMatch(new RegExp(`^${escape(file)}: tensors '(a|c)' .* and '(a|c)' .* overlap`));
    // Zero-length tensors occupy no bytes and overlap nothing.
    const ok = handMade({ a: f32(0, 8), e: f32(4, 4), b: f32(8, 8) }, new Uint8Array(8));
    expect(openSafetensors(ok).tensors.size).toBe(3);
    // Overlap with a tensor that is not the immediately preceding one.
    const far = handMade({ big: f32(0, 16), small: f32(4, 8), later: f32(12, 16) }, new Uint8Array(16));
    expect(openSafetensorsError(far)).toMatch(/overlap/);
  });

  it('cannot open a missing file', () => {
    const missing = path.join(dir, 'nope.safetensors');
    expect(() => openSafetensors(missing)).toThrow(new RegExp(`^${escape(missing)}: cannot open`));
  });
});

function openSafetensorsError(file: string): string {
  try {
    openSafetensors(file);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected openSafetensors to throw');
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
