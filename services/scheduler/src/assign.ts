/**
 * Hand one picked job to its worker: compare-and-set to running in MySQL (the attempt goes up,
 * a new job token), then the assign command to the gateway holding the worker's socket.
 */
import { createHash, randomBytes } from 'node:crypto';
import { deliverCommand, sendCommand } from './commands.js';
import { notAssigned, returnUndelivered } from './outcomes.js';
import { enqueue, type Context, type RunningJob } from './state.js';
import type { JobRow } from './store.js';

const encoder = new TextEncoder();
/** Targets whose sign VM is started as soon as their build stage is assigned. */
const PREWARM = new Set(['windows', 'ios', 'macos']);

export async function assign(ctx: Context, job: RunningJob, waitingSince: number): Promise<void> {
  const worker = ctx.workers.get(job.workerId);
  const token = randomBytes(24).toString('base64url');
  const hash = createHash('sha256').update(token).digest('hex');
  const row = { ...job, id: job.jobId, status: 'queued' } as unknown as JobRow;
  let assigned: boolean;
  ctx.log.debug({ jobId: job.jobId, workerId: job.workerId }, 'assigning');
  try {
    assigned = await ctx.store.assign(row, { id: job.workerId, name: worker?.name ?? '' }, hash, ctx.now());
  } catch (err) {
    // MySQL did not answer, even after waiting for it to restart: the job keeps its place, and the
    // dispatcher tries again shortly (should the write have gone through, that try's
    // compare-and-set misses, and the row is taken as it is).
    ctx.running.delete(job.jobId);
    ctx.unsent.set(job.jobId, hash);
    enqueue(ctx, job);
    throw err;
  }
  const unsent = ctx.unsent.get(job.jobId);
  ctx.unsent.delete(job.jobId);
  if (!assigned) {
    // Cancelled or moved meanwhile, an earlier try's write went through although MySQL's answer
    // was lost (it was killed just after its commit), or its last attempt delivered.
    await notAssigned(ctx, job, unsent);
    return;
  }
  const attempt = job.attempt + 1;
  // A cancel may have arrived while the assignment was being written: keep it.
  const current: RunningJob = {
    ...(ctx.running.get(job.jobId) ?? job),
    attempt,
    pending: false,
    tokenHash: hash,
  };
  ctx.running.set(job.jobId, current);
  const payload = job.payload ?? (await ctx.store.payload(job.jobId));
  const manifest = JSON.parse(payload?.manifest ?? '{}') as Record<string, unknown>;
  manifest['targets'] = [...job.targets];
  const base = ctx.config.publicUrl.replace(/\/+$/, '');
  const sentAt = ctx.now();
  const delivery = await deliverCommand(ctx, job.workerId, {
    kind: 'assign',
    jobId: job.jobId,
    attempt,
    authToken: token,
    manifest,
    credentialsSealed: payload?.credentials ? payload.credentials.toString('base64') : null,
    tarballUrl: `${base}/api/v1/tarball/${job.jobId}`,
    artifactUploadUrl: `${base}/api/v1/artifact/upload/${job.jobId}`,
  });
  if (delivery !== 'delivered') {
    ctx.log.warn(
      { jobId: job.jobId, worker: worker?.name, workerId: job.workerId, attempt, delivery, ms: ctx.now() - sentAt },
      'assignment not delivered',
    );
    if (worker) worker.avoidUntil = ctx.now() + 2_000;
    return returnUndelivered(ctx, { ...job, attempt }, delivery);
  }
  ctx.log.info(
    {
      jobId: job.jobId,
      worker: worker?.name,
      workerId: job.workerId,
      attempt,
      stage: job.stage,
      targets: job.targets,
      deliveredMs: ctx.now() - sentAt,
    },
    'build assigned',
  );
  ctx.metrics.dispatchLatency.observe({ stage: job.stage }, Math.max(0, ctx.now() - waitingSince) / 1000);
  if (current.cancelRequestedAt !== null) {
    await ctx.store.requestCancel(job.jobId, attempt, ctx.now());
    await sendCommand(ctx, job.workerId, { kind: 'cancel', jobId: job.jobId });
    return;
  }
  if (job.stage === 'build') {
    for (const t of job.targets.filter((t) => PREWARM.has(t))) {
      ctx.nc.publish(
        ctx.subjects.vmPrewarm,
        encoder.encode(JSON.stringify({ capability: `${t}-sign`, jobId: job.jobId, at: ctx.now() })),
      );
    }
  }
}
