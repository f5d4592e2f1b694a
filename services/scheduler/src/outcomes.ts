/**
 * How jobs leave the running set: finished (the outbox makes the CLI's last messages and the
 * usage event survive a crash), moved on to their signing stage, or re-queued after a lost worker.
 */
import { call } from '@perry-hub/runtime';
import { attemptArtifactsEndpoint, promoteEndpoint, type JobDone } from '@perry-hub/contracts';
import { placeInQueue } from './positions.js';
import {
  dequeue,
  durationSecs,
  enqueue,
  enqueueRow,
  runRow,
  sortKey,
  type Context,
  type QueuedInfo,
  type RunningJob,
} from './state.js';
import type { Delivery } from './commands.js';
import type { Finish, JobRow } from './store.js';
import { SIGNING_MESSAGE, wire } from './wire.js';

const OUTCOME: Record<Finish['status'], JobDone['outcome']> = {
  completed: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
  expired: 'expired',
};

export interface Finishing {
  job: QueuedInfo;
  /** The state the compare-and-set expects. */
  from: 'queued' | 'running';
  finish: Finish;
}

/** The terminal transition; false when the job had already moved on (a stale attempt). */
export async function finishJob(ctx: Context, { job, from, finish }: Finishing): Promise<boolean> {
  let ok: boolean;
  try {
    ok = await ctx.store.finish({ id: job.jobId, status: from, attempt: job.attempt }, finish, ctx.now());
  } catch (err) {
    // No answer; the outcome may be written all the same (MariaDB killed just after its
    // commit). Its outbox is then published by the next pass, and a retry's compare-and-set misses.
    ctx.outboxBehind = true;
    throw err;
  }
  if (!ok) {
    await takeFromMySql(ctx, job.jobId);
    return false;
  }
  ctx.log.info(
    {
      jobId: job.jobId,
      outcome: OUTCOME[finish.status],
      attempt: job.attempt,
      targets: job.targets,
      durationMs: ctx.now() - job.queuedAt,
      ...(finish.errorMessage ? { reason: finish.errorMessage } : {}),
    },
    'build finished',
  );
  const now = ctx.now();
  const outcome = OUTCOME[finish.status];
  ctx.metrics.jobsFinished.inc({ outcome });
  // The first attempt's start is in MySQL only; in memory, the running attempt's assignment.
  const startedAt = job.startedAt ?? ('assignedAt' in job ? (job as RunningJob).assignedAt : null);
  if (startedAt !== null) {
    for (const target of job.targets) {
      ctx.metrics.buildDuration.observe({ target, outcome }, Math.max(0, now - startedAt) / 1000);
    }
  }
  ctx.running.delete(job.jobId);
  ctx.unsent.delete(job.jobId);
  ctx.touched();
  ctx.kick();
  await publishOutbox(ctx, job, finish);
  return true;
}

/**
 * Back to the queue in MySQL (a compare-and-set from running at the job's attempt); see
 * `takeFromMySql`. Not by a leader that stepped down: a re-queue is a judgement on the leader's
 * view (a worker lost, a gateway dead), which work still under way at the step-down may have
 * made on a stale one; the next leader judges afresh.
 */
export async function requeueRow(
  ctx: Context,
  job: QueuedInfo,
  change: Parameters<Context['store']['requeue']>[2],
  now: number,
): Promise<boolean> {
  if (!ctx.leading()) return false;
  const ok = await ctx.store.requeue(job.jobId, job.attempt, change, now);
  if (!ok) await takeFromMySql(ctx, job.jobId);
  return ok;
}

/**
 * After a compare-and-set missed (the job moved on meanwhile, or an earlier try's write went
 * through although MySQL's answer was lost), the leader's state of the job is made MySQL's: a job
 * left in neither set would wait for ever, and one kept running would hold its worker's slot.
 * A running row holding `unsentTokenHash` is this leader's own assignment that was never sent:
 * handed back at once (the undelivered rule would take up to its grace period). A finished job's
 * last messages may not be published yet: the next outbox pass looks.
 */
export async function takeFromMySql(
  ctx: Context,
  jobId: string,
  unsentTokenHash?: string,
  known?: JobRow,
): Promise<void> {
  const row = known ?? (await ctx.store.get(jobId));
  ctx.running.delete(jobId);
  if (row?.status === 'running' && unsentTokenHash !== undefined && row.tokenHash === unsentTokenHash) {
    const reason = 'the assignment was written but its answer lost, so never sent';
    if (await ctx.store.requeue(jobId, row.attempt, { reason }, ctx.now())) {
      ctx.log.warn({ jobId, attempt: row.attempt }, 'assignment written but never sent; re-queued');
      return takeFromMySql(ctx, jobId);
    }
  }
  if (row?.status === 'queued') {
    if (!ctx.queued.has(jobId)) enqueueRow(ctx, row);
    return;
  }
  if (ctx.queued.has(jobId)) dequeue(ctx, jobId);
  if (row?.status === 'running' && row.workerId) runRow(ctx, { ...row, workerId: row.workerId });
  else if (row) ctx.outboxBehind = true;
}

/**
 * An assignment's compare-and-set missed (store.assign). A row still queued at the attempt and
 * stage the job was picked at was held back by what that attempt delivered: a worker the hub
 * gave up on had uploaded and announced its artifact before its `complete` was lost, and the
 * hub could not tell then (the artifact-store did not answer). The job is completed from that
 * upload; asking the artifact-store announces it too, should it have been recorded only. Unknown
 * still, the job waits in the queue and the dispatcher tries again shortly. Any other row: the
 * job is taken as MySQL has it (takeFromMySql).
 */
export async function notAssigned(ctx: Context, job: RunningJob, unsentTokenHash?: string): Promise<void> {
  const row = await ctx.store.get(job.jobId);
  if (row?.status !== 'queued' || row.attempt !== job.attempt || row.stage !== job.stage)
    return takeFromMySql(ctx, job.jobId, unsentTokenHash, row);
  ctx.running.delete(job.jobId);
  if (!(await delivered(ctx, job))) {
    enqueue(ctx, job);
    throw new Error('its last attempt delivered an artifact, but the artifact-store did not say which: trying again');
  }
  ctx.log.info({ jobId: job.jobId, attempt: job.attempt }, 'completed from its upload: not assigned again');
  await finishJob(ctx, { job, from: 'queued', finish: completedFromUpload(ctx, job) });
}

/**
 * The finished job's last messages, from the outbox row written with its outcome; `republish`
 * when they may have been published already (a failed attempt, or another leader's).
 */
export async function publishOutbox(ctx: Context, job: QueuedInfo, finish: Finish, republish = false): Promise<void> {
  try {
    await ctx.events.final(
      job.jobId,
      {
        events: finish.finalEvents,
        done: {
          jobId: job.jobId,
          outcome: OUTCOME[finish.status],
          licenseKey: job.licenseKey,
          tier: job.tier,
          targets: [...job.targets],
          attempt: job.attempt,
          finishedAt: ctx.now(),
          ...(finish.errorMessage ? { reason: finish.errorMessage } : {}),
          ...(job.callback ? { callback: true as const } : {}),
        },
      },
      republish,
    );
  } catch (err) {
    // Recorded in MySQL: the periodic pass publishes it once the bus takes it.
    ctx.outboxBehind = true;
    throw err;
  }
  // The artifact-store hears the outcome too, and removes the job's input then.
  ctx.store.markPublished(job.jobId);
}

/** A failure the hub reports itself: the worker-style `error` then `complete`. */
export function failure(
  ctx: Context,
  job: QueuedInfo,
  status: Finish['status'],
  message: string,
  withJobId = true,
): Finish {
  return {
    status,
    errorMessage: message,
    finalEvents: [
      wire.error('INTERNAL_ERROR', message, withJobId ? job.jobId : undefined),
      wire.complete(job.jobId, false, durationSecs(ctx, job)),
    ],
  };
}

const FINISHING = new Set(['windows', 'ios', 'macos']);

/** `complete` with `needs_finishing`: the job's last artifact becomes the input of `<x>-sign`. */
export async function toSigningStage(ctx: Context, job: RunningJob, needsFinishing: string): Promise<boolean> {
  if (!FINISHING.has(needsFinishing) || job.stage !== 'build') return false;
  let tarballRef: string;
  try {
    tarballRef = (await call(ctx.nc, ctx.subjects, promoteEndpoint, { jobId: job.jobId, attempt: job.attempt }))
      .tarballRef;
  } catch (err) {
    ctx.log.warn({ err, jobId: job.jobId }, 'no precompiled artifact to sign');
    return finishJob(ctx, {
      job,
      from: 'running',
      finish: failure(ctx, job, 'failed', `The ${needsFinishing} build produced no precompiled bundle to sign`),
    });
  }
  const targets = [`${needsFinishing}-sign`];
  const ok = await requeueRow(
    ctx,
    job,
    { stage: 'sign', targets, tarballRef, reason: `build stage done; waiting for ${targets[0]}` },
    ctx.now(),
  );
  if (!ok) return false;
  ctx.running.delete(job.jobId);
  await ctx.events.append(job.jobId, wire.stage(job.jobId, 'signing', SIGNING_MESSAGE));
  enqueue(ctx, { ...job, stage: 'sign', targets, tarballRef });
  ctx.log.info({ jobId: job.jobId, targets, position: ctx.queue.position(job.jobId) }, 'build queued for signing');
  return true;
}

/**
 * A released job may wait for the worker that built it to claim it back (reclaimJob): known by
 * name, and holding a token it can go on with. Then the job is held for `reclaimWaitMs`, and
 * that worker avoided until `avoidUntilMs` once the wait is over.
 */
function waitForItsWorker(
  ctx: Context,
  job: RunningJob,
  workerName: string | undefined,
  avoidUntilMs: (holdUntilMs: number) => number,
): { hold: boolean; avoid: QueuedInfo['avoid'] } {
  const now = ctx.now();
  if (workerName === undefined) return { hold: false, avoid: undefined };
  if (ctx.config.reclaimWaitMs === 0 || job.tokenHash === undefined)
    return { hold: false, avoid: { workerName, untilMs: avoidUntilMs(now) } };
  const holdUntilMs = now + ctx.config.reclaimWaitMs;
  return { hold: true, avoid: { workerName, untilMs: avoidUntilMs(holdUntilMs), holdUntilMs } };
}

/**
 * Called every second: the waits that are over. A wait ends at `reclaimWaitMs`, or sooner when
 * the worker it is for reconnected and said nothing of the build for `reclaimSilentMs`
 * (its build ended while it was away).
 */
export async function endWaits(ctx: Context): Promise<void> {
  const now = ctx.now();
  for (const jobId of [...ctx.reclaimable]) {
    const avoid = ctx.queued.get(jobId)?.avoid;
    if (avoid?.holdUntilMs === undefined) {
      ctx.reclaimable.delete(jobId);
      continue;
    }
    const releasedAt = avoid.holdUntilMs - ctx.config.reclaimWaitMs;
    // Its old connection is forgotten by now: a worker of that name is the one that came back.
    let back = false;
    for (const w of ctx.workers.values()) {
      if (w.name === avoid.workerName && now - Math.max(w.connectedAt, releasedAt) >= ctx.config.reclaimSilentMs)
        back = true;
    }
    if (back || now >= avoid.holdUntilMs) await endWait(ctx, jobId);
  }
}

/**
 * The wait for a released job's worker is over, unclaimed. Its build may still have uploaded
 * meanwhile (the upload came back before the worker's messages did): then it is complete, not
 * run again. Otherwise the job is free for any worker (but its old one, for a while).
 */
async function endWait(ctx: Context, jobId: string): Promise<void> {
  ctx.reclaimable.delete(jobId);
  const job = ctx.queued.get(jobId);
  const avoid = job?.avoid;
  if (!job || avoid?.holdUntilMs === undefined) return;
  if (await delivered(ctx, job)) {
    if (ctx.queued.get(jobId) !== job) return;
    dequeue(ctx, jobId);
    ctx.log.info({ jobId, attempt: job.attempt }, 'completed from its upload: its worker did not come back');
    await finishJob(ctx, { job, from: 'queued', finish: completedFromUpload(ctx, job) });
    return;
  }
  if (ctx.queued.get(jobId) !== job) return;
  enqueue(ctx, { ...job, avoid: { workerName: avoid.workerName, untilMs: avoid.untilMs } });
}

/**
 * The worker holding the job is gone: re-queue it, or fail it once retries are used up. A worker
 * that only lost its connection goes on building and comes back: it may claim the job back.
 */
export async function loseJob(ctx: Context, job: RunningJob, workerName?: string): Promise<void> {
  if (job.retries < ctx.config.maxRetries) {
    const retries = job.retries + 1;
    const { hold, avoid } = waitForItsWorker(ctx, job, workerName, (holdUntilMs) => holdUntilMs);
    const ok = await requeueRow(
      ctx,
      job,
      { retries, reason: `worker lost (retry ${retries} of ${ctx.config.maxRetries})`, keepToken: hold },
      ctx.now(),
    );
    if (!ok) return;
    ctx.running.delete(job.jobId);
    enqueue(ctx, { ...job, retries, avoid });
    const position = placeInQueue(ctx, job.jobId, job.targets, sortKey(ctx, job));
    await ctx.events.append(
      job.jobId,
      wire.queueUpdate(job.jobId, position, `Builder disconnected, re-queued (attempt ${retries + 1})`),
    );
    ctx.log.info({ jobId: job.jobId, retries, position }, 're-queued after lost worker');
    return;
  }
  const attempts = ctx.config.maxRetries + 1;
  await finishJob(ctx, {
    job,
    from: 'running',
    finish: failure(ctx, job, 'failed', `Build failed after ${attempts} attempts (workers kept disconnecting)`, false),
  });
}

/**
 * The instance holding the job's worker died or stopped (a crash or a restart of the gateway or of
 * the whole hub): back to the queue. Not a retry: the build did nothing wrong, and a hub that
 * restarts twice must not use up a job's retries. Its worker most likely goes on building and
 * reconnects: for `reclaimWaitMs` the job waits for it to claim the job back at the same attempt
 * (reclaimJob); only then does another worker get it, at a new attempt that fences out the old one.
 */
export async function releaseJob(ctx: Context, job: RunningJob, workerName: string | undefined): Promise<boolean> {
  if (await delivered(ctx, job)) return completeFromUpload(ctx, job);
  const now = ctx.now();
  const { hold, avoid } = waitForItsWorker(ctx, job, workerName, () => now + ctx.config.workerLostMs);
  const reason = 'its gateway instance is gone';
  if (!(await requeueRow(ctx, job, { reason, keepToken: hold }, now))) return false;
  ctx.running.delete(job.jobId);
  enqueue(ctx, { ...job, avoid });
  const position = placeInQueue(ctx, job.jobId, job.targets, sortKey(ctx, job));
  await ctx.events.append(
    job.jobId,
    wire.queueUpdate(job.jobId, position, 'Builder connection lost with a hub restart, re-queued'),
  );
  ctx.log.info(
    {
      jobId: job.jobId,
      attempt: job.attempt,
      worker: workerName,
      ...(hold ? { reclaimWaitMs: ctx.config.reclaimWaitMs } : {}),
    },
    "re-queued: its worker's gateway instance is gone",
  );
  return true;
}

/**
 * An assignment that did not reach its worker. Certainly not delivered: the attempt number is
 * handed back, so attempts count real hand-overs only. Perhaps delivered (no answer in time): the
 * new attempt stands, so whatever the worker may have started is fenced out.
 */
export async function returnUndelivered(ctx: Context, job: RunningJob, delivery: Delivery): Promise<void> {
  const now = ctx.now();
  if (delivery === 'refused') {
    if (!(await ctx.store.unassign(job.jobId, job.attempt, now))) return;
    ctx.running.delete(job.jobId);
    enqueue(ctx, { ...job, attempt: job.attempt - 1 });
    return;
  }
  // No answer while the gateway died: the worker may have got it, built and uploaded meanwhile.
  if (await delivered(ctx, job)) {
    await completeFromUpload(ctx, job);
    return;
  }
  const reason = 'the assignment was not confirmed by the gateway';
  if (!(await requeueRow(ctx, job, { reason }, ctx.now()))) return;
  ctx.running.delete(job.jobId);
  enqueue(ctx, job);
}

/**
 * Did this attempt already announce an artifact? Unknown counts as no: the job is queued again,
 * and its next assignment is refused by MySQL if it did (notAssigned).
 */
async function delivered(ctx: Context, job: QueuedInfo): Promise<boolean> {
  try {
    const { announced } = await call(ctx.nc, ctx.subjects, attemptArtifactsEndpoint, {
      jobId: job.jobId,
      attempt: job.attempt,
    });
    return announced > 0;
  } catch (err) {
    ctx.log.warn({ err, jobId: job.jobId }, 'could not ask the artifact-store what the attempt delivered');
    return false;
  }
}

/**
 * The build outlived its connection and uploaded before the hub gave up on it: running it again
 * would announce a second artifact. Its own `complete` was lost with the connection.
 */
function completeFromUpload(ctx: Context, job: RunningJob): Promise<boolean> {
  ctx.log.info({ jobId: job.jobId, attempt: job.attempt }, 'completed from its upload: its connection is gone');
  return finishJob(ctx, { job, from: 'running', finish: completedFromUpload(ctx, job) });
}

function completedFromUpload(ctx: Context, job: QueuedInfo): Finishing['finish'] {
  return {
    status: 'completed',
    errorMessage: null,
    finalEvents: [wire.complete(job.jobId, true, durationSecs(ctx, job))],
  };
}
