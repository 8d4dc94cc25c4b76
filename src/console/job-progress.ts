// A job's live state for its page: the job, every event so far and its checkpoints, polled about
// once a second while the job runs and no more once it has ended.
import { useRef, useState } from 'preact/hooks';
import { eventSeq, getJob, isTerminal, listCheckpoints, newEvents, type Checkpoint, type Job, type JobEvent, type Metrics } from './fine-tuning-api.js';
import { usePoll } from './ui.js';

export interface JobProgress {
  job: Job;
  /** Every event of the job, newest first. */
  events: JobEvent[];
  checkpoints: Checkpoint[];
}

const POLL_MS = 1000;

/** Events kept across polls, so each poll reads only the pages of events it has not seen. */
interface Seen {
  jobId: string;
  ids: Set<string>;
  events: JobEvent[];
}

export function useJobProgress(jobId: string): { value: JobProgress | undefined; error: unknown; refresh: () => void } {
  const seen = useRef<Seen>({ jobId, ids: new Set(), events: [] });
  const [ended, setEnded] = useState(false);
  const poll = usePoll(
    async (): Promise<JobProgress> => {
      if (seen.current.jobId !== jobId) seen.current = { jobId, ids: new Set(), events: [] };
      const s = seen.current;
      // The job before its events: the events then include all those written before the status was.
      const job = await getJob(jobId);
      const fresh = (await newEvents(jobId, s.ids)).filter((e) => !s.ids.has(e.id));
      if (fresh.length) {
        for (const e of fresh) s.ids.add(e.id);
        s.events = [...fresh, ...s.events].sort((a, b) => eventSeq(b) - eventSeq(a));
      }
      const checkpoints = await listCheckpoints(jobId);
      setEnded(isTerminal(job.status));
      return { job, events: s.events, checkpoints };
    },
    // Once the job has ended, ms 0 makes usePoll fetch once more and then stop.
    ended ? 0 : POLL_MS,
    [jobId],
  );
  // Until the new job's first answer, the last one is another job's.
  return { ...poll, value: poll.value?.job.id === jobId ? poll.value : undefined };
}

/** The metrics events, oldest first. */
export function metricsOf(events: JobEvent[]): Metrics[] {
  return events
    .filter((e) => e.type === 'metrics' && typeof e.data.step === 'number')
    .map((e) => e.data as Metrics)
    .reverse();
}
