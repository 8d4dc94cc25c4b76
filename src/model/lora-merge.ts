// Folding a LoRA update into a GPT-2 linear weight: W' = W + scale·A·B, in GPT-2's Conv1D
// orientation (W [in, out], so y = x·W'), with A [in, rank] and B [rank, out]. PEFT stores the
// same factors transposed (lora_A [rank, in], lora_B [out, rank]: peft-adapter.ts converts), and
// finetuning trains them in this orientation (train/lora.ts). One implementation for both, so a
// saved adapter loads into exactly the weights training merged.
import type { Tensor } from './params.js';

/**
 * W + scale·A·B as a new tensor. Each row of A·B is summed in float64 and rounded once, so the
 * result does not depend on the rank's summation order beyond float64 rounding.
 */
export function mergeLowRank(W: Tensor, A: Tensor, B: Tensor, scale: number, where = 'LoRA'): Tensor {
  const [inDim, outDim] = W.shape as [number, number];
  const r = A.shape[1]!;
  if (W.shape.length !== 2 || A.shape.length !== 2 || B.shape.length !== 2 || A.shape[0] !== inDim || B.shape[0] !== r || B.shape[1] !== outDim) {
    throw new Error(`${where}: shapes do not compose: W [${W.shape.join(', ')}], A [${A.shape.join(', ')}], B [${B.shape.join(', ')}] (expected A [${inDim}, r], B [r, ${outDim}])`);
  }
  const out = new Float32Array(W.data.length);
  const row = new Float64Array(outDim);
  for (let i = 0; i < inDim; i++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const a = A.data[i * r + k]!;
      if (a === 0) continue;
      for (let j = 0, b = k * outDim; j < outDim; j++, b++) row[j]! += a * B.data[b]!;
    }
    for (let j = 0, w = i * outDim; j < outDim; j++, w++) out[w] = W.data[w]! + scale * row[j]!;
  }
  return { shape: [inDim, outDim], data: out };
}

/** An [rows, cols] matrix transposed to [cols, rows]. */
export function transpose(t: Tensor): Tensor {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = t.data[i * cols + j]!;
  return { shape: [cols, rows], data: out };
}
