// Inference sessions let ORT's threads spin within a run (decode steps are many short parallel
// sections) but not after it: between runs a server's other work gets both cores.
import { expect, it } from 'vitest';
import type { WeightSource } from '../src/model/checkpoint.js';
import type { GPTConfig } from '../src/model/config.js';
import { randomInit } from '../src/model/gpt.js';
import { ModelSession } from '../src/model/session.js';

it('a model session leaves no thread spinning between runs', async () => {
  // wide enough that ORT runs its matmuls on both threads (a spinning pool would burn about a third of a core)
  const cfg: GPTConfig = { vocabSize: 4000, contextLength: 64, nEmbd: 256, nLayer: 2, nHead: 4, dropout: 0, qkvBias: true, layerNormEpsilon: 1e-5 };
  const weights = new Map<string, WeightSource>([...randomInit(cfg, 1)].map(([name, t]) => [name, { kind: 'memory', data: t.data, shape: t.shape }]));
  const model = await ModelSession.create(cfg, weights, { threads: 2 });
  let idleMs = 0;
  for (let i = 0; i < 5; i++) {
    await model.forward([{ slot: 0, tokens: Array.from({ length: 32 }, (_, t) => t), start: 0, logits: 'last' }]);
    await model.forward([{ slot: 0, tokens: [7], start: 32, logits: 'last' }]);
    const before = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 100));
    const used = process.cpuUsage(before);
    idleMs += (used.user + used.system) / 1000;
  }
  await model.close();
  expect(idleMs / 5).toBeLessThan(10); // CPU ms per 100 ms idle
});
