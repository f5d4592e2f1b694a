/** A leader's in-memory state without its connections: for the pure parts (queue, summary, depth). */
import type { SchedulerConfig } from '../src/config.js';
import { emptyLeaderState, type Context, type QueuedInfo } from '../src/state.js';

export function leaderState(): Context {
  return {
    config: { selfHosted: false, agingStepMs: 60_000 } as SchedulerConfig,
    ...emptyLeaderState(),
    now: () => 1_000_000,
    kick: () => undefined,
    touched: () => undefined,
  } as unknown as Context;
}

let n = 0;
export function queuedJob(
  licenseKey: string,
  targets: string[],
  queuedAt: number,
  tier: 'free' | 'pro' = 'free',
): QueuedInfo {
  n += 1;
  return {
    jobId: `job-${n}`,
    licenseKey,
    tier,
    targets,
    stage: 'build',
    attempt: 0,
    retries: 0,
    queuedAt,
    startedAt: null,
  };
}
