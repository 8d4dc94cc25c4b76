// Parameters as plain tensors: a name and shape per parameter (gpt.ts's parameterSpecs lists
// GPT-2's), and the float32 values that checkpoints, training and merges pass around.

export interface ParamSpec {
  name: string;
  shape: number[];
}

/** A named float32 tensor in row-major order. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export type Params = Map<string, Tensor>;

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
