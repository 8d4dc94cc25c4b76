// The position ids and causal mask a whole-sequence graph (classifier, embeddings) takes for
// length T, kept per length: the same few lengths recur, and building a T×T mask each call would not.
import * as ort from 'onnxruntime-node';
import { causalMask } from './gpt.js';

export interface CausalTensors {
  positions: ort.Tensor;
  mask: ort.Tensor;
}

export class CausalInputs {
  private readonly byLength = new Map<number, CausalTensors>();

  constructor(private readonly keep = 16) {}

  get(T: number): CausalTensors {
    let m = this.byLength.get(T);
    if (!m) {
      m = {
        positions: new ort.Tensor('int64', BigInt64Array.from({ length: T }, (_, t) => BigInt(t)), [1, T]),
        mask: new ort.Tensor('float32', causalMask(T), [1, 1, T, T]),
      };
      if (this.byLength.size >= this.keep) this.byLength.delete(this.byLength.keys().next().value!);
      this.byLength.set(T, m);
    }
    return m;
  }
}
