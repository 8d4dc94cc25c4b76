// Prometheus text exposition (format 0.0.4) with counters, gauges and histograms, just enough for
// /metrics. Label values are escaped; series are created on first use. Process gauges (event-loop
// lag, memory) use prom-client's default names, so existing Node.js dashboards read them.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

type Labels = Record<string, string>;

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labelText = (l: Labels, extra: Labels = {}) => {
  const all = Object.entries({ ...l, ...extra });
  return all.length ? `{${all.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}` : '';
};
const key = (l: Labels) => JSON.stringify(Object.entries(l).sort());

abstract class Metric<S> {
  protected readonly series = new Map<string, { labels: Labels; value: S }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  protected abstract init(): S;
  protected get(labels: Labels): S {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { labels, value: this.init() }));
    return s.value;
  }
  abstract lines(): string[];
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.lines()].join('\n');
  }
}

export class Counter extends Metric<{ v: number }> {
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  protected init() {
    return { v: 0 };
  }
  inc(labels: Labels = {}, by = 1): void {
    this.get(labels).v += by;
  }
  value(labels: Labels = {}): number {
    return this.series.get(key(labels))?.value.v ?? 0;
  }
  lines(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${labelText(s.labels)} ${s.value.v}`);
  }
}

export class Gauge extends Counter {
  override readonly type = 'gauge';
  set(labels: Labels, v: number): void {
    this.get(labels).v = v;
  }
}

export class Histogram extends Metric<{ counts: number[]; sum: number; count: number }> {
  constructor(
    name: string,
    help: string,
    readonly buckets: number[],
  ) {
    super(name, help, 'histogram');
  }
  protected init() {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  observe(labels: Labels, v: number): void {
    const s = this.get(labels);
    this.buckets.forEach((b, i) => {
      if (v <= b) s.counts[i]!++;
    });
    s.sum += v;
    s.count++;
  }
  lines(): string[] {
    return [...this.series.values()].flatMap(({ labels, value: s }) => [
      ...this.buckets.map((b, i) => `${this.name}_bucket${labelText(labels, { le: String(b) })} ${s.counts[i]}`),
      `${this.name}_bucket${labelText(labels, { le: '+Inf' })} ${s.count}`,
      `${this.name}_sum${labelText(labels)} ${s.sum}`,
      `${this.name}_count${labelText(labels)} ${s.count}`,
    ]);
  }
}

/** One per process (the event loop is the process's), shared by every Metrics. */
let loopDelay: IntervalHistogram | undefined;
/** The lag timer's period: each sample is the time between its ticks, so an idle loop reads ~10 ms. */
export const LOOP_LAG_RESOLUTION_MS = 10;

/** Event-loop lag since the previous scrape (as prom-client: the histogram resets at each), and memory. */
function processGauges(): string {
  const h = loopDelay!;
  const seconds = (ns: number) => (h.count > 0 ? ns / 1e9 : 0);
  const memory = process.memoryUsage();
  const gauges: [string, string, number][] = [
    ['nodejs_eventloop_lag_p50_seconds', 'The median event loop delay since the previous scrape (a 10 ms timer: idle reads 0.01).', seconds(h.percentile(50))],
    ['nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the event loop delay since the previous scrape (a 10 ms timer: idle reads 0.01).', seconds(h.percentile(99))],
    ['nodejs_eventloop_lag_max_seconds', 'The maximum event loop delay since the previous scrape (a 10 ms timer: idle reads 0.01).', seconds(h.max)],
    ['nodejs_eventloop_lag_mean_seconds', 'The mean event loop delay since the previous scrape (a 10 ms timer: idle reads 0.01).', seconds(h.mean)],
    ['process_resident_memory_bytes', 'Resident memory size in bytes.', memory.rss],
    ['nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', memory.heapUsed],
  ];
  h.reset();
  return gauges.map(([name, help, v]) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${v}`).join('\n');
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 20];

/** The server's metrics (one instance per server; tests read it directly or via /metrics). */
export class Metrics {
  readonly requests = new Counter('scratchgpt_requests_total', 'HTTP requests by route and status code.');
  readonly promptTokens = new Counter('scratchgpt_prompt_tokens_total', 'Prompt tokens of admitted sequences.');
  readonly generationTokens = new Counter('scratchgpt_generation_tokens_total', 'Tokens generated.');
  readonly finished = new Counter('scratchgpt_sequences_finished_total', 'Sequences ended, by reason (stop, length, cancelled, error).');
  readonly ttft = new Histogram('scratchgpt_time_to_first_token_seconds', 'Time from admission to the first generated token.', LATENCY_BUCKETS);
  readonly itl = new Histogram('scratchgpt_inter_token_latency_seconds', 'Time between consecutive tokens of a sequence.', LATENCY_BUCKETS);
  readonly queueDepth = new Gauge('scratchgpt_queue_depth', 'Sequences waiting for a batch slot.');
  readonly running = new Gauge('scratchgpt_running_sequences', 'Sequences in the running batch (occupied KV slots).');
  readonly batchSize = new Histogram('scratchgpt_step_batch_size', 'Sequences per forward call of the scheduler.', [1, 2, 4, 8, 16, 32, 64, 128]);
  readonly slots = new Gauge('scratchgpt_batch_slots', 'KV-cache slots (the largest running batch).');
  readonly embeddingTokens = new Counter('scratchgpt_embedding_tokens_total', 'Input tokens of /v1/embeddings requests answered.');
  readonly prefixQueries = new Counter('scratchgpt_prefix_cache_queries_total', 'Prompt tokens of sequences that looked up the prefix cache.');
  readonly prefixHits = new Counter('scratchgpt_prefix_cache_hits_total', 'Prompt tokens whose K/V came from the prefix cache (or a running sequence with the same start) instead of a prefill.');
  readonly prefixHitRate = new Gauge('scratchgpt_prefix_cache_hit_rate', 'Prefix-cache hits / queries (tokens) since the model loaded.');
  readonly prefixBlocks = new Gauge('scratchgpt_prefix_cache_blocks', 'Blocks (16 tokens each) in the prefix cache.');
  readonly prefixEvictions = new Counter('scratchgpt_prefix_cache_evictions_total', 'Blocks evicted from the prefix cache (least recently used, over its budget).');
  readonly draftTokens = new Counter('scratchgpt_draft_tokens_total', 'Tokens a draft proposed in speculative rounds (serve --draft).');
  readonly draftAccepted = new Counter('scratchgpt_draft_accepted_tokens_total', 'Proposed tokens the sequence sampled too (each round also gives one token of its own).');

  constructor() {
    loopDelay ??= monitorEventLoopDelay({ resolution: LOOP_LAG_RESOLUTION_MS });
    loopDelay.enable();
  }

  render(): string {
    const all = [this.requests, this.promptTokens, this.generationTokens, this.finished, this.ttft, this.itl, this.queueDepth, this.running, this.batchSize, this.slots, this.embeddingTokens, this.prefixQueries, this.prefixHits, this.prefixHitRate, this.prefixBlocks, this.prefixEvictions, this.draftTokens, this.draftAccepted];
    return all.map((m) => m.render()).join('\n') + '\n' + processGauges() + '\n';
  }
}
