// A dependency-free SVG line plot of training and validation loss against tokens seen (the
// book's plot_losses, without matplotlib).

export interface Series {
  label: string;
  color: string;
  points: [number, number][]; // [x, y]
}

const W = 640;
const H = 400;
const M = { left: 64, right: 20, top: 36, bottom: 52 };

/** "Nice" tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A tick's label: as many decimals as the ticks' spacing needs, so neighbours never read the same. */
function fmt(v: number, step: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3 && step >= 100) return `${+(v / 1e3).toPrecision(3)}k`;
  return v.toFixed(Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
}

const spacing = (t: number[]) => (t.length > 1 ? t[1]! - t[0]! : 1);

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function linePlot(series: Series[], opts: { title: string; xLabel: string; yLabel: string }): string {
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  let [x0, x1] = [Math.min(...all.map((p) => p[0]), 0), Math.max(...all.map((p) => p[0]), 1)];
  let [y0, y1] = all.length ? [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const [pw, ph] = [W - M.left - M.right, H - M.top - M.bottom];
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => M.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const n = (v: number) => v.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`,
  ];
  const [xt, yt] = [ticks(x0, x1), ticks(y0, y1)];
  for (const t of xt) {
    parts.push(`<line x1="${n(sx(t))}" y1="${M.top}" x2="${n(sx(t))}" y2="${M.top + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${n(sx(t))}" y="${M.top + ph + 16}" text-anchor="middle">${fmt(t, spacing(xt))}</text>`);
  }
  for (const t of yt) {
    parts.push(`<line x1="${M.left}" y1="${n(sy(t))}" x2="${M.left + pw}" y2="${n(sy(t))}" stroke="#eee"/>`);
    parts.push(`<text x="${M.left - 6}" y="${n(sy(t) + 4)}" text-anchor="end">${fmt(t, spacing(yt))}</text>`);
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.map(([x, y]) => `${n(sx(x))},${n(sy(y))}`).join(' ')}"/>`);
    for (const [x, y] of pts.length === 1 ? pts : []) parts.push(`<circle cx="${n(sx(x))}" cy="${n(sy(y))}" r="3" fill="${s.color}"/>`);
    const ly = M.top + 14 + i * 16;
    parts.push(`<line x1="${M.left + pw - 120}" y1="${ly - 4}" x2="${M.left + pw - 100}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${M.left + pw - 94}" y="${ly}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** The loss curve of a run from its metrics records. */
export function lossPlot(records: { tokens_seen: number; train_loss: number | null; val_loss: number | null }[]): string {
  const pts = (key: 'train_loss' | 'val_loss') =>
    records.filter((r) => r[key] !== null).map((r): [number, number] => [r.tokens_seen, r[key]!]);
  return linePlot(
    [
      { label: 'training loss', color: '#1f77b4', points: pts('train_loss') },
      { label: 'validation loss', color: '#ff7f0e', points: pts('val_loss') },
    ],
    { title: 'Loss', xLabel: 'tokens seen', yLabel: 'loss' },
  );
}
