/**
 * Why a queued job waits, as the leader sees it: the line waiting CLIs get in `queue_update` and
 * `GET /api/v1/queue` counts. Pure over the leader's state; the order of the checks is what a
 * user can act on first (a per-license limit is theirs, a missing worker is the operator's).
 */
import { TIER_LIMITS, type QueueSummary, type VmPoolState, type WaitReason } from '@perry-hub/contracts';
import type { Context, KnownWorker, QueuedInfo } from './state.js';

export interface WaitFacts {
  /** Jobs each license has running now. */
  readonly runningPerLicense: ReadonlyMap<string, number>;
  /** Busy slots per worker id. */
  readonly busyPerWorker: ReadonlyMap<string, number>;
}

export function waitFacts(ctx: Pick<Context, 'running'>): WaitFacts {
  const runningPerLicense = new Map<string, number>();
  const busyPerWorker = new Map<string, number>();
  for (const job of ctx.running.values()) {
    runningPerLicense.set(job.licenseKey, (runningPerLicense.get(job.licenseKey) ?? 0) + 1);
    busyPerWorker.set(job.workerId, (busyPerWorker.get(job.workerId) ?? 0) + 1);
  }
  return { runningPerLicense, busyPerWorker };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function vmReason(pool: VmPoolState): WaitReason {
  if (pool.draining) return { reason: 'vm_draining', message: pool.message };
  if (pool.power === 'starting' || pool.power === 'running') return { reason: 'vm_starting', message: pool.message };
  if (pool.power === 'deallocated' || pool.power === 'stopping') return { reason: 'vm_stopped', message: pool.message };
  // Never known: no provider manages it (automatic start disabled); its message says so.
  return { reason: 'no_worker', message: pool.message };
}

export function whyWaiting(
  ctx: Pick<Context, 'config' | 'workers' | 'vmPools' | 'draining'>,
  job: Pick<QueuedInfo, 'licenseKey' | 'tier' | 'targets'>,
  position: number,
  facts: WaitFacts,
): WaitReason {
  if (!ctx.config.selfHosted) {
    const limit = TIER_LIMITS[job.tier].concurrentBuilds;
    const running = facts.runningPerLicense.get(job.licenseKey) ?? 0;
    if (running >= limit) {
      return {
        reason: 'license_limit',
        message: `This license runs ${plural(limit, 'build')} at a time (${job.tier} tier); this one starts when ${running === 1 ? 'the running one ends' : 'one of them ends'}`,
      };
    }
  }
  const capable: KnownWorker[] = [];
  for (const w of ctx.workers.values()) if (job.targets.every((t) => w.capabilities.has(t))) capable.push(w);
  if (capable.length === 0) {
    const uncovered = job.targets.filter((t) => ![...ctx.workers.values()].some((w) => w.capabilities.has(t)));
    for (const target of uncovered) {
      const pool = ctx.vmPools.get(target);
      if (pool) return vmReason(pool);
    }
    const missing = uncovered.length > 0 ? uncovered : job.targets;
    if (uncovered.length === 0) {
      return {
        reason: 'no_worker',
        message: `No connected worker has every target of this job (${job.targets.join(', ')})`,
      };
    }
    return {
      reason: 'no_worker',
      message: `No ${missing.join(', ')} worker is connected and no VM provider can start one; the job waits until one connects`,
    };
  }
  const draining = job.targets.find((t) => ctx.draining.has(t));
  if (draining !== undefined) {
    const pool = ctx.vmPools.get(draining);
    return {
      reason: 'vm_draining',
      message: pool?.message ?? `The ${draining} VM is about to be deallocated; the job waits for it to start again`,
    };
  }
  const free = capable.reduce(
    (n, w) => n + Math.max(0, w.maxConcurrent - (facts.busyPerWorker.get(w.workerId) ?? 0)),
    0,
  );
  if (free === 0) {
    return {
      reason: 'workers_busy',
      message: `All ${plural(capable.length, 'worker')} for ${job.targets.join(', ')} ${capable.length === 1 ? 'is' : 'are'} busy`,
    };
  }
  if (position <= 1) return { reason: 'next', message: 'Next in line' };
  return { reason: 'in_line', message: `${plural(position - 1, 'job')} ahead` };
}

/** Reasons worth telling a waiting CLI (the others change with every dispatch and say nothing new). */
const RECONNECTING: WaitReason = {
  reason: 'worker_reconnecting',
  message: 'Waiting for its worker to reconnect and go on with the build',
};

export function toldToCli(reason: WaitReason): string | undefined {
  return reason.reason === 'next' || reason.reason === 'in_line' ? undefined : reason.message;
}

/**
 * `queue-summary`: per target and tier, how many wait, since when, and why. Why a job waits
 * depends on its license, tier and targets, and only for `next` / `in_line` on its place: the
 * reason is worked out once per such group (not per job, each a walk over the workers), so an
 * admin's look at a deep queue does not hold up dispatching for long.
 */
export function queueSummary(ctx: Context): QueueSummary {
  const facts = waitFacts(ctx);
  type Line = QueueSummary['lines'][number];
  type Counted = Line['waiting'][number];
  const lines = new Map<string, Map<string, { line: Line; reasons: Map<string, Counted> }>>();
  /** A reason's key (reason and message), worked out once per reason object. */
  const reasonKeys = new Map<WaitReason, string>();
  /** license → tier → targets → the group's reason (null: it depends on the place in line). */
  const byGroup = new Map<string, Map<string, Map<string, WaitReason | null>>>();
  const count = (job: QueuedInfo, why: WaitReason) => {
    let reasonKey = reasonKeys.get(why);
    if (reasonKey === undefined) reasonKeys.set(why, (reasonKey = `${why.reason}\u0000${why.message}`));
    for (const target of job.targets) {
      let tiers = lines.get(target);
      if (!tiers) lines.set(target, (tiers = new Map()));
      let entry = tiers.get(job.tier);
      if (!entry) {
        entry = {
          line: { target, tier: job.tier, queued: 0, oldestQueuedAt: job.queuedAt, waiting: [] },
          reasons: new Map(),
        };
        tiers.set(job.tier, entry);
      }
      const { line, reasons } = entry;
      line.queued += 1;
      if (job.queuedAt < line.oldestQueuedAt) line.oldestQueuedAt = job.queuedAt;
      const counted = reasons.get(reasonKey);
      if (counted) counted.jobs += 1;
      else {
        const fresh = { ...why, jobs: 1 };
        reasons.set(reasonKey, fresh);
        line.waiting.push(fresh);
      }
    }
  };
  for (const kq of ctx.queue.keys()) {
    for (const [i, queued] of ctx.queue.ordered(kq.key, Number.MAX_SAFE_INTEGER).entries()) {
      const job = ctx.queued.get(queued.jobId);
      if (!job) continue;
      let tiers = byGroup.get(job.licenseKey);
      if (!tiers) byGroup.set(job.licenseKey, (tiers = new Map()));
      let groups = tiers.get(job.tier);
      if (!groups) tiers.set(job.tier, (groups = new Map()));
      const targets = job.targets.length === 1 ? job.targets[0]! : job.targets.join('\u0000');
      let why = groups.get(targets);
      if (why === undefined) {
        // Asked as if second in line: a reason that is not about the place holds for the group.
        const general = whyWaiting(ctx, job, 2, facts);
        why = general.reason === 'next' || general.reason === 'in_line' ? null : general;
        groups.set(targets, why);
      }
      count(job, why ?? whyWaiting(ctx, job, i + 1, facts));
    }
  }
  // Parked outside the dispatch queue while its worker may claim it back.
  for (const jobId of ctx.reclaimable) {
    const job = ctx.queued.get(jobId);
    if (job?.avoid?.holdUntilMs !== undefined) count(job, RECONNECTING);
  }
  return {
    at: ctx.now(),
    queued: ctx.queued.size,
    running: ctx.running.size,
    lines: [...lines.values()]
      .flatMap((tiers) => [...tiers.values()].map((e) => e.line))
      .sort((a, b) => a.target.localeCompare(b.target) || a.tier.localeCompare(b.tier)),
  };
}
