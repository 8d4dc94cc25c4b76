// Central difference of a float64 loss with respect to one float32 parameter entry. The step
// is measured after rounding (x ± h is not exactly representable in float32), so the quotient
// divides by the step the parameter actually took.
export function centralDifference(view: Float32Array, i: number, loss: () => number, h = 1e-3): number {
  const x = view[i]!;
  view[i] = x + h;
  const up = loss();
  const hUp = view[i]! - x;
  view[i] = x - h;
  const down = loss();
  const hDown = x - view[i]!;
  view[i] = x;
  return (up - down) / (hUp + hDown);
}
