// npm run bench:transfer — bytes that cross between host and device per decode step, by device
// and KV-cache placement, at batch 1 and 16 (ModelSession.lastTransfer: the host-side inputs ORT is
// fed and the host-side outputs it returns), with the step's time beside them. Each row decodes
// one token per sequence at --position (the cache there holds zeros, which changes no byte count).
// On WebGPU the 'host' rows are the design before the device-resident cache, 'device' the one now.
// The last line is one JSON object.
//
//   --config gpt2|gpt2-medium|…   model shape (random weights; default gpt2)
//   --position N                  cached positions per sequence (default 512)
//   --batches 1,16                batch sizes
//   --devices cpu,webgpu          devices (one that cannot start is reported and skipped)
//   --steps N                     timed steps per row (default 2, after one warm-up)
import { parseArgs } from 'node:util';
import { presetConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import type { Device } from '../src/model/runtime.js';
import { ModelSession } from '../src/model/session.js';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'gpt2' },
    position: { type: 'string', default: '512' },
    batches: { type: 'string', default: '1,16' },
    devices: { type: 'string', default: 'cpu,webgpu' },
    steps: { type: 'string', default: '2' },
    threads: { type: 'string' },
  },
});
const cfg = presetConfig(args.config!);
const position = Number(args.position);
const batches = args.batches!.split(',').map(Number);
const steps = Number(args.steps);
const params = randomInit(cfg, 1);
const weights = new Map([...params].map(([name, t]) => [name, { kind: 'memory' as const, data: t.data, shape: t.shape }]));

interface Row {
  device: Device;
  kvCache: 'host' | 'device';
  batch: number;
  toDeviceKB: number;
  fromDeviceKB: number;
  msPerStep: number;
}
const rows: Row[] = [];
const skipped: Record<string, string> = {};
const kb = (bytes: number) => Math.round(bytes / 100) / 10;

for (const device of args.devices!.split(',') as Device[]) {
  for (const kvCache of device === 'webgpu' ? (['host', 'device'] as const) : (['host'] as const)) {
    for (const B of batches) {
      let model: ModelSession;
      try {
        model = await ModelSession.create(cfg, weights, { device, kvCache, slots: B, threads: args.threads ? Number(args.threads) : undefined });
      } catch (e) {
        skipped[device] = (e as Error).message.split('\n')[0]!;
        break;
      }
      const step = (k: number) => model.forward(Array.from({ length: B }, (_, b) => ({ slot: b, tokens: [(b * 31 + k) % cfg.vocabSize], start: position + k, logits: 'last' as const })));
      await step(0); // warm-up: the device cache's first run also uploads its zeros
      const t0 = performance.now();
      for (let k = 1; k <= steps; k++) await step(k);
      const ms = (performance.now() - t0) / steps;
      const t = model.lastTransfer;
      rows.push({ device, kvCache, batch: B, toDeviceKB: kb(t.toDevice), fromDeviceKB: kb(t.fromDevice), msPerStep: Math.round(ms) });
      console.log(`${device.padEnd(7)} cache on ${kvCache.padEnd(7)} batch ${String(B).padStart(3)}: ${kb(t.toDevice).toFixed(1).padStart(11)} kB in, ${kb(t.fromDevice).toFixed(1).padStart(8)} kB out per step, ${Math.round(ms)} ms/step`);
      await model.close();
    }
  }
}
for (const [device, why] of Object.entries(skipped)) console.log(`${device}: not measured: ${why}`);
console.log(JSON.stringify({ config: args.config, position, rows, skipped }));
