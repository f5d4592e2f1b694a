import { describe, expect, it } from 'vitest';
import { enqueue, type KnownWorker, type QueuedInfo, type RunningJob } from '../src/state.js';
import { queueSummary } from '../src/waiting.js';
import { leaderState as leader, queuedJob as job } from './leader-state.js';

function worker(id: string, caps: string[], maxConcurrent: number): KnownWorker {
  return {
    workerId: id,
    name: id,
    gatewayId: 'g',
    capabilities: new Set(caps),
    maxConcurrent,
    connectedAt: 0,
    heartbeatAt: 0,
    jobs: undefined,
    avoidUntil: 0,
  };
}

function running(of: QueuedInfo, workerId: string): RunningJob {
  return {
    ...of,
    workerId,
    assignedAt: 0,
    lastActivityAt: 0,
    active: true,
    cancelRequestedAt: null,
    pending: false,
  };
}

describe('queueSummary', () => {
  it('says why each job waits, per target and tier, counting jobs with the same reason together', () => {
    const ctx = leader();
    ctx.workers.set('w', worker('w', ['linux'], 3));
    const busy = job('A', ['linux'], 0);
    ctx.running.set(busy.jobId, running(busy, 'w'));
    // A's free license runs one build at a time: its three queued builds wait for it.
    for (const at of [10, 20, 30]) enqueue(ctx, job('A', ['linux'], at));
    // Nobody serves visionos; a pro and two free builds wait for a worker.
    for (const [at, tier] of [
      [5, 'pro'],
      [15, 'free'],
      [25, 'free'],
    ] as const)
      enqueue(ctx, job(`V${at}`, ['visionos'], at, tier));
    // B may run, and the worker has free slots: waiting only for its turn (next, then 1 ahead).
    enqueue(ctx, job('B', ['linux'], 40));
    enqueue(ctx, job('B2', ['linux'], 50));

    const summary = queueSummary(ctx);
    expect(summary).toMatchObject({ at: 1_000_000, queued: 8, running: 1 });
    expect(summary.lines).toMatchObject([
      {
        target: 'linux',
        tier: 'free',
        queued: 5,
        oldestQueuedAt: 10,
        waiting: [
          { reason: 'license_limit', jobs: 3 },
          { reason: 'in_line', message: '3 jobs ahead', jobs: 1 },
          { reason: 'in_line', message: '4 jobs ahead', jobs: 1 },
        ],
      },
      { target: 'visionos', tier: 'free', queued: 2, oldestQueuedAt: 15, waiting: [{ reason: 'no_worker', jobs: 2 }] },
      { target: 'visionos', tier: 'pro', queued: 1, oldestQueuedAt: 5, waiting: [{ reason: 'no_worker', jobs: 1 }] },
    ]);
  });

  it('a lone job next in line is told so, and a job parked for its worker says it waits for it', () => {
    const ctx = leader();
    ctx.workers.set('w', worker('w', ['linux'], 1));
    enqueue(ctx, job('A', ['linux'], 10));
    enqueue(ctx, {
      ...job('B', ['linux'], 20),
      avoid: { workerName: 'old', untilMs: 2_000_000, holdUntilMs: 2_000_000 },
    });
    expect(queueSummary(ctx).lines).toMatchObject([
      {
        target: 'linux',
        queued: 2,
        waiting: [
          { reason: 'next', jobs: 1 },
          { reason: 'worker_reconnecting', jobs: 1 },
        ],
      },
    ]);
  });
});
