// A job's training and validation loss against the step, drawn by the trainer's own SVG plotter
// (which escapes its text, so its markup can go into the page as it is).
import { linePlot, type Series } from '../train/plot.js';
import type { Metrics } from './fine-tuning-api.js';

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

export function LossCurve({ metrics }: { metrics: Metrics[] }) {
  const train: [number, number][] = metrics.filter((m) => finite(m.train_loss)).map((m) => [m.step, m.train_loss!]);
  const valid: [number, number][] = metrics.filter((m) => finite(m.valid_loss)).map((m) => [m.step, m.valid_loss!]);
  const series: Series[] = [
    { label: 'training loss', color: '#0a57c2', points: train },
    { label: 'validation loss', color: '#c2410c', points: valid },
  ];
  const last = (s: [number, number][]) => s.at(-1)?.[1].toFixed(3);
  const summary = train.length
    ? `Loss curve, ${train.length} training and ${valid.length} validation points; latest training loss ${last(train)}${valid.length ? `, validation loss ${last(valid)}` : ''}.`
    : 'Loss curve: no points yet.';
  return (
    <figure class="plot loss-curve" data-points={train.length + valid.length}>
      <div role="img" aria-label={summary} dangerouslySetInnerHTML={{ __html: linePlot(series, { title: 'Loss', xLabel: 'step', yLabel: 'loss' }) }} />
    </figure>
  );
}
