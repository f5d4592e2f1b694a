/**
 * The leader's dispatch loop. Built when this instance wins the scheduler lease, from MySQL (jobs)
 * and KV (workers, VM pools); torn down when the lease is lost.
 */
import { jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  JobActivity,
  JobIntake,
  VmPoolState,
  WorkerLifecycle,
  WorkerPresence,
  topologyNames,
  type Subjects,
} from '@perry-hub/contracts';
import { isValid, type HubMetrics, type Logger } from '@perry-hub/runtime';
import { assign } from './assign.js';
import type { SchedulerConfig } from './config.js';
import { JobEvents } from './events.js';
import { GatewayWatch } from './gateways.js';
import { endWaits } from './outcomes.js';
import { capabilityKey } from './queue/job-queue.js';
import { pickJobs } from './round.js';
import { emptyLeaderState, enqueue, enqueueRow, queuedInfo, sortKey, type Context, type KnownWorker } from './state.js';
import type { JobStore } from './store.js';
import * as sweeps from './sweeps.js';

const encoder = new TextEncoder();
/**
 * At most this many queued jobs keep their job_assign payload in memory; the others' is read at
 * dispatch. Counted among the jobs holding one, so a deep queue of jobs no worker serves (read
 * from MySQL without payloads) does not cost every other job a read on its way to a worker.
 */
const PAYLOAD_MEMORY_MAX_JOBS = 1_000;
/** A round that failed (MySQL away) is tried again after this. */
const DISPATCH_RETRY_MS = 1_000;
/** Queue changes within this long are published as one queue depth. */
const DEPTH_COALESCE_MS = 250;
/**
 * The intake consumer's pull lives on the consumer's leader; one lost with its node (kill -9, a
 * partition) is renewed only after two missed heartbeats, each half this. The library's 30 s
 * default once held dispatch still for 27 s after a node was killed; 10 s costs about one
 * message every 3 s while idle.
 */
const INTAKE_PULL_EXPIRES_MS = 10_000;
const decoder = new TextDecoder();

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
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #stops: (() => unknown)[] = [];
  readonly #announced = new Map<string, string>();
  #roundScheduled = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #depthTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #stopping: Promise<void> | undefined;
  #fatalReported = false;
  #presence!: KV;
  #gateways!: GatewayWatch;

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
    const js = jetstream(deps.nc);
    this.ctx = {
      nc: deps.nc,
      subjects: deps.subjects,
      log: deps.log,
      config: deps.config,
      store: deps.store,
      events: new JobEvents(js, deps.subjects),
      ...emptyLeaderState(),
      metrics: deps.metrics,
      now: Date.now,
      kick: () => this.#kick(),
      touched: () => this.#depthChanged(),
      leaderSince: Date.now(),
      outboxBehind: false,
    };
  }

  async start(): Promise<void> {
    const { nc, config, subjects } = this.#deps;
    const names = topologyNames(config.subjectPrefix);
    this.#presence = await new Kvm(nc).open(names.presenceBucket);
    const instances = await new Kvm(nc).open(names.instancesBucket);
    this.#gateways = new GatewayWatch(this.ctx, instances, config.instanceTtlMs);
    this.#stops.push(() => this.#gateways.stop());
    await this.#gateways.start(nc, this.#deps.log); // before presence: ghosts are never dispatchable
    await this.#watch('presence', this.#presence, (key, value) => this.#onPresence(key, value));
    await this.#watch('VM pools', await new Kvm(nc).open(names.vmBucket), (_key, value) => this.#onVmState(value));
    await this.#reconcile();
    void this.#gateways.sweep(); // jobs of workers released before their rows were read
    this.#resyncOnReconnect();
    this.#subscribe(subjects.workers('lost'), (data) => this.#onLost(data));
    this.#subscribe(subjects.workers('activity'), (data) => this.#onActivity(data));
    await this.#consumeIntake(names.intakeStream, names.schedulerIntakeConsumer);
    this.#every(1_000, async () => {
      await sweeps.enforceTimeouts(this.ctx);
      await endWaits(this.ctx);
      await this.#gateways.sweep();
      await sweeps.sweepLostWorkers(this.ctx, (id, now) => this.#gateways.vouchedAt(id, now));
      await sweeps.announcePositions(this.ctx, this.#announced);
      this.#kick();
    });
    this.#every(config.depthIntervalMs, async () => this.#publishDepth());
    this.#every(60_000, async () => sweeps.expireQueued(this.ctx));
    // Only after a failure: at rest, the outbox table is not read every interval.
    this.#every(10_000, async () => {
      if (!this.ctx.outboxBehind) return;
      this.ctx.outboxBehind = false;
      await sweeps.republishOutbox(this.ctx);
    });
    await sweeps.republishOutbox(this.ctx);
    this.#publishDepth();
    this.#kick();
  }

  /** Idempotent: every call waits for the one teardown. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      this.ctx.metrics.queueDepth.reset(); // a standby does not report the leader's queue
      for (const t of this.#timers) clearInterval(t);
      clearTimeout(this.#depthTimer);
      clearTimeout(this.#retryTimer);
      for (const stop of this.#stops) await stop();
    })();
    return this.#stopping;
  }

  /** Reported once; nothing after stop() is a loss. */
  #fatal(err: Error): void {
    if (this.#stopped || this.#fatalReported) return;
    this.#fatalReported = true;
    this.#deps.log.error({ err }, 'the dispatcher lost a subscription it depends on');
    this.#deps.onFatal(err);
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
      else if (row.status === 'running' && row.workerId) {
        this.ctx.running.set(row.id, {
          ...queuedInfo(row),
          workerId: row.workerId,
          assignedAt: row.assignedAt ?? row.queuedAt,
          lastActivityAt: Math.max(row.heartbeatAt ?? 0, this.ctx.leaderSince),
          active: true,
          cancelRequestedAt: row.cancelRequestedAt,
          pending: false,
        });
      }
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
        if (this.#stopped) break;
        if (s.type !== 'reconnect') continue;
        await this.#resync().catch((err: unknown) => this.#deps.log.error({ err }, 'resync after reconnect failed'));
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
    if (this.#roundScheduled || this.#stopped) return;
    this.#roundScheduled = true;
    setImmediate(() => {
      this.#roundScheduled = false;
      if (!this.#stopped) this.#round();
    });
  }

  #round(): void {
    for (const { job, waitingSince } of pickJobs(this.ctx)) {
      void assign(this.ctx, job, waitingSince).catch((err: unknown) => {
        this.ctx.log.error({ err, jobId: job.jobId }, 'dispatch failed');
        this.#kickLater();
      });
    }
  }

  /** Another round after a failed one (MySQL away): nothing else may come along to start it. */
  #kickLater(): void {
    if (this.#retryTimer || this.#stopped) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, DISPATCH_RETRY_MS);
    this.#retryTimer.unref();
  }

  #onPresence(key: string, value: unknown): void {
    if (value === undefined) {
      const name = this.ctx.workers.get(key)?.name;
      if (this.ctx.workers.delete(key)) void sweeps.loseWorkerJobs(this.ctx, key, name);
      return;
    }
    if (!isValid(WorkerPresence, value)) return;
    const known = this.ctx.workers.get(key);
    const jobs = value.jobs ? new Set(value.jobs.map((j) => `${j.jobId}:${j.attempt}`)) : undefined;
    if (!known && this.#gateways.isGhost(value)) return;
    if (known) {
      known.heartbeatAt = value.heartbeatAt;
      known.jobs = jobs;
      return;
    }
    const worker: KnownWorker = {
      workerId: value.workerId,
      name: value.name,
      gatewayId: value.gatewayId,
      capabilities: new Set(value.capabilities.map((c) => c.toLowerCase())),
      maxConcurrent: value.maxConcurrent,
      connectedAt: value.connectedAt,
      heartbeatAt: value.heartbeatAt,
      jobs,
      avoidUntil: 0,
    };
    this.ctx.workers.set(key, worker);
    this.#kick();
  }

  #onVmState(value: unknown): void {
    if (value === undefined || !isValid(VmPoolState, value)) return;
    this.ctx.vmPools.set(value.capability, value);
    const was = this.ctx.draining.has(value.capability);
    if (value.draining) this.ctx.draining.add(value.capability);
    else this.ctx.draining.delete(value.capability);
    if (was && !value.draining) this.#kick();
    // Waiting CLIs hear why they wait (the VM is booting, or no VM can be started).
    void sweeps.announcePositions(this.ctx, this.#announced);
  }

  #onLost(data: unknown): void {
    if (!isValid(WorkerLifecycle, data)) return;
    const name = this.ctx.workers.get(data.workerId)?.name;
    this.ctx.workers.delete(data.workerId);
    void sweeps.loseWorkerJobs(this.ctx, data.workerId, name);
  }

  #onActivity(data: unknown): void {
    if (!isValid(JobActivity, data)) return;
    for (const ref of data.jobs) {
      const job = this.ctx.running.get(ref.jobId);
      if (job && job.attempt === ref.attempt) {
        job.lastActivityAt = Math.max(job.lastActivityAt, data.at);
        if (!job.active) this.#depthChanged();
        job.active = true;
      }
    }
  }

  async #consumeIntake(stream: string, durable: string): Promise<void> {
    const consumer = await jetstream(this.#deps.nc).consumers.get(stream, durable);
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 256, expires: INTAKE_PULL_EXPIRES_MS });
    this.#stops.push(() => messages.stop());
    void (async () => {
      // Not awaited: one MySQL round trip per message in turn caps intake at 1/RTT.
      for await (const m of messages) void this.#onIntake(m);
    })()
      .then(() => this.#fatal(new Error(`the ${durable} consumer ended`)))
      .catch((err: unknown) => this.#fatal(err as Error));
  }

  async #onIntake(m: JsMsg): Promise<void> {
    try {
      const intake: unknown = JSON.parse(decoder.decode(m.data));
      if (!isValid(JobIntake, intake)) return m.term();
      if (this.ctx.queued.has(intake.jobId) || this.ctx.running.has(intake.jobId)) return m.ack();
      if (intake.tarballRef !== undefined) {
        // The message carries what the queue needs, as recorded: no read of the row. A stale one
        // (the job moved on meanwhile) fails the assignment's compare-and-set, which re-reads.
        enqueue(this.ctx, {
          jobId: intake.jobId,
          licenseKey: intake.licenseKey,
          tier: intake.tier,
          targets: intake.targets,
          stage: 'build',
          attempt: 0,
          retries: 0,
          queuedAt: intake.queuedAt,
          startedAt: null,
          tarballRef: intake.tarballRef,
          ...(intake.buildType === 'plugin' ? { buildType: 'plugin' as const } : {}),
          ...(intake.callback ? { callback: true as const } : {}),
          // Kept for a short queue only: a deep one would hold every manifest in memory.
          ...(intake.payload && this.ctx.heldPayloads < PAYLOAD_MEMORY_MAX_JOBS
            ? {
                payload: {
                  manifest: intake.payload.manifest,
                  credentials: Buffer.from(intake.payload.credentialsSealed, 'base64'),
                },
              }
            : {}),
        });
      } else {
        const row = await this.#deps.store.get(intake.jobId);
        if (!row) return m.nak(1_000); // the record is written first; give it a moment
        // A duplicate delivery may have enqueued (or even dispatched) it meanwhile.
        if (row.status === 'queued' && !this.ctx.running.has(row.id)) enqueueRow(this.ctx, row);
      }
      m.ack();
    } catch (err) {
      this.#deps.log.error({ err }, 'intake message failed');
      m.nak(1_000);
    }
  }

  /**
   * Changes of the queue are published together, DEPTH_COALESCE_MS after the first: a timer only
   * while something changed (a poll every 250 ms woke the idle hub 4 times a second).
   */
  #depthChanged(): void {
    if (this.#depthTimer !== undefined || this.#stopped) return;
    this.#depthTimer = setTimeout(() => {
      this.#depthTimer = undefined;
      if (!this.#stopped) this.#publishDepth();
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

  async #watch(what: string, kv: KV, onChange: (key: string, value: unknown) => void): Promise<void> {
    const watcher = await kv.watch();
    this.#stops.push(() => watcher.stop());
    void (async () => {
      for await (const e of watcher) {
        if (e.operation !== 'PUT') onChange(e.key, undefined);
        else {
          try {
            onChange(e.key, e.json());
          } catch {
            // unparseable entries are ignored
          }
        }
      }
    })()
      .then(() => this.#fatal(new Error(`the watch of ${what} ended`)))
      .catch((err: unknown) => this.#fatal(err as Error));
  }

  #subscribe(subject: string, onMessage: (data: unknown) => void): void {
    const sub: Subscription = this.#deps.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return this.#fatal(err);
        try {
          onMessage(JSON.parse(decoder.decode(msg.data)));
        } catch {
          // malformed messages are ignored
        }
      },
    });
    this.#stops.push(() => sub.unsubscribe());
  }

  #every(ms: number, task: () => Promise<void>): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.#stopped) return;
      busy = true;
      task()
        .catch((err: unknown) => this.#deps.log.error({ err }, 'scheduler task failed'))
        .finally(() => (busy = false));
    }, ms);
    this.#timers.push(timer);
  }
}

export { capabilityKey };
