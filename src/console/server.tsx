// The server page: health, and live figures read from /metrics every 2 s (rates and means are over
// the last interval), with generated tokens per second plotted over the last few minutes.
import { useRef } from 'preact/hooks';
import { linePlot } from '../train/plot.js';
import { request } from './api.js';
import { intervalMean, parseMetrics, rate, type Samples } from './prometheus.js';
import { compact, ErrorLine, TableHead, usePoll } from './ui.js';

const EVERY_MS = 2000;
const HISTORY = 90; // points on the plot: 3 minutes

interface Health {
  status: string;
  models: Record<string, string>;
  storage?: string;
}

interface Scrape {
  at: number;
  samples: Samples;
}

interface Figures {
  tokensPerSecond: number;
  promptTokensPerSecond: number;
  requestsPerSecond: number;
  queue: number;
  running: number;
  slots: number;
  ttft?: number;
  itl?: number;
  generated: number;
  lagP99: number;
  rss: number;
}

function figuresOf(prev: Scrape | undefined, next: Scrape): Figures {
  const s = next.samples;
  const dt = prev ? (next.at - prev.at) / 1000 : 0;
  return {
    tokensPerSecond: rate(prev?.samples, s, 'scratchgpt_generation_tokens_total', dt),
    promptTokensPerSecond: rate(prev?.samples, s, 'scratchgpt_prompt_tokens_total', dt),
    requestsPerSecond: rate(prev?.samples, s, 'scratchgpt_requests_total', dt),
    queue: s.get('scratchgpt_queue_depth') ?? 0,
    running: s.get('scratchgpt_running_sequences') ?? 0,
    slots: s.get('scratchgpt_batch_slots') ?? 0,
    ttft: intervalMean(prev?.samples, s, 'scratchgpt_time_to_first_token_seconds'),
    itl: intervalMean(prev?.samples, s, 'scratchgpt_inter_token_latency_seconds'),
    generated: s.get('scratchgpt_generation_tokens_total') ?? 0,
    lagP99: s.get('nodejs_eventloop_lag_p99_seconds') ?? 0,
    rss: s.get('process_resident_memory_bytes') ?? 0,
  };
}

const ms = (seconds: number | undefined) => (seconds === undefined ? '—' : `${(seconds * 1000).toFixed(seconds < 0.1 ? 1 : 0)} ms`);

function Figure({ label, value, id }: { label: string; value: string; id: string }) {
  return (
    <div class="figure" data-figure={id}>
      <div class="value">{value}</div>
      <div class="label">{label}</div>
    </div>
  );
}

export function ServerPage() {
  const last = useRef<Scrape | undefined>(undefined);
  const history = useRef<[number, number][]>([]);
  const start = useRef(Date.now());
  const metrics = usePoll(async () => {
    const text = await (await request('/metrics')).text();
    const next = { at: Date.now(), samples: parseMetrics(text) };
    const f = figuresOf(last.current, next);
    if (last.current) history.current = [...history.current, [(next.at - start.current) / 1000, f.tokensPerSecond] as [number, number]].slice(-HISTORY);
    last.current = next;
    return f;
  }, EVERY_MS);
  // /health answers 503 with the same body while models load: read it either way.
  const health = usePoll(async () => (await fetch('/health')).json() as Promise<Health>, EVERY_MS);
  const f = metrics.value;
  const h = health.value;
  return (
    <>
      <h1>Server</h1>
      <section class="panel" aria-labelledby="health-title">
        <h2 id="health-title">Health</h2>
        <ErrorLine error={health.error} />
        {h && (
          <>
            <p>
              Status: <span class={`status ${h.status === 'ok' ? 'succeeded' : 'failed'}`}>{h.status}</span>
              {h.storage && <span class="error"> Storage: {h.storage}</span>}
            </p>
            <table>
              <TableHead columns={['Model', 'State']} />
              <tbody>
                {Object.entries(h.models).map(([id, state]) => (
                  <tr key={id}>
                    <td class="mono">{id}</td>
                    <td>{state}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
      <section class="panel" aria-labelledby="live-title">
        <h2 id="live-title">Live figures</h2>
        <p class="muted">From /metrics every {EVERY_MS / 1000} s; rates and means are over the last interval.</p>
        <ErrorLine error={metrics.error} />
        {f && (
          <div class="figures">
            <Figure id="tokens-per-second" label="generated tokens/s" value={f.tokensPerSecond.toFixed(1)} />
            <Figure id="prompt-tokens-per-second" label="prompt tokens/s" value={f.promptTokensPerSecond.toFixed(1)} />
            <Figure id="ttft" label="time to first token (mean)" value={ms(f.ttft)} />
            <Figure id="itl" label="inter-token latency (mean)" value={ms(f.itl)} />
            <Figure id="running" label={`running sequences (of ${f.slots} slots)`} value={String(f.running)} />
            <Figure id="queue" label="queued sequences" value={String(f.queue)} />
            <Figure id="requests-per-second" label="HTTP requests/s" value={f.requestsPerSecond.toFixed(2)} />
            <Figure id="generated" label="tokens generated since start" value={compact(f.generated)} />
            <Figure id="loop-lag" label="event-loop lag p99" value={ms(f.lagP99)} />
            <Figure id="memory" label="resident memory" value={`${compact(f.rss / 2 ** 20)} MiB`} />
          </div>
        )}
        <div
          class="plot"
          data-points={history.current.length}
          dangerouslySetInnerHTML={{
            __html: linePlot([{ label: 'generated tokens/s', color: '#0a57c2', points: history.current }], { title: 'Generated tokens per second', xLabel: 'seconds since this page opened', yLabel: 'tokens/s' }),
          }}
        />
      </section>
    </>
  );
}
