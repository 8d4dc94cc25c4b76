// The graph builder's naming of outputs: an output takes its producer's value name (no Identity
// node, a kernel call per run saved), and keeps its name when a rewrite replaces the producer.
import { describe, expect, it } from 'vitest';
import { Graph } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops.js';

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
