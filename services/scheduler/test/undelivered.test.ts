import { describe, expect, it } from 'vitest';
import type { Context, RunningJob } from '../src/state.js';
import { sweepLostWorkers } from '../src/sweeps.js';
import { leaderState, queuedJob } from './leader-state.js';

const NOW = 1_000_000;
const ASSIGNED_AT = NOW - 60_000;

/**
 * A leader that has led for `ledMs`, one worker of gateway `gw` running one job assigned at
 * ASSIGNED_AT; its presence entry was written at `entryAt` and lists the job or not; the gateway's
 * liveness record vouches as of `vouchedAt`. Returns the attempts the sweep handed back.
 */
async function sweep(c: { ledMs: number; entryAt: number; listsJob: boolean; vouchedAt: number | undefined }) {
  const requeued: string[] = [];
  const ctx = {
    ...leaderState(),
    leaderSince: NOW - c.ledMs,
    config: { workerLostMs: 60_000, agingStepMs: 60_000 },
    log: { warn: () => undefined, info: () => undefined },
    store: {
      requeue: async (jobId: string, attempt: number) => {
        requeued.push(`${jobId}@${attempt}`);
        return true;
      },
    },
  } as unknown as Context;
  const job: RunningJob = {
    ...queuedJob('L', ['linux'], ASSIGNED_AT - 1_000),
    jobId: 'job',
    attempt: 1,
    workerId: 'w',
    assignedAt: ASSIGNED_AT,
    lastActivityAt: ASSIGNED_AT,
    active: true,
    cancelRequestedAt: null,
    pending: false,
  };
  ctx.running.set(job.jobId, job);
  ctx.workers.set('w', {
    workerId: 'w',
    name: 'linux-1',
    gatewayId: 'gw',
    capabilities: new Set(['linux']),
    maxConcurrent: 2,
    connectedAt: ASSIGNED_AT - 10_000,
    heartbeatAt: c.entryAt,
    jobs: new Set(c.listsJob ? ['job:1'] : ['other:1']),
    avoidUntil: 0,
  });
  await sweepLostWorkers(ctx, (id) => (id === 'gw' ? c.vouchedAt : undefined));
  return requeued;
}

describe('an assignment its worker never got', () => {
  const before = ASSIGNED_AT - 1_000;
  const cases: [string, Parameters<typeof sweep>[0], string[]][] = [
    [
      "handed back when the worker's own entry, written after it, does not list it",
      { ledMs: 1_000, entryAt: ASSIGNED_AT + 6_000, listsJob: false, vouchedAt: undefined },
      ['job@1'],
    ],
    [
      'handed back when a live gateway vouches for an older entry long after it, to a settled leader',
      { ledMs: 30_000, entryAt: before, listsJob: false, vouchedAt: ASSIGNED_AT + 20_000 },
      ['job@1'],
    ],
    [
      "kept by a new leader, whose copy of presence may lag the gateway's liveness record",
      { ledMs: 1_000, entryAt: before, listsJob: false, vouchedAt: ASSIGNED_AT + 20_000 },
      [],
    ],
    [
      'kept while the vouching is not yet long after the assignment',
      { ledMs: 30_000, entryAt: before, listsJob: false, vouchedAt: ASSIGNED_AT + 10_000 },
      [],
    ],
    [
      'kept when the entry lists it',
      { ledMs: 30_000, entryAt: ASSIGNED_AT + 6_000, listsJob: true, vouchedAt: ASSIGNED_AT + 20_000 },
      [],
    ],
  ];
  it.each(cases)('%s', async (_name, c, expected) => {
    expect(await sweep(c)).toEqual(expected);
  });
});
