// The fine-tuning page: datasets (upload and list), the new-job form, the jobs, and the job picked
// by the URL (#/fine-tuning?job=ftjob-…), so a job's page can be linked and reloaded.
import { useState } from 'preact/hooks';
import { listModels } from './api.js';
import { isTerminal, listFiles, listJobs, type DatasetFile, type Job } from './fine-tuning-api.js';
import './fine-tuning.css';
import { JobView } from './job-view.js';
import { NewJobForm } from './new-job.js';
import { href, navigate } from './route.js';
import { bytes, dateTime, ErrorLine, TableHead, usePoll } from './ui.js';
import { DatasetUpload } from './upload.js';

const JOBS_POLL_MS = 2000;

function FilesTable({ files }: { files: DatasetFile[] }) {
  if (!files.length) return <p class="muted">No datasets yet.</p>;
  return (
    <table class="files">
      <caption class="visually-hidden">Uploaded datasets, newest first</caption>
      <TableHead columns={['Name and id', 'Size', 'Created']} />
      <tbody>
        {files.map((f) => (
          <tr key={f.id} data-file-id={f.id}>
            <td>
              {f.filename}
              <br />
              <code class="file-id">{f.id}</code>
            </td>
            <td class="nowrap">{bytes(f.bytes)}</td>
            <td>{dateTime(f.created_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function JobsTable({ jobs, selected }: { jobs: Job[]; selected: string | null }) {
  if (!jobs.length) return <p class="muted">No jobs yet.</p>;
  return (
    <table class="jobs">
      <caption class="visually-hidden">Fine-tuning jobs, newest first</caption>
      <TableHead columns={['Job', 'Base model', 'Status', 'Created', 'Fine-tuned model']} />
      <tbody>
        {jobs.map((j) => (
          <tr key={j.id} data-job-id={j.id} aria-current={j.id === selected ? 'true' : undefined}>
            <td>
              <a href={href('fine-tuning', { job: j.id })}>
                <code>{j.id}</code>
              </a>
            </td>
            <td>
              <code>{j.model}</code>
            </td>
            <td>
              <span class={`status ${j.status}`}>{j.status.replace('_', ' ')}</span>
            </td>
            <td class="nowrap">{dateTime(j.created_at)}</td>
            <td>{j.fine_tuned_model ? <code>{j.fine_tuned_model}</code> : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FineTuningPage({ params }: { params: URLSearchParams }) {
  const selected = params.get('job');
  const models = usePoll(listModels, 0);
  const files = usePoll(listFiles, 0);
  // The list follows jobs that have not ended; once all have, it is read again only on a change.
  const [unfinished, setUnfinished] = useState(false);
  const jobs = usePoll(
    async () => {
      const list = await listJobs();
      setUnfinished(list.some((j) => !isTerminal(j.status)));
      return list;
    },
    unfinished ? JOBS_POLL_MS : 0,
  );

  return (
    <>
      <h1>Fine-tuning</h1>
      {selected && <JobView jobId={selected} onChanged={jobs.refresh} />}
      <div class="ft-columns">
        <section class="panel" aria-labelledby="datasets-title">
          <h2 id="datasets-title">Datasets</h2>
          <DatasetUpload onUploaded={files.refresh} />
          <ErrorLine error={files.error} />
          <FilesTable files={files.value ?? []} />
        </section>
        <section class="panel" aria-labelledby="new-job-title">
          <h2 id="new-job-title">New job</h2>
          <ErrorLine error={models.error} />
          <NewJobForm
            models={models.value ?? []}
            files={files.value ?? []}
            onCreated={(job) => {
              jobs.refresh();
              navigate('fine-tuning', { job: job.id });
            }}
          />
        </section>
      </div>
      <section class="panel" aria-labelledby="jobs-title">
        <h2 id="jobs-title">Jobs</h2>
        <ErrorLine error={jobs.error} />
        <JobsTable jobs={jobs.value ?? []} selected={selected} />
      </section>
    </>
  );
}
