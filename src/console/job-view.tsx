// One fine-tuning job, live: status, progress, loss curves, speed, time left, checkpoints and
// events; Cancel while it runs, and the playground beside its base once it has succeeded.
import { useEffect, useRef, useState } from 'preact/hooks';
import { cancelJob, isTerminal, type Checkpoint, type Job, type JobEvent, type Metrics } from './fine-tuning-api.js';
import { metricsOf, useJobProgress } from './job-progress.js';
import { LossCurve } from './loss-curve.js';
import { href } from './route.js';
import { compact, dateTime, ErrorLine, TableHead } from './ui.js';

/** Events shown at most; a long run logs one per step. */
const SHOWN_EVENTS = 200;

/** 125 → '2 min 5 s'. */
function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The time-left figure: the estimate while the job runs, the end time once it has ended. */
function timeLeft(job: Job): { label: string; value: string } {
  if (isTerminal(job.status)) return { label: `${job.status} at`, value: job.finished_at ? new Date(job.finished_at * 1000).toLocaleTimeString() : '—' };
  if (job.estimated_finish === null) return { label: 'time left', value: job.status === 'running' ? 'estimating…' : 'not started' };
  return { label: 'time left', value: duration(job.estimated_finish - Date.now() / 1000) };
}

const loss = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '—');

function Figure({ label, value, id }: { label: string; value: string; id?: string }) {
  return (
    <div class="figure" data-figure={id}>
      <div class="value">{value}</div>
      <div class="label">{label}</div>
    </div>
  );
}

function Figures({ job, metrics }: { job: Job; metrics: Metrics[] }) {
  const latest = metrics.at(-1);
  // Step 0's event is the evaluation before training: it has no speed yet.
  const speed = metrics.findLast((m) => m.step > 0)?.tokens_per_second;
  const validated = metrics.findLast((m) => typeof m.valid_loss === 'number');
  return (
    <div class="figures">
      <Figure id="progress" label="steps done" value={latest ? `${latest.step} / ${latest.total_steps}` : '—'} />
      <Figure id="tokens-per-second" label="tokens / s" value={speed !== undefined ? compact(speed) : '—'} />
      <Figure id="eta" {...timeLeft(job)} />
      <Figure id="train-loss" label={latest ? `training loss (epoch ${latest.epoch})` : 'training loss'} value={loss(latest?.train_loss)} />
      <Figure id="valid-loss" label="validation loss" value={loss(validated?.valid_loss)} />
    </div>
  );
}

function Checkpoints({ checkpoints }: { checkpoints: Checkpoint[] }) {
  if (!checkpoints.length) return <p class="muted">No checkpoints yet: one comes at each epoch's end, and every N steps if the job asked for it.</p>;
  return (
    <div class="scroll" tabIndex={0} role="region" aria-label="Checkpoints, newest first">
      <table class="checkpoints">
        <TableHead columns={['Step', 'Training loss', 'Validation loss', 'Model']} />
        <tbody>
          {checkpoints.map((c) => (
            <tr key={c.id}>
              <td>{c.step_number}</td>
              <td>{loss(c.metrics.train_loss)}</td>
              <td>{loss(c.metrics.valid_loss)}</td>
              <td>
                <code>{c.fine_tuned_model_checkpoint}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Events({ events }: { events: JobEvent[] }) {
  const shown = events.slice(0, SHOWN_EVENTS);
  return (
    <>
      {events.length > shown.length && (
        <p class="muted">
          The newest {shown.length} of {events.length} events.
        </p>
      )}
      <div class="scroll" tabIndex={0} role="region" aria-label="Events, newest first">
        <table class="events">
          <TableHead columns={['Time', 'Level', 'Message']} />
          <tbody>
            {shown.map((e) => (
              <tr key={e.id} class={`level-${e.level}`}>
                <td class="nowrap">{new Date(e.created_at * 1000).toLocaleTimeString()}</td>
                <td>
                  <span class={`level ${e.level}`}>{e.level}</span>
                </td>
                <td>{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

export function JobView({ jobId, onChanged }: { jobId: string; onChanged: () => void }) {
  const { value, error, refresh } = useJobProgress(jobId);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const [cancelling, setCancelling] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const status = value?.job.status;
  useEffect(() => heading.current?.focus(), [jobId]); // a job opened from the list or the form is where the reader goes
  useEffect(() => onChanged(), [status]); // the jobs list shows the status too

  const cancel = async () => {
    setCancelling(true);
    setCancelError(null);
    try {
      await cancelJob(jobId);
    } catch (e) {
      setCancelError(e);
    } finally {
      setCancelling(false);
      refresh();
    }
  };

  const job = value?.job;
  const metrics = value ? metricsOf(value.events) : [];
  return (
    <section class="panel job-view" aria-labelledby="job-title">
      <h2 id="job-title" ref={heading} tabIndex={-1}>
        Job <code>{jobId}</code>
      </h2>
      {!value && !error && <p class="muted">Loading…</p>}
      <ErrorLine error={error} />
      {job && (
        <>
          <div class="row job-head">
            <p class="job-status" aria-live="polite">
              Status: <span class={`status ${job.status}`} data-status={job.status}>{job.status.replace('_', ' ')}</span>
            </p>
            <p class="muted">
              <code>{job.model}</code> · {job.method.scratchgpt?.task ?? 'instruction'}, {job.method.scratchgpt?.method ?? 'full'} · {job.hyperparameters.n_epochs} epochs, batch{' '}
              {job.hyperparameters.batch_size} · created {dateTime(job.created_at)}
            </p>
          </div>
          <div class="row">
            <button type="button" class="danger" onClick={cancel} disabled={isTerminal(job.status) || cancelling}>
              {cancelling ? 'Cancelling…' : 'Cancel'}
            </button>
            {job.status === 'succeeded' && job.fine_tuned_model && (
              <a class="button-link" href={href('playground', { models: `${job.model},${job.fine_tuned_model}`, mode: 'chat' })}>
                Open in playground next to its base
              </a>
            )}
          </div>
          <ErrorLine error={cancelError} />
          {job.fine_tuned_model && (
            <p>
              Fine-tuned model: <code>{job.fine_tuned_model}</code>
            </p>
          )}
          {job.error && <ErrorLine error={new Error(`${job.error.code}: ${job.error.message}`)} />}
          <Figures job={job} metrics={metrics} />
          <LossCurve metrics={metrics} />
          <h3>Checkpoints</h3>
          <Checkpoints checkpoints={value.checkpoints} />
          <h3>Events</h3>
          <Events events={value.events} />
        </>
      )}
    </section>
  );
}
