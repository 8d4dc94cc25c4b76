// Trainable tensors in one Float32Array, each tensor a subarray view (llm.c's
// malloc_and_point_parameters). Parameters, gradients and both AdamW moments share one layout,
// so the optimizer is a flat loop, and ORT reads each view as a zero-copy graph input.
import { numel, type ParamSpec, type Params } from '../model/params.js';

/** Offsets are rounded up to this many floats (64 bytes: cache lines, SIMD loads). */
const ALIGN = 16;

export interface Segment extends ParamSpec {
  offset: number; // in floats
  size: number; // numel(shape)
}

export class FlatLayout {
  readonly segments: Segment[] = [];
  readonly byName = new Map<string, Segment>();
  /** Total floats, padding included (padding stays 0 in every buffer). */
  readonly size: number;

  constructor(specs: readonly ParamSpec[]) {
    let offset = 0;
    for (const s of specs) {
      const seg = { name: s.name, shape: [...s.shape], offset, size: numel(s.shape) };
      this.segments.push(seg);
      this.byName.set(s.name, seg);
      offset = Math.ceil((offset + seg.size) / ALIGN) * ALIGN;
    }
    this.size = offset;
  }

  /** A zeroed buffer for this layout. */
  alloc(): Float32Array {
    return new Float32Array(this.size);
  }

  view(buf: Float32Array, name: string): Float32Array {
    const seg = this.byName.get(name);
    if (!seg) throw new Error(`flat layout has no tensor '${name}'`);
    return buf.subarray(seg.offset, seg.offset + seg.size);
  }

  /** Every tensor as a view into `buf` (no copy): what saveCheckpoint and tests take. */
  params(buf: Float32Array): Params {
    return new Map(this.segments.map((s) => [s.name, { shape: [...s.shape], data: buf.subarray(s.offset, s.offset + s.size) }]));
  }

  /** Copies the layout's tensors out of `params` into `buf` (default: a fresh buffer). */
  pack(params: Params, buf = this.alloc()): Float32Array {
    if (buf.length !== this.size) throw new Error(`flat buffer has ${buf.length} floats, the layout needs ${this.size}`);
    for (const s of this.segments) {
      const t = params.get(s.name);
      if (!t) throw new Error(`missing parameter '${s.name}'`);
      if (t.data.length !== s.size) throw new Error(`parameter '${s.name}' has ${t.data.length} values, expected ${s.size}`);
      buf.set(t.data, s.offset);
    }
    return buf;
  }
}
