/**
 * One dispatch round, in memory: which queued jobs go to which free worker slots now (priority
 * and aging, per-license concurrency, capabilities, jobs that wait for their own worker). The
 * picked jobs are moved to running, pending, and handed to assign() by the caller.
 */
import { TIER_LIMITS } from '@perry-hub/contracts';
import { refusesJob } from './gateways.js';
import { planDispatch, type WorkerSlots } from './queue/match.js';
import { unqueue, type Context, type RunningJob } from './state.js';

export interface Picked {
  job: RunningJob;
  /** When the job began its current wait (for the dispatch-latency metric). */
  waitingSince: number;
}

export function pickJobs(ctx: Context): Picked[] {
  // Nothing queued: nothing to pick (a round runs every second, whatever happens).
  if (ctx.queued.size === 0) return [];
  const now = ctx.now();
  const picked: Picked[] = [];
  const perWorker = new Map<string, number>();
  const perLicense = new Map<string, number>();
  const tierOf = new Map<string, number>();
  for (const job of ctx.running.values()) {
    perWorker.set(job.workerId, (perWorker.get(job.workerId) ?? 0) + 1);
    perLicense.set(job.licenseKey, (perLicense.get(job.licenseKey) ?? 0) + 1);
  }
  const limit = (license: string, tier: 'free' | 'pro') => {
    if (ctx.config.selfHosted) return Infinity;
    return tierOf.get(license) ?? TIER_LIMITS[tier].concurrentBuilds;
  };
  for (const [license, { tier }] of ctx.queuedLicenses) tierOf.set(license, limit(license, tier));
  for (const [license, max] of tierOf) ctx.queue.setBlocked(license, (perLicense.get(license) ?? 0) >= max);
  const slots: WorkerSlots[] = [...ctx.workers.values()]
    .filter((w) => w.avoidUntil <= now)
    .map((w) => ({
      workerId: w.workerId,
      capabilities: w.capabilities,
      free: w.maxConcurrent - (perWorker.get(w.workerId) ?? 0),
      connectedAt: w.connectedAt,
    }));
  const plan = planDispatch(
    ctx.queue,
    slots,
    ctx.draining,
    (job) => {
      const n = (perLicense.get(job.licenseKey) ?? 0) + 1;
      perLicense.set(job.licenseKey, n);
      if (n >= (tierOf.get(job.licenseKey) ?? Infinity)) ctx.queue.setBlocked(job.licenseKey, true);
    },
    (workerId, job) => refusesJob(ctx.queued.get(job.jobId), ctx.workers.get(workerId)?.name, now),
  );
  for (const { job, workerId } of plan) {
    const waitingSince = ctx.waitingSince.get(job.jobId) ?? job.queuedAt;
    const queued = unqueue(ctx, job.jobId)!;
    for (const target of queued.targets) {
      ctx.metrics.queueWait.observe({ tier: queued.tier, target }, Math.max(0, now - waitingSince) / 1000);
    }
    const running: RunningJob = {
      ...queued,
      workerId,
      assignedAt: now,
      lastActivityAt: now,
      active: false,
      cancelRequestedAt: null,
      pending: true,
    };
    ctx.running.set(job.jobId, running);
    ctx.touched();
    picked.push({ job: running, waitingSince });
  }
  return picked;
}
