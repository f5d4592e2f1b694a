/**
 * Every Prometheus metric of the hub, registered in one place per process: one `HubMetrics` (one
 * registry) per process, shared by the services it runs, handed to each as `deps.metrics`. The
 * code that measures sits where the thing happens (the scheduler's dispatch, the gateway's relay,
 * the ingest's transfer routes, the vm-controller's start); only the definitions live here, so a
 * name is never registered twice and `/metrics` is one scrape.
 *
 * Gauges of state a service holds (sockets, workers, VM pools, queue depth) are sampled at scrape
 * time by the service that holds it (`sample`), so nothing ticks while nothing happens.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Seconds: from a few milliseconds (a dispatch) to an hour (a build). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const WAIT_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400];
const BUILD_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const VM_BUCKETS = [1, 5, 15, 30, 60, 90, 120, 180, 300, 600, 900];
const POOL_BUCKETS = [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

export type Sampler = () => void;

/** The event-loop delay is sampled once a second unless configured otherwise. */
export const DEFAULT_EVENT_LOOP_SAMPLE_MS = 1_000;
/** prom-client's own event-loop sampler, which would wake the process again: as good as never. */
const PROM_CLIENT_SAMPLE_MS = 2 ** 31 - 1;
/** The event-loop figures from the histogram, by the name's middle part (`nodejs_eventloop_lag_<x>_seconds`). */
const LAG_FIGURES = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const;

export class HubMetrics {
  readonly registry = new Registry();
  readonly #samplers = new Set<Sampler>();

  // scheduler
  readonly dispatchLatency = this.#histogram(
    'perry_hub_dispatch_latency_seconds',
    'From a job accepted (or moved to its sign stage) to its job_assign delivered to a worker',
    ['stage'],
    LATENCY_BUCKETS,
  );
  readonly queueWait = this.#histogram(
    'perry_hub_queue_wait_seconds',
    'Time a job waited in the queue before it was dispatched, by tier and target',
    ['tier', 'target'],
    WAIT_BUCKETS,
  );
  readonly queueDepth = this.#gauge(
    'perry_hub_queue_depth',
    'Jobs per target: queued, assigned (not yet heard from its worker) or running; the scheduler leader reports it',
    ['target', 'state'],
  );
  readonly jobsFinished = this.#counter('perry_hub_jobs_finished_total', 'Jobs that reached an outcome', ['outcome']);
  readonly buildDuration = this.#histogram(
    'perry_hub_build_duration_seconds',
    'From a job first assigned to its outcome, by target and outcome',
    ['target', 'outcome'],
    BUILD_BUCKETS,
  );

  // worker-gateway
  readonly workersConnected = this.#gauge(
    'perry_hub_workers_connected',
    'Workers connected to this process, by capability',
    ['capability'],
  );
  readonly workerSlotsFree = this.#gauge(
    'perry_hub_worker_slots_free',
    'Free build slots of the workers connected to this process, by capability',
    ['capability'],
  );
  readonly wsConnections = this.#gauge(
    'perry_hub_ws_connections',
    'Open WebSocket connections, by role (worker, cli, unidentified)',
    ['role'],
  );
  readonly logLinesRelayed = this.#counter(
    'perry_hub_log_lines_relayed_total',
    'Build log lines relayed from workers to the job event logs',
    [],
  );

  // ingest
  readonly artifactBytes = this.#counter(
    'perry_hub_artifact_bytes_total',
    'Artifact bytes uploaded by workers (in) and downloaded by clients (out)',
    ['direction'],
  );
  readonly jobsSubmitted = this.#counter('perry_hub_jobs_submitted_total', 'Builds accepted', ['via']);

  // vm-controller
  readonly vmPowerState = this.#gauge(
    'perry_hub_vm_power_state',
    'Sign VM pools: 1 for the power state each pool is in',
    ['pool', 'state'],
  );
  readonly vmDemandToStart = this.#histogram(
    'perry_hub_vm_demand_to_start_seconds',
    'From sign work (or a pre-warm hint) first waiting to the provider start call',
    ['pool'],
    VM_BUCKETS,
  );
  readonly vmBoot = this.#histogram(
    'perry_hub_vm_boot_seconds',
    "From the provider start call to the pool's first worker connecting",
    ['pool'],
    VM_BUCKETS,
  );

  // every service
  readonly natsReconnects = this.#counter('perry_hub_nats_reconnects_total', 'Reconnections of a service to NATS', [
    'service',
  ]);
  readonly mysqlPoolWait = this.#histogram(
    'perry_hub_mysql_pool_wait_seconds',
    "Time a query waited for one of the service's MySQL pool connections",
    ['service'],
    POOL_BUCKETS,
  );
  readonly mysqlPoolQueued = this.#counter(
    'perry_hub_mysql_pool_queued_total',
    'Queries that found every pool connection busy and had to queue',
    ['service'],
  );

  /** `eventLoopSampleMs`: PERRY_HUB_EVENT_LOOP_SAMPLE_MS (a timer of its own, even when idle). */
  constructor(options: { readonly eventLoopSampleMs?: number } = {}) {
    // Heap, GC, CPU, file descriptors, the event loop's lag at a scrape (nodejs_*, process_*).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: PROM_CLIENT_SAMPLE_MS });
    this.#eventLoopLag(options.eventLoopSampleMs ?? DEFAULT_EVENT_LOOP_SAMPLE_MS);
  }

  /**
   * `nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`, how late the loop's samples
   * were since the last scrape. Node's histogram records each whole interval between samples, so
   * prom-client's figures read the sampling interval itself on a healthy loop (1 s at a 1 s
   * interval); these subtract it. A sample each `sampleMs` sees a stall only if it spans one.
   */
  #eventLoopLag(sampleMs: number): void {
    for (const figure of LAG_FIGURES) this.registry.removeSingleMetric(`nodejs_eventloop_lag_${figure}_seconds`);
    const histogram = monitorEventLoopDelay({ resolution: sampleMs });
    histogram.enable();
    const late = (ns: number) => (histogram.count === 0 ? 0 : Math.max(0, ns / 1e6 - sampleMs) / 1e3);
    const read: Record<(typeof LAG_FIGURES)[number], () => number> = {
      min: () => late(histogram.min),
      max: () => late(histogram.max),
      mean: () => late(histogram.mean),
      stddev: () => (histogram.count === 0 ? 0 : histogram.stddev / 1e9),
      p50: () => late(histogram.percentile(50)),
      p90: () => late(histogram.percentile(90)),
      p99: () => late(histogram.percentile(99)),
    };
    const gauges = new Map<string, Gauge>();
    for (const figure of LAG_FIGURES) {
      const gauge = new Gauge({
        name: `nodejs_eventloop_lag_${figure}_seconds`,
        help: `The event loop's ${figure} lateness over its samples since the last scrape (one every PERRY_HUB_EVENT_LOOP_SAMPLE_MS)`,
        registers: [this.registry],
        // The first figure's collect sets them all and starts the next window; a scrape reads them in order.
        ...(figure === LAG_FIGURES[0]
          ? {
              collect: () => {
                for (const f of LAG_FIGURES) gauges.get(f)!.set(read[f]());
                histogram.reset();
              },
            }
          : {}),
      });
      gauges.set(figure, gauge);
    }
  }

  /** Run `sampler` before each scrape (it sets gauges of state its service holds); returns the removal. */
  sample(sampler: Sampler): () => void {
    this.#samplers.add(sampler);
    return () => this.#samplers.delete(sampler);
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    for (const gauge of [this.workersConnected, this.workerSlotsFree, this.wsConnections, this.vmPowerState])
      gauge.reset();
    for (const sampler of this.#samplers) sampler();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  #gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  #histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}
