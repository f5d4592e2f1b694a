/** Leader-only endpoints: what workers report about their jobs, and cancel. */
import {
  HubError,
  type Ack,
  type CancelJobRequest,
  type ReclaimJobReply,
  type ReclaimJobRequest,
  type WorkerEvent,
} from '@perry-hub/contracts';
import { sameSecret } from '@perry-hub/runtime';
import { sendCommand } from './commands.js';
import { failure, finishJob, takeFromMySql, toSigningStage } from './outcomes.js';
import { dequeue, type Context, type RunningJob } from './state.js';
import { onBuildComplete } from './verify.js';

const stale = (reason: string): Ack => ({ accepted: false, reason });

export async function onWorkerEvent(ctx: Context, event: WorkerEvent): Promise<Ack> {
  const job = ctx.running.get(event.jobId);
  // Fencing: only the connection that holds the current attempt may move the job.
  if (!job || job.attempt !== event.attempt || job.workerId !== event.workerId) return stale('not the current attempt');
  job.lastActivityAt = ctx.now();
  job.active = true;
  const message = event.message;
  switch (message['type']) {
    case 'error':
      // Relayed as the worker sent it: the CLI stops at the first error, exactly as with the original.
      await ctx.events.append(job.jobId, JSON.stringify(message));
      if (typeof message['message'] === 'string') job.lastError = message['message'].slice(0, 1000);
      return { accepted: true };
    case 'complete': {
      const success = message['success'] === true;
      const needs = message['needs_finishing'];
      // A plugin build is single-stage: its binaries are final, whatever the worker says.
      if (success && typeof needs === 'string' && needs !== '' && job.stage === 'build' && job.buildType !== 'plugin') {
        if (await toSigningStage(ctx, job, needs)) return { accepted: true };
        if (!ctx.running.has(job.jobId)) return { accepted: true };
      }
      const status = success ? 'completed' : job.cancelRequestedAt !== null ? 'cancelled' : 'failed';
      const ok = await finishJob(ctx, {
        job,
        from: 'running',
        finish: {
          status,
          errorMessage: success
            ? null
            : status === 'cancelled'
              ? 'Build cancelled'
              : (job.lastError ?? 'The worker reported a failure'),
          finalEvents: [JSON.stringify(message)],
        },
      });
      return ok ? { accepted: true } : stale('job already finished');
    }
    case 'build_complete':
      return onBuildComplete(ctx, job, message);
    default:
      return stale(`unexpected message type ${String(message['type'])}`);
  }
}

/**
 * A reconnected worker speaks of a build its old connection held (a hub restart or a gateway
 * crash released it): while the job still waits for that worker, and no one else got it, it goes
 * on where it is, at the same attempt and with the same job token. Otherwise the worker's
 * messages about it are dropped by its gateway (the job is gone, or another attempt holds it).
 */
export async function reclaimJob(ctx: Context, request: ReclaimJobRequest): Promise<ReclaimJobReply> {
  const { jobId, workerId, workerName } = request;
  // Its old connection's loss may not have reached the scheduler yet: ask again shortly.
  const elsewhere = ctx.running.get(jobId);
  if (elsewhere && elsewhere.workerId !== workerId && !ctx.workers.has(elsewhere.workerId))
    return { accepted: false, reason: 'the job still runs on a connection not yet known lost', retry: true };
  const job = ctx.queued.get(jobId);
  const now = ctx.now();
  const hold = job?.avoid;
  if (!job || hold?.holdUntilMs === undefined || now >= hold.holdUntilMs || hold.workerName !== workerName)
    return { accepted: false, reason: 'the job is not waiting for this worker' };
  if (!(await ctx.store.reclaim(jobId, job.attempt, { id: workerId, name: workerName }, now))) {
    await takeFromMySql(ctx, jobId);
    return { accepted: false, reason: 'the job changed meanwhile' };
  }
  if (ctx.queued.get(jobId) !== job) return { accepted: false, reason: 'the job changed meanwhile' };
  dequeue(ctx, jobId);
  ctx.reclaimable.delete(jobId);
  const { avoid: _avoid, ...rest } = job;
  const running: RunningJob = {
    ...rest,
    workerId,
    assignedAt: now,
    lastActivityAt: now,
    active: true,
    cancelRequestedAt: (job as Partial<RunningJob>).cancelRequestedAt ?? null,
    pending: false,
  };
  ctx.running.set(jobId, running);
  ctx.log.info(
    { jobId, attempt: job.attempt, worker: workerName, workerId },
    'build reclaimed by its reconnected worker',
  );
  return { accepted: true, attempt: job.attempt };
}

/**
 * A job id is a capability to watch, not to act (design 8): only the license or account that
 * submitted the job, or the admin, may cancel it. A stranger is told the job does not exist,
 * exactly as for an unknown id, so cancel cannot be used to probe for job ids.
 */
async function assertMayCancel(ctx: Context, request: CancelJobRequest): Promise<void> {
  const owner = await ctx.store.owner(request.jobId);
  const notFound = new HubError('JOB_NOT_FOUND', 'Job not found');
  if (!owner) throw notFound;
  if (request.by === 'admin') return;
  const byLicense = request.licenseKey !== undefined && sameSecret(request.licenseKey, owner.licenseKey);
  const byAccount =
    request.accountId !== undefined && owner.accountId !== null && sameSecret(request.accountId, owner.accountId);
  if (!byLicense && !byAccount) throw notFound;
}

export async function cancelJob(ctx: Context, request: CancelJobRequest): Promise<Ack> {
  await assertMayCancel(ctx, request);
  const { jobId } = request;
  const queued = ctx.queued.get(jobId);
  if (queued) {
    dequeue(ctx, jobId);
    const ok = await finishJob(ctx, {
      job: queued,
      from: 'queued',
      finish: failure(ctx, queued, 'cancelled', 'Build cancelled'),
    });
    return ok ? { accepted: true } : stale('job already moved on');
  }
  const running = ctx.running.get(jobId);
  if (!running) {
    const row = await ctx.store.get(jobId);
    if (!row) throw new HubError('JOB_NOT_FOUND', 'Job not found');
    return stale(`job is ${row.status}`);
  }
  running.cancelRequestedAt = ctx.now();
  // Still being assigned: the dispatch sends the cancel once the worker has the job.
  if (running.pending) return { accepted: true };
  await ctx.store.requestCancel(jobId, running.attempt, ctx.now());
  await sendCommand(ctx, running.workerId, { kind: 'cancel', jobId });
  return { accepted: true };
}
