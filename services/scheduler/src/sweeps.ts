/**
 * The leader's periodic duties: timeouts and the no-output watchdog, queue expiry, workers gone
 * silent, the completion outbox, queue depth, and position updates for waiting CLIs.
 */
import type { CapabilityDepth, QueueDepth } from '@perry-hub/contracts';
import type { Vouch } from '@perry-hub/runtime';
import { sendCommand } from './commands.js';
import { failure, finishJob, loseJob, publishOutbox, requeueRow } from './outcomes.js';
import { dequeue, enqueue, queuedInfo, type Context, type RunningJob } from './state.js';
import { wire } from './wire.js';
import { toldToCli, waitFacts, whyWaiting } from './waiting.js';

const minutes = (ms: number) => `${Math.round(ms / 60_000)} minute${Math.round(ms / 60_000) === 1 ? '' : 's'}`;

/**
 * Work an event starts without waiting for it (a worker's goodbye, a gateway gone, a VM pool's
 * news): a failure (MySQL away) is logged, not left to crash the process as an unhandled
 * rejection; the periodic sweeps do the same work again.
 */
export function inBackground(ctx: Context, what: string, work: Promise<unknown>): void {
  work.catch((err: unknown) => ctx.log.error({ err }, `${what} failed; the periodic sweeps try again`));
}

export async function enforceTimeouts(ctx: Context): Promise<void> {
  const now = ctx.now();
  const { compileTimeoutMs, signTimeoutMs, noOutputTimeoutMs, cancelGraceMs } = ctx.config;
  for (const job of [...ctx.running.values()]) {
    if (job.pending) continue;
    const limitMs = job.stage === 'sign' ? signTimeoutMs : compileTimeoutMs;
    let reason: string | undefined;
    if (job.cancelRequestedAt !== null && now - job.cancelRequestedAt > cancelGraceMs) reason = 'Build cancelled';
    else if (now - job.assignedAt > limitMs)
      reason = `Build timed out: the ${job.stage === 'sign' ? 'signing' : 'build'} stage ran longer than ${minutes(limitMs)}`;
    else if (now - job.lastActivityAt > noOutputTimeoutMs)
      reason = `Build stopped: no output from the worker for ${minutes(noOutputTimeoutMs)}`;
    if (!reason) continue;
    const status = job.cancelRequestedAt !== null ? 'cancelled' : 'failed';
    if (await finishJob(ctx, { job, from: 'running', finish: failure(ctx, job, status, reason) })) {
      void sendCommand(ctx, job.workerId, { kind: 'cancel', jobId: job.jobId });
    }
  }
}

export async function expireQueued(ctx: Context): Promise<void> {
  const cutoff = ctx.now() - ctx.config.queueExpiryMs;
  const oldest = ctx.tally.oldestQueuedAt();
  if (oldest === null || oldest > cutoff) return; // nothing to expire: no walk over the queue
  for (const info of [...ctx.queued.values()]) {
    if (info.queuedAt > cutoff) continue;
    dequeue(ctx, info.jobId);
    const hours = Math.round(ctx.config.queueExpiryMs / 3_600_000);
    const message = `No worker for ${info.targets.join(', ')} became available within ${hours} hour${hours === 1 ? '' : 's'}`;
    await finishJob(ctx, { job: info, from: 'queued', finish: failure(ctx, info, 'expired', message) });
  }
}

/**
 * Workers whose heartbeat stopped (their gateway died), and jobs on workers nobody knows. A
 * worker of a live gateway (`vouch` defined) is never lost by silence: the gateway rewrites
 * an entry within PRESENCE_SETTLE_MS of any change and closes a silent worker itself. Another
 * is lost once its entry's heartbeat is older than the lost limit. The entry itself is left to
 * the gateways (the scheduler may only read the bucket).
 */
export async function sweepLostWorkers(
  ctx: Context,
  vouch: (gatewayId: string, now: number) => Vouch | undefined = () => undefined,
): Promise<void> {
  const now = ctx.now();
  // Asked once per gateway: thousands of workers share a few gateways.
  const vouched = new Map<string, Vouch | null>();
  const vouchOf = (gatewayId: string) => {
    let said = vouched.get(gatewayId);
    if (said === undefined) vouched.set(gatewayId, (said = vouch(gatewayId, now) ?? null));
    return said;
  };
  for (const worker of ctx.workers.values()) {
    // A live gateway vouches for its workers, and closes a silent one's connection itself. (Its
    // record's age is no measure: with a lost limit under its refresh period, an idle worker of a
    // live gateway was declared lost between two refreshes.)
    if (vouchOf(worker.gatewayId)) continue;
    if (now - worker.heartbeatAt <= ctx.config.workerLostMs) continue;
    ctx.workers.delete(worker.workerId);
    ctx.log.warn({ workerId: worker.workerId, worker: worker.name }, 'worker silent, declared lost');
  }
  for (const job of [...ctx.running.values()]) {
    if (job.pending) continue;
    const worker = ctx.workers.get(job.workerId);
    if (worker) {
      // An assignment its worker never got (the previous leader died between the compare-and-set
      // and the send): the gateway's presence, written well after the assignment (or vouched for
      // by its liveness record longer after it), does not list it.
      const current =
        worker.heartbeatAt > job.assignedAt + UNDELIVERED_GRACE_MS || vouchesFor(ctx, vouchOf(worker.gatewayId), job);
      const undelivered = worker.jobs !== undefined && current && !worker.jobs.has(`${job.jobId}:${job.attempt}`);
      if (undelivered) await requeueUndelivered(ctx, job);
      continue;
    }
    // A new leader gives gateways time to re-register the workers it found jobs on.
    if (now - Math.max(ctx.leaderSince, job.assignedAt) <= ctx.config.workerLostMs) continue;
    await loseJob(ctx, job);
  }
}

const UNDELIVERED_GRACE_MS = 5_000;
/**
 * How long after an assignment a gateway's word that its entries are current must be, for an
 * entry that does not list it to mean it never arrived: a margin for the clocks of two machines
 * and the assignment's way to the gateway (and, for a record of an earlier version that does not
 * say how far its presence writes had gone, for those writes to go through).
 */
const UNDELIVERED_VOUCHED_GRACE_MS = 15_000;

/**
 * Does a gateway's liveness record vouch that its worker's entry, as this leader has it, shows
 * everything the gateway knew UNDELIVERED_VOUCHED_GRACE_MS after the assignment? Only once this
 * leader's copy of presence has reached the revision the record names: after a partition healed,
 * a new leader's copy lagged a gateway's record, and the running builds of three workers were
 * run twice. A record without the revision (an earlier version's) counts only once the leader
 * has led that long.
 */
function vouchesFor(ctx: Context, vouch: Vouch | null, job: RunningJob): boolean {
  if (!vouch) return false;
  const after = job.assignedAt + UNDELIVERED_VOUCHED_GRACE_MS;
  if (vouch.presenceRevision === undefined) {
    return ctx.now() - ctx.leaderSince > UNDELIVERED_VOUCHED_GRACE_MS && vouch.at > after;
  }
  return ctx.presenceRevision >= vouch.presenceRevision && (vouch.presenceCurrentAt ?? vouch.at) > after;
}

async function requeueUndelivered(ctx: Context, job: RunningJob): Promise<void> {
  const reason = 'the assignment never reached its worker';
  if (!(await requeueRow(ctx, job, { reason }, ctx.now()))) return;
  ctx.running.delete(job.jobId);
  ctx.log.warn({ jobId: job.jobId, attempt: job.attempt }, 'assignment never reached its worker; re-queued');
  enqueue(ctx, job);
}

export async function loseWorkerJobs(ctx: Context, workerId: string, workerName?: string): Promise<void> {
  const jobs: RunningJob[] = [...ctx.running.values()].filter((j) => j.workerId === workerId && !j.pending);
  for (const job of jobs) await loseJob(ctx, job, workerName);
}

export async function republishOutbox(ctx: Context): Promise<void> {
  let rows;
  try {
    rows = await ctx.store.unpublished(100);
  } catch (err) {
    ctx.outboxBehind = true;
    throw err;
  }
  // A full batch may have more behind it: the next pass reads on.
  if (rows.length === 100) ctx.outboxBehind = true;
  for (const row of rows) {
    const finish = { status: row.status as 'completed', errorMessage: row.errorMessage, finalEvents: row.finalEvents };
    await publishOutbox(ctx, queuedInfo(row), finish, true);
  }
}

/** Per target: queued (from the tally kept with the queue, O(targets)), assigned and running. */
export function queueDepth(ctx: Context): QueueDepth {
  const caps: Record<string, CapabilityDepth> = {};
  const entry = (t: string) => (caps[t] ??= { queued: 0, oldestQueuedAt: null, assigned: 0, running: 0 });
  for (const [t, { queued, oldestQueuedAt }] of ctx.tally.targets()) {
    const e = entry(t);
    e.queued = queued;
    e.oldestQueuedAt = oldestQueuedAt;
  }
  for (const job of ctx.running.values()) {
    for (const t of job.targets) {
      if (job.active) entry(t).running += 1;
      else entry(t).assigned += 1;
    }
  }
  return { at: ctx.now(), capabilities: caps };
}

const ANNOUNCED_PER_KEY = 50;

/**
 * Tell waiting CLIs (those near the front) when their place in line changes, or why they wait:
 * no worker and no VM to start one, a VM booting, their license's limit, busy workers.
 */
export async function announcePositions(ctx: Context, announced: Map<string, string>): Promise<void> {
  const facts = waitFacts(ctx);
  for (const kq of [...ctx.queue.keys()]) {
    const line = ctx.queue.ordered(kq.key, ANNOUNCED_PER_KEY);
    for (const [i, queued] of line.entries()) {
      const position = i + 1;
      const job = ctx.queued.get(queued.jobId);
      const note = job ? toldToCli(whyWaiting(ctx, job, position, facts)) : undefined;
      const said = `${position}\u0000${note ?? ''}`;
      if (announced.get(queued.jobId) === said) continue;
      announced.set(queued.jobId, said);
      await ctx.events.append(queued.jobId, wire.queueUpdate(queued.jobId, position, note));
    }
  }
  for (const jobId of announced.keys()) if (!ctx.queued.has(jobId)) announced.delete(jobId);
}
