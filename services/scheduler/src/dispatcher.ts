/**
 * The leader's dispatch loop. Built when this instance wins the scheduler lease, from MySQL (jobs)
 * and KV (workers, VM pools); torn down when the lease is lost.
 */
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { topologyNames, type ConsumerSpec, type Subjects } from '@perry-hub/contracts';
import { consumeDurable, type HubMetrics, type Logger } from '@perry-hub/runtime';
import { assign } from './assign.js';
import { onActivity, onLost, onPresence, onVmState } from './bus-events.js';
import type { SchedulerConfig } from './config.js';
import { JobEvents } from './events.js';
import { GatewayWatch } from './gateways.js';
import { intakeConsumer, intakeStranded, mendIntake, onIntake } from './intake.js';
import { LeaderLinks } from './links.js';
import { endWaits } from './outcomes.js';
import { capabilityKey } from './queue/job-queue.js';
import { pickJobs } from './round.js';
import { emptyLeaderState, enqueueRow, queuedInfo, runRow, sortKey, type Context } from './state.js';
import type { JobStore } from './store.js';
import { allSettledOrFirstError, timed } from './steps.js';
import * as sweeps from './sweeps.js';

const encoder = new TextEncoder();
/** A round that failed (MySQL away) is tried again after this. */
const DISPATCH_RETRY_MS = 1_000;
/** Queue changes within this long are published as one queue depth. */
const DEPTH_COALESCE_MS = 250;

export interface DispatcherDeps {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  config: SchedulerConfig;
  store: JobStore;
  metrics: HubMetrics;
  /**
   * A subscription, watch or consumer the leader depends on ended without stop(): it would go
   * on deciding on a stale view, so it must step down (as nats.js services stop on such a loss).
   */
  onFatal: (err: Error) => void;
}

export class Dispatcher {
  readonly ctx: Context;
  readonly #deps: DispatcherDeps;
  readonly #links: LeaderLinks;
  readonly #announced = new Map<string, string>();
  readonly #intake: ConsumerSpec;
  #roundScheduled = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #depthTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  /** The pass over unpublished outboxes in progress, if any. */
  #republishing: Promise<void> | undefined;

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
    this.#links = new LeaderLinks({ nc: deps.nc, log: deps.log, onFatal: deps.onFatal });
    this.#intake = intakeConsumer(deps.config.subjectPrefix);
    const js = jetstream(deps.nc);
    this.ctx = {
      nc: deps.nc,
      subjects: deps.subjects,
      log: deps.log,
      config: deps.config,
      store: deps.store,
      events: new JobEvents(js, deps.subjects, topologyNames(deps.config.subjectPrefix).eventsStream),
      ...emptyLeaderState(),
      metrics: deps.metrics,
      now: Date.now,
      kick: () => this.#kick(),
      touched: () => this.#depthChanged(),
      leaderSince: Date.now(),
      leading: () => !this.#links.stopped,
      presenceRevision: 0,
      outboxBehind: false,
    };
  }

  async start(): Promise<void> {
    const { nc, config, subjects } = this.#deps;
    const links = this.#links;
    const names = topologyNames(config.subjectPrefix);
    const began = Date.now();
    // Gateways taken for dead while the watch was behind had their workers released, which come
    // back only as their presence entries change: the next term reads them all afresh.
    const gateways = new GatewayWatch(this.ctx, names.instancesBucket, config.instanceTtlMs, () =>
      links.fail(new Error('the watch of the gateways liveness records fell behind its bucket')),
    );
    links.onStop(() => gateways.stop());
    // Four independent reads, made at once: on a loaded cluster each JetStream request of a
    // takeover can take a second, and one after another they held the first dispatch back.
    const took: Record<string, number> = {};
    const [, , , intake] = await allSettledOrFirstError([
      timed(took, 'workersMs', async () => {
        const presence = await new Kvm(nc).open(names.presenceBucket);
        await gateways.start(nc, this.#deps.log); // before presence: ghosts are never dispatchable
        const isGhost = gateways.isGhost.bind(gateways);
        await links.watch('presence', presence, (key, value, revision) => {
          onPresence(this.ctx, isGhost, key, value);
          this.ctx.presenceRevision = Math.max(this.ctx.presenceRevision, revision);
        });
      }),
      timed(took, 'vmPoolsMs', async () =>
        links.watch('VM pools', await new Kvm(nc).open(names.vmBucket), (_key, value) =>
          onVmState(this.ctx, this.#announced, value),
        ),
      ),
      timed(took, 'jobsMs', () => this.#reconcile()),
      timed(took, 'intakeMs', async () => {
        await mendIntake(nc, this.#intake, this.#deps.log);
        return jetstream(nc).consumers.get(names.intakeStream, names.schedulerIntakeConsumer);
      }),
    ]);
    // Jobs of workers released before their rows were read.
    sweeps.inBackground(this.ctx, "releasing gone gateways' workers", gateways.sweep());
    this.#resyncOnReconnect();
    links.subscribe(subjects.workers('lost'), (data) => onLost(this.ctx, data));
    links.subscribe(subjects.workers('activity'), (data) => onActivity(this.ctx, data));
    links.consume(
      `the ${names.schedulerIntakeConsumer} consumer`,
      await consumeDurable(nc, intake, { max_messages: 256 }, this.#deps.log),
      (m) => void onIntake(this.ctx, m),
    );
    links.every(1_000, async () => {
      await sweeps.enforceTimeouts(this.ctx);
      await endWaits(this.ctx);
      await gateways.sweep();
      await sweeps.sweepLostWorkers(this.ctx, (id, now) => gateways.vouch(id, now));
      await sweeps.announcePositions(this.ctx, this.#announced);
      this.#kick();
    });
    links.every(config.depthIntervalMs, async () => this.#publishDepth());
    links.every(60_000, async () => sweeps.expireQueued(this.ctx));
    // Only after a failure: at rest, the outbox table is not read every interval.
    links.every(10_000, async () => {
      await this.#republishing; // a failure during a pass in progress is seen after it
      if (!this.ctx.outboxBehind) return;
      this.ctx.outboxBehind = false;
      await this.#republish();
    });
    // Outboxes an earlier leader left unpublished, without holding up the leader's endpoints.
    sweeps.inBackground(this.ctx, 'publishing the outboxes left unpublished', this.#republish());
    this.#publishDepth();
    this.#kick();
    this.#deps.log.info({ ms: Date.now() - began, ...took }, 'dispatching');
  }

  /** Idempotent: every call waits for the one teardown. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.ctx.metrics.queueDepth.reset(); // a standby does not report the leader's queue
      const stopped = this.#links.stop();
      clearTimeout(this.#depthTimer);
      clearTimeout(this.#retryTimer);
      await stopped;
    })();
    return this.#stopping;
  }

  /** One pass over the unpublished outboxes at a time: two would each check, then append. */
  #republish(): Promise<void> {
    this.#republishing ??= sweeps.republishOutbox(this.ctx).finally(() => (this.#republishing = undefined));
    return this.#republishing;
  }

  async #reconcile(): Promise<void> {
    // In dispatch order: every insert into the queue's sorted lists is then an append (100,000
    // rows in random order made each one a splice: 1.8 s of CPU at takeover).
    const rows = (await this.#deps.store.active())
      .map((row) => ({ row, key: sortKey(this.ctx, queuedInfo(row)) }))
      .sort((a, b) => a.key - b.key || (a.row.id < b.row.id ? -1 : 1))
      .map(({ row }) => row);
    for (const row of rows) {
      if (row.status === 'queued') enqueueRow(this.ctx, row);
      else if (row.status === 'running' && row.workerId) runRow(this.ctx, { ...row, workerId: row.workerId });
    }
    this.#deps.log.info({ queued: this.ctx.queued.size, running: this.ctx.running.size }, 'scheduler state recovered');
  }

  /**
   * A nats-server killed mid-write can lose an intake message it had acknowledged (it writes
   * behind unless `sync_interval: always`), while the job's row, written first, is in MySQL.
   * Nothing that matters may live only in JetStream: after every reconnect, queued rows the queue
   * does not hold are taken from MySQL. Later duplicates of their intake messages are no-ops.
   */
  #resyncOnReconnect(): void {
    void (async () => {
      // Ends at the first status after stop() (a dispatcher lives as long as its lease).
      for await (const s of this.#deps.nc.status()) {
        if (this.#links.stopped) break;
        if (s.type !== 'reconnect') continue;
        await this.#resync().catch((err: unknown) => this.#deps.log.error({ err }, 'resync after reconnect failed'));
        // The intake stream may also have come back behind its consumer: step down, and the
        // next term (perhaps this instance's) mends it before it consumes.
        const stranded = await intakeStranded(this.#deps.nc, this.#intake, this.#deps.log, () => this.#links.stopped);
        if (stranded !== undefined) this.#links.fail(new Error(`the intake consumer misses messages: ${stranded}`));
      }
    })();
  }

  async #resync(): Promise<void> {
    const missing = (await this.#deps.store.active()).filter(
      (row) => row.status === 'queued' && !this.ctx.queued.has(row.id) && !this.ctx.running.has(row.id),
    );
    for (const row of missing) enqueueRow(this.ctx, row);
    if (missing.length > 0) {
      this.#deps.log.warn(
        { jobs: missing.map((r) => r.id) },
        'queued jobs recovered from MySQL after a NATS reconnect',
      );
      this.#kick();
    }
  }

  #kick(): void {
    if (this.#roundScheduled || this.#links.stopped) return;
    this.#roundScheduled = true;
    setImmediate(() => {
      this.#roundScheduled = false;
      if (!this.#links.stopped) this.#round();
    });
  }

  #round(): void {
    const picked = pickJobs(this.ctx);
    if ((this.ctx.queued.size > 0 || picked.length > 0) && this.ctx.log.isLevelEnabled('debug'))
      this.ctx.log.debug(
        {
          picked: picked.length,
          queued: this.ctx.queued.size,
          running: this.ctx.running.size,
          workers: this.ctx.workers.size,
        },
        'dispatch round',
      );
    for (const { job, waitingSince } of picked) {
      void assign(this.ctx, job, waitingSince).catch((err: unknown) => {
        this.ctx.log.error({ err, jobId: job.jobId }, 'dispatch failed');
        this.#kickLater();
      });
    }
  }

  /** Another round after a failed one (MySQL away): nothing else may come along to start it. */
  #kickLater(): void {
    if (this.#retryTimer || this.#links.stopped) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, DISPATCH_RETRY_MS);
    this.#retryTimer.unref();
  }

  /**
   * Changes of the queue are published together, DEPTH_COALESCE_MS after the first: a timer only
   * while something changed (a poll every 250 ms woke the idle hub 4 times a second).
   */
  #depthChanged(): void {
    if (this.#depthTimer !== undefined || this.#links.stopped) return;
    this.#depthTimer = setTimeout(() => {
      this.#depthTimer = undefined;
      if (!this.#links.stopped) this.#publishDepth();
    }, DEPTH_COALESCE_MS);
  }

  #publishDepth(): void {
    clearTimeout(this.#depthTimer);
    this.#depthTimer = undefined;
    const depth = sweeps.queueDepth(this.ctx);
    this.#deps.nc.publish(this.#deps.subjects.queueDepth, encoder.encode(JSON.stringify(depth)));
    const gauge = this.ctx.metrics.queueDepth;
    gauge.reset();
    for (const [target, d] of Object.entries(depth.capabilities)) {
      gauge.set({ target, state: 'queued' }, d.queued);
      gauge.set({ target, state: 'assigned' }, d.assigned);
      gauge.set({ target, state: 'running' }, d.running);
    }
  }
}

export { capabilityKey };
