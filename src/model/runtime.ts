// Turning a graph plus weights into an ONNX Runtime session on the chosen device.
// Weights reach ORT as external data in files next to the model file, so ORT memory-maps them
// instead of copying (shared notes: in-memory external data is copied, mapped files are not).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Graph, Value } from '../onnx/graph.js';
import { serialize } from '../onnx/serialize.js';
import type { WeightSource } from './checkpoint.js';
import { lockWebGpuSession, withWebGpuLock } from './device-lock.js';

export type Device = 'cpu' | 'cuda' | 'webgpu';
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

export interface RuntimeOptions {
  device?: Device;
  /** Intra-op threads; default: all cores. */
  threads?: number;
}

const INSTALL_HINT: Record<Device, string> = {
  cpu: '',
  cuda:
    'The CUDA execution provider is not installed. Add it with `npm run install:cuda` ' +
    '(needs CUDA 12 and cuDNN 9 runtime libraries on the library path; the Dockerfile\'s `cuda` target does this).',
  webgpu:
    'The WebGPU execution provider could not start. It ships with onnxruntime-node but needs a Vulkan driver ' +
    '(a GPU driver, or Mesa\'s software lavapipe: `apt-get install libvulkan1 mesa-vulkan-drivers`, Mesa 25 or later; ' +
    'on Debian bookworm from bookworm-backports with `-t bookworm-backports`, its own Mesa 22.3 has no adapter WebGPU accepts).',
};

export class DeviceError extends Error {}

export function sessionOptions(opts: RuntimeOptions): ort.InferenceSession.SessionOptions {
  const device = opts.device ?? 'cpu';
  return {
    executionProviders: [device],
    intraOpNumThreads: opts.threads ?? Math.max(1, os.availableParallelism()),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // Spinning threads steal the only other core on small machines.
    extra: { session: { 'intra_op.allow_spinning': '0' } },
  };
}

/**
 * Session config for runs made of many short parallel sections (a decode step: a hundred small
 * matmuls): the pool's threads spin between them instead of sleeping and being woken for each,
 * and stop spinning when the run ends, so nothing burns a core between runs.
 */
export const SPIN_WITHIN_RUNS: ort.InferenceSession.SessionOptions = { extra: { session: { 'intra_op.allow_spinning': '1', force_spinning_stop: '1' } } };

/**
 * Places weights for a graph. `weight(g, name, shape)` returns an initializer that points into a
 * file in `dir`: checkpoint files are hard-linked there (ORT refuses external data outside the
 * model's folder, symlinks included); tensors held in memory are written to one packed file.
 */
export class WeightPlacer {
  private readonly linked = new Map<string, string>();
  private memFd: number | undefined;
  private memSize = 0;

  constructor(
    readonly dir: string,
    private readonly weights: Map<string, WeightSource>,
  ) {}

  weight = (g: Graph, name: string, shape: number[]): Value => {
    const src = this.weights.get(name);
    if (!src) throw new Error(`no weights for parameter '${name}'`);
    const expected = shape.reduce((a, b) => a * b, 1) * 4;
    if (src.kind === 'file') {
      if (src.length !== expected) throw new Error(`parameter '${name}': ${src.length} bytes, expected ${expected}`);
      return g.initializer({ name, dtype: 'float32', dims: shape, external: { location: this.link(src.path), offset: src.offset, length: src.length } });
    }
    if (src.data.byteLength !== expected) throw new Error(`parameter '${name}': ${src.data.length} values, expected ${expected / 4}`);
    return g.initializer({ name, dtype: 'float32', dims: shape, external: this.append(src.data) });
  };

  private link(file: string): string {
    let name = this.linked.get(file);
    if (name) return name;
    name = `w${this.linked.size}.bin`;
    const target = path.join(this.dir, name);
    try {
      fs.linkSync(file, target);
    } catch {
      fs.copyFileSync(file, target); // other filesystem: a copy still lets ORT map it
    }
    this.linked.set(file, name);
    return name;
  }

  private append(data: Float32Array): { location: string; offset: number; length: number } {
    this.memFd ??= fs.openSync(path.join(this.dir, 'mem.bin'), 'w');
    const offset = this.memSize;
    fs.writeSync(this.memFd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 0, data.byteLength, offset);
    this.memSize = Math.ceil((offset + data.byteLength) / 64) * 64;
    return { location: 'mem.bin', offset, length: data.byteLength };
  }

  close(): void {
    if (this.memFd !== undefined) fs.closeSync(this.memFd);
    this.memFd = undefined;
  }
}

/** Builds the graph with placed weights and opens an ORT session on it. */
export async function createSession(
  build: (weight: WeightPlacer['weight']) => Graph,
  weights: Map<string, WeightSource>,
  opts: RuntimeOptions = {},
  extra: ort.InferenceSession.SessionOptions = {},
): Promise<ort.InferenceSession> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scratchgpt-'));
  const placer = new WeightPlacer(dir, weights);
  try {
    const graph = build(placer.weight);
    placer.close();
    const file = path.join(dir, 'model.onnx');
    fs.writeFileSync(file, serialize(graph, { externalThreshold: Infinity }).bytes);
    return await openSession(file, opts, extra);
  } finally {
    placer.close();
    // ORT has mapped or read the files by now; unlinking keeps the mapping alive.
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const sessionConfig = (o: ort.InferenceSession.SessionOptions) => (o.extra?.session ?? {}) as Record<string, string>;

export async function openSession(model: string | Uint8Array, opts: RuntimeOptions = {}, extra: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  const device = opts.device ?? 'cpu';
  if (!DEVICES.includes(device)) throw new DeviceError(`unknown device '${device}' (use ${DEVICES.join(', ')})`);
  try {
    const base = sessionOptions(opts);
    const options = { ...base, ...extra, extra: { ...base.extra, ...extra.extra, session: { ...sessionConfig(base), ...sessionConfig(extra) } } }; // extra's config keys over ours, key by key
    const create = () => (typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options));
    // WebGPU sessions share one device context that is not thread-safe: one call at a time (device-lock.ts).
    return device === 'webgpu' ? lockWebGpuSession(await withWebGpuLock(create)) : await create();
  } catch (e) {
    if (device === 'cpu') throw e;
    throw new DeviceError(`could not start the ${device} execution provider: ${(e as Error).message.split('\n')[0]}\n${INSTALL_HINT[device]}`);
  }
}
