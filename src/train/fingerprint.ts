// What identifies a run, so a resume refuses a checkpoint of another one: a SHA-256 over
// everything that changes its parameters (options, data, starting weights), fed in order.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { Params } from '../model/params.js';

export class Fingerprint {
  private readonly h = createHash('sha256');

  json(value: unknown): this {
    this.h.update(JSON.stringify(value));
    return this;
  }

  bytes(view: ArrayBufferView): this {
    this.h.update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    return this;
  }

  file(file: string): this {
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(16 << 20);
      for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) this.h.update(buf.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
    return this;
  }

  digest(): string {
    return this.h.digest('hex');
  }
}

/**
 * FNV-1a over the parameters' bits in name order: identifies the exact weights of a model folder
 * cheaply (a checkpoint records it to detect a model file from another save).
 */
export function paramsHash(params: Params): string {
  let h = 0x811c9dc5;
  for (const name of [...params.keys()].sort()) {
    const d = params.get(name)!.data;
    const words = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
