// Learning rate per optimizer step: linear warmup, then cosine decay to a floor (the book's
// appendix D; nanoGPT's get_lr).

export interface Schedule {
  peakLr: number;
  minLr: number;
  warmupSteps: number;
  /** Steps of the whole run; the cosine reaches minLr here and stays there. */
  totalSteps: number;
  /** Learning rate of the first warmup step's start (default 0). */
  initialLr?: number;
}

/** lr for optimizer step `step` (0-based). */
export function learningRate(s: Schedule, step: number): number {
  const initial = s.initialLr ?? 0;
  if (step < s.warmupSteps) return initial + ((s.peakLr - initial) * (step + 1)) / s.warmupSteps;
  if (step >= s.totalSteps || s.totalSteps <= s.warmupSteps) return s.minLr;
  const progress = (step - s.warmupSteps) / (s.totalSteps - s.warmupSteps);
  return s.minLr + (s.peakLr - s.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
