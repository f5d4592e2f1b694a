import { describe, expect, it } from 'vitest';
import type { Vouch } from '@perry-hub/runtime';
import type { Context, RunningJob } from '../src/state.js';
import { sweepLostWorkers } from '../src/sweeps.js';
import { leaderState, queuedJob } from './leader-state.js';

const NOW = 1_000_000;
const ASSIGNED_AT = NOW - 60_000;

/**
 * A leader that has led for `ledMs`, its copy of presence at revision `applied`; one worker of
 * gateway `gw` running one job assigned at ASSIGNED_AT; its presence entry was written at
 * `entryAt` and lists the job or not; the gateway's liveness record says `vouch`. Returns the
 * attempts the sweep handed back.
 */
async function sweep(c: { ledMs: number; applied?: number; entryAt: number; listsJob: boolean; vouch?: Vouch }) {
  const requeued: string[] = [];
  const ctx = {
    ...leaderState(),
    leaderSince: NOW - c.ledMs,
    leading: () => true,
    presenceRevision: c.applied ?? 0,
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
  await sweepLostWorkers(ctx, (id) => (id === 'gw' ? c.vouch : undefined));
  return requeued;
}

describe('an assignment its worker never got', () => {
  const before = ASSIGNED_AT - 1_000;
  const late = ASSIGNED_AT + 20_000;
  /** A record that says the gateway's writes were acknowledged up to revision 7 as of `currentAt`. */
  const stamped = (currentAt: number): Vouch => ({ at: late, presenceRevision: 7, presenceCurrentAt: currentAt });
  const cases: [string, Parameters<typeof sweep>[0], string[]][] = [
    [
      "handed back when the worker's own entry, written after it, does not list it",
      { ledMs: 1_000, entryAt: ASSIGNED_AT + 6_000, listsJob: false },
      ['job@1'],
    ],
    [
      "handed back on the gateway's word long after it, once the leader's copy has its revision",
      { ledMs: 1_000, applied: 7, entryAt: before, listsJob: false, vouch: stamped(late) },
      ['job@1'],
    ],
    [
      "kept while the leader's copy of presence is behind the gateway's record, however long it has led",
      { ledMs: 600_000, applied: 6, entryAt: before, listsJob: false, vouch: stamped(late) },
      [],
    ],
    [
      'kept while a change of the gateway from soon after the assignment is not acknowledged',
      { ledMs: 600_000, applied: 9, entryAt: before, listsJob: false, vouch: stamped(ASSIGNED_AT + 10_000) },
      [],
    ],
    [
      "handed back on an earlier version's word (no revision) long after it, to a settled leader",
      { ledMs: 30_000, entryAt: before, listsJob: false, vouch: { at: late } },
      ['job@1'],
    ],
    [
      "kept by a new leader on an earlier version's word, as its copy of presence may lag",
      { ledMs: 1_000, entryAt: before, listsJob: false, vouch: { at: late } },
      [],
    ],
    [
      'kept while the vouching is not yet long after the assignment',
      { ledMs: 30_000, entryAt: before, listsJob: false, vouch: { at: ASSIGNED_AT + 10_000 } },
      [],
    ],
    [
      'kept when the entry lists it',
      { ledMs: 30_000, applied: 7, entryAt: ASSIGNED_AT + 6_000, listsJob: true, vouch: stamped(late) },
      [],
    ],
  ];
  it.each(cases)('%s', async (_name, c, expected) => {
    expect(await sweep(c)).toEqual(expected);
  });
});
