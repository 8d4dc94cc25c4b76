// The graph builder's naming of outputs: an output takes its producer's value name (no Identity
// node, a kernel call per run saved), and keeps its name when a rewrite replaces the producer.
// And fuseSkipLayerNorm: the fused node computes what the Add and LayerNorm did, by float64 sums.
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops.js';
import { fuseSkipLayerNorm } from '../src/onnx/rewrite.js';
import { serialize } from '../src/onnx/serialize.js';

describe('Graph outputs', () => {
  it('a node-made value takes the output name; its consumers follow; the old Value is refused', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const y = op.add(x, x);
    const z = op.mul(y, y);
    const out = g.output(y, 'sum');
    expect(out.name).toBe('sum');
    expect(g.nodes.map((n) => n.op)).toEqual(['Add', 'Mul']);
    expect(g.producer.get(z.name)!.inputs).toEqual(['sum', 'sum']);
    expect(() => op.neg(y)).toThrow(/no longer in the graph/);
    expect(op.neg(out).graph).toBe(g);
  });

  it('an input, or a value already an output, gets an Identity', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const y = g.output(op.add(x, x), 'y');
    g.output(x, 'x_out');
    g.output(y, 'y_again');
    expect(g.outputs.map((o) => o.name)).toEqual(['y', 'x_out', 'y_again']);
    expect(g.nodes.map((n) => n.op)).toEqual(['Add', 'Identity', 'Identity']);
  });

  it('replacing the node that makes an output keeps the output name and its place', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    g.output(op.neg(x), 'first');
    g.output(op.add(x, x), 'second');
    const node = g.producer.get('first')!;
    g.replaceNode(node, () => [op.mul(x, op.scalar(x, -1))]);
    expect(g.outputs.map((o) => o.name)).toEqual(['first', 'second']);
    expect(g.producer.get('first')!.op).toBe('Mul');
    expect(g.nodes.some((n) => n.op === 'Neg')).toBe(false);
  });
});

describe('fuseSkipLayerNorm', () => {
  it('a residual sum read by its LayerNorm and by a later node: one fused node, the same values', async () => {
    const [T, C] = [3, 8];
    const g = new Graph();
    const [x, y] = [g.input('x', 'float32', [1, T, C]), g.input('y', 'float32', [1, T, C])];
    const gamma = g.constant(Float32Array.from({ length: C }, (_, i) => 1 + i / 10), [C]);
    const beta = g.constant(Float32Array.from({ length: C }, (_, i) => i / 20 - 0.2), [C]);
    const sum = op.add(x, y);
    const normalized = g.output(op.layerNorm(sum, gamma, beta, 1e-5), 'normalized');
    g.output(op.add(sum, normalized), 'next'); // the residual stream reads the sum on
    fuseSkipLayerNorm(g);
    expect(g.nodes.map((n) => n.op)).toEqual(['SkipLayerNormalization', 'Add']);

    const data = (seed: number) => Float32Array.from({ length: T * C }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 3);
    const [xs, ys] = [data(1), data(2)];
    const session = await ort.InferenceSession.create(serialize(g).bytes);
    const out = await session.run({ x: new ort.Tensor('float32', xs, [1, T, C]), y: new ort.Tensor('float32', ys, [1, T, C]) });
    for (let t = 0; t < T; t++) {
      const s = Array.from({ length: C }, (_, c) => xs[t * C + c]! + ys[t * C + c]!);
      const mean = s.reduce((a, b) => a + b, 0) / C;
      const variance = s.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
      for (let c = 0; c < C; c++) {
        const n = ((s[c]! - mean) / Math.sqrt(variance + 1e-5)) * (1 + c / 10) + (c / 20 - 0.2);
        expect((out.normalized!.data as Float32Array)[t * C + c]).toBeCloseTo(n, 5);
        expect((out.next!.data as Float32Array)[t * C + c]).toBeCloseTo(s[c]! + n, 5);
      }
    }
    await session.release();
  });
});
