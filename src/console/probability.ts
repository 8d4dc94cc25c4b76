// How a token's logprob is shown: as a percentage, as a colour band, and its text with whitespace
// made visible. Pure, so the browser tests format the API's numbers exactly as the page does.

/** exp(logprob) as a percentage: 3 significant digits down to 0.001 %, then in exponent form. */
export function percent(logprob: number): string {
  const p = Math.exp(logprob) * 100;
  if (p >= 99.95) return '100%';
  if (p >= 10) return `${p.toFixed(1)}%`;
  if (p >= 0.001) return `${Number(p.toPrecision(3))}%`;
  return `${p.toExponential(1)}%`;
}

/** The colour bands of the token view, most likely first; `min` is a probability. */
export const BANDS = [
  { id: 'p80', min: 0.8, label: '≥ 80%' },
  { id: 'p50', min: 0.5, label: '50–80%' },
  { id: 'p20', min: 0.2, label: '20–50%' },
  { id: 'p5', min: 0.05, label: '5–20%' },
  { id: 'p0', min: 0, label: '< 5%' },
] as const;

export type BandId = (typeof BANDS)[number]['id'];

export function bandOf(logprob: number): BandId {
  const p = Math.exp(logprob);
  return BANDS.find((b) => p >= b.min)!.id;
}

/** A token's text with spaces, tabs and newlines visible, for lists of alternatives. */
export function visibleToken(text: string): string {
  if (text === '') return '∅';
  return text.replace(/ /g, '␣').replace(/\t/g, '⇥').replace(/\r?\n/g, '↵');
}
