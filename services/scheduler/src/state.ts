/** The leader's in-memory view, rebuilt from MySQL and the presence bucket when it takes over. */
import type { NatsConnection } from '@nats-io/nats-core';
import { TIER_PRIORITY, type Subjects, type Tier, type VmPoolState } from '@perry-hub/contracts';
import type { HubMetrics, Logger } from '@perry-hub/runtime';
import type { JobEvents } from './events.js';
import { JobQueue } from './queue/job-queue.js';
import { QueueTally } from './queue/tally.js';
import type { JobRow, JobStore } from './store.js';
import type { SchedulerConfig } from './config.js';

export interface QueuedInfo {
  readonly jobId: string;
  readonly licenseKey: string;
  readonly tier: Tier;
  readonly targets: readonly string[];
  readonly stage: 'build' | 'sign';
  /** `plugin`: single-stage, never re-queued to sign (absent: `app`). */
  readonly buildType?: 'app' | 'plugin';
  /** The job has a callback_url: its JobDone says so (the ingest then queues the callbacks). */
  readonly callback?: true;
  readonly attempt: number;
  readonly retries: number;
  readonly queuedAt: number;
  readonly startedAt: number | null;
  /** What job_assign is composed of, when the intake carried it (`builds.manifest`, `credentials_enc`). */
  readonly payload?: { readonly manifest: string; readonly credentials: Buffer | null };
  /** The stage's input (`builds.tarball_ref`), when known: transfers are authorized from memory. */
  readonly tarballRef?: string | null;
  /**
   * Released by a crash or a restart: the worker that held it probably still builds the old
   * attempt and will reconnect under the same name. Until `holdUntilMs` nobody takes it: that
   * worker may claim it back (reclaim-job) and go on at the same attempt. After that another
   * worker takes it; this one only after `untilMs`, lest the old build's messages pass for the
   * new attempt's.
   */
  readonly avoid?: { readonly workerName: string; readonly untilMs: number; readonly holdUntilMs?: number };
  /** SHA-256 of the last attempt's job token, kept while its worker may claim the job back. */
  readonly tokenHash?: string;
}

export interface RunningJob extends QueuedInfo {
  readonly workerId: string;
  readonly assignedAt: number;
  lastActivityAt: number;
  /** Set once the worker sent anything: 'assigned' until then, 'running' after (queue depth). */
  active: boolean;
  cancelRequestedAt: number | null;
  /** True while the assignment is being written: not yet confirmed by the gateway. */
  pending: boolean;
  /** The message of the worker's last `error` this attempt: the reason a failed build is recorded with. */
  lastError?: string;
}

export interface KnownWorker {
  readonly workerId: string;
  readonly name: string;
  /** The gateway instance holding its socket: when that instance dies, so does this connection. */
  readonly gatewayId: string;
  readonly capabilities: ReadonlySet<string>;
  readonly maxConcurrent: number;
  readonly connectedAt: number;
  heartbeatAt: number;
  /** The jobs its gateway says the connection holds (absent if the gateway does not say). */
  jobs: ReadonlySet<string> | undefined;
  /** Until when the scheduler avoids it (an assignment could not be delivered). */
  avoidUntil: number;
}

export interface Context {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly log: Logger;
  readonly config: SchedulerConfig;
  readonly store: JobStore;
  readonly events: JobEvents;
  readonly queue: JobQueue;
  readonly queued: Map<string, QueuedInfo>;
  /** Licenses with queued jobs, their tier and count: kept with `queued`, read by every round. */
  readonly queuedLicenses: Map<string, { tier: Tier; count: number }>;
  /** Per target, how many of `queued` need it and the oldest `queuedAt`: kept with `queued` (queue depth). */
  readonly tally: QueueTally;
  /** How many of `queued` hold their job_assign payload in memory: kept with `queued`. */
  heldPayloads: number;
  readonly running: Map<string, RunningJob>;
  readonly workers: Map<string, KnownWorker>;
  /** Capabilities whose VM pool is draining: not assigned. */
  readonly draining: Set<string>;
  /** Sign VM pools by capability (KV `<p>-vm`): why a sign job waits. */
  readonly vmPools: Map<string, VmPoolState>;
  /** When each queued job began its current wait (its acceptance, or its re-queue): metrics. */
  readonly waitingSince: Map<string, number>;
  /** Queued jobs waiting for the worker that built them to claim them back (see `QueuedInfo.avoid`). */
  readonly reclaimable: Set<string>;
  /**
   * The token hash of each assignment this leader wrote but whose answer MySQL lost (so it never
   * sent it), by job: found in the row, it is this leader's own, and handed back at once.
   */
  readonly unsent: Map<string, string>;
  readonly metrics: HubMetrics;
  readonly now: () => number;
  /** Ask for a dispatch round soon (coalesced). */
  kick(): void;
  /** Something the queue depth or positions depend on changed. */
  touched(key?: string): void;
  readonly leaderSince: number;
  /** False once this leader stepped down: work still under way must not write after it. */
  leading(): boolean;
  /**
   * The presence bucket's revision this leader's copy has reached (its watch delivers in order,
   * so every write up to it is in): a gateway's word about its entries counts from there.
   */
  presenceRevision: number;
  /** An outbox failed to publish since the last pass over the unpublished ones: look again. */
  outboxBehind: boolean;
}

/** The part of a leader's state that starts empty at each takeover and is rebuilt from MySQL. */
export type LeaderState = Pick<
  Context,
  | 'queue'
  | 'queued'
  | 'queuedLicenses'
  | 'tally'
  | 'heldPayloads'
  | 'running'
  | 'workers'
  | 'draining'
  | 'vmPools'
  | 'waitingSince'
  | 'reclaimable'
  | 'unsent'
>;

export function emptyLeaderState(): LeaderState {
  return {
    queue: new JobQueue(),
    queued: new Map(),
    queuedLicenses: new Map(),
    tally: new QueueTally(),
    heldPayloads: 0,
    running: new Map(),
    workers: new Map(),
    draining: new Set(),
    vmPools: new Map(),
    waitingSince: new Map(),
    reclaimable: new Set(),
    unsent: new Map(),
  };
}

export const SIGN_BOOST_STEPS = 100;

/**
 * The one rule of dispatch order (lower first), and so of queue positions: a job waits as if it
 * had been queued `agingStepMs` earlier per priority point of its tier (TIER_PRIORITY), and a
 * sign stage, whose build already ran, as if SIGN_BOOST_STEPS points more. positions.ts counts
 * in MySQL with the same rule when this instance does not lead.
 */
export function sortKey(ctx: Pick<Context, 'config'>, job: Pick<QueuedInfo, 'tier' | 'stage' | 'queuedAt'>): number {
  return job.queuedAt - priorityPoints(job) * ctx.config.agingStepMs;
}

export function priorityPoints(job: Pick<QueuedInfo, 'tier' | 'stage'>): number {
  return TIER_PRIORITY[job.tier] + (job.stage === 'sign' ? SIGN_BOOST_STEPS : 0);
}

function countLicense(ctx: Context, job: QueuedInfo, delta: 1 | -1): void {
  const entry = ctx.queuedLicenses.get(job.licenseKey);
  if (!entry) {
    if (delta > 0) ctx.queuedLicenses.set(job.licenseKey, { tier: job.tier, count: 1 });
  } else if ((entry.count += delta) <= 0) ctx.queuedLicenses.delete(job.licenseKey);
}

/** Take a job out of `queued` (dispatched, cancelled, expired); the queue itself is separate. */
export function unqueue(ctx: Context, jobId: string): QueuedInfo | undefined {
  const info = ctx.queued.get(jobId);
  if (!info) return undefined;
  ctx.queued.delete(jobId);
  ctx.waitingSince.delete(jobId);
  countLicense(ctx, info, -1);
  ctx.tally.remove(jobId);
  if (info.payload) ctx.heldPayloads -= 1;
  return info;
}

/**
 * Queued, and dispatchable. A job waiting for its worker to claim it back is queued but parked
 * outside the dispatch queue, so it holds up no job behind it; endWaits puts it in.
 */
export function enqueue(ctx: Context, job: QueuedInfo): void {
  const previous = ctx.queued.get(job.jobId);
  if (!previous) countLicense(ctx, job, 1);
  else if (previous.payload) ctx.heldPayloads -= 1;
  if (job.payload) ctx.heldPayloads += 1;
  ctx.tally.add(job);
  const fresh = job.attempt === 0 && job.stage === 'build';
  if (!ctx.waitingSince.has(job.jobId)) ctx.waitingSince.set(job.jobId, fresh ? job.queuedAt : ctx.now());
  ctx.queued.set(job.jobId, job);
  if (job.avoid?.holdUntilMs !== undefined) {
    ctx.reclaimable.add(job.jobId);
    ctx.touched();
    return;
  }
  ctx.queue.add({
    jobId: job.jobId,
    licenseKey: job.licenseKey,
    targets: job.targets,
    queuedAt: job.queuedAt,
    sortKey: sortKey(ctx, job),
  });
  ctx.touched();
  ctx.kick();
}

/** A queued row into the queue (or parked, if it waits for its worker). */
export function enqueueRow(ctx: Context, row: JobRow): void {
  enqueue(ctx, queuedInfo(row, ctx.config));
}

/**
 * A running row into the running set, as MySQL has it (a takeover, or an assignment whose write
 * went through although its answer was lost): its worker's gateway lists it, or the sweeps find
 * the assignment undelivered or the worker lost, and re-queue it.
 */
export function runRow(ctx: Context, row: JobRow & { readonly workerId: string }): void {
  ctx.running.set(row.id, {
    ...queuedInfo(row),
    workerId: row.workerId,
    assignedAt: row.assignedAt ?? row.queuedAt,
    lastActivityAt: Math.max(row.heartbeatAt ?? 0, ctx.leaderSince),
    active: true,
    cancelRequestedAt: row.cancelRequestedAt,
    pending: false,
  });
}

export function dequeue(ctx: Context, jobId: string): QueuedInfo | undefined {
  const info = unqueue(ctx, jobId);
  ctx.queue.remove(jobId);
  ctx.touched();
  return info;
}

export function durationSecs(ctx: Context, job: Pick<QueuedInfo, 'startedAt' | 'queuedAt'>): number {
  return (ctx.now() - (job.startedAt ?? job.queuedAt)) / 1000;
}

/**
 * A job as the queue holds it, from its row. A queued row that kept its token was released while
 * its worker went on building (releaseJob): it waits for that worker from when it was released.
 */
export function queuedInfo(row: JobRow, waits?: Pick<SchedulerConfig, 'reclaimWaitMs' | 'workerLostMs'>): QueuedInfo {
  const released = row.status === 'queued' && row.tokenHash !== null && row.workerName !== null;
  const at = row.updatedAt ?? 0;
  return {
    ...(row.tokenHash !== null ? { tokenHash: row.tokenHash } : {}),
    ...(released && waits
      ? {
          avoid: {
            workerName: row.workerName!,
            untilMs: at + waits.workerLostMs,
            holdUntilMs: at + waits.reclaimWaitMs,
          },
        }
      : {}),
    jobId: row.id,
    licenseKey: row.licenseKey,
    tier: row.tier,
    targets: row.targets,
    stage: row.stage,
    attempt: row.attempt,
    retries: row.retries,
    queuedAt: row.queuedAt,
    startedAt: row.startedAt,
    tarballRef: row.tarballRef,
    ...(row.buildType === 'plugin' ? { buildType: 'plugin' as const } : {}),
    ...(row.hasCallback ? { callback: true as const } : {}),
  };
}
