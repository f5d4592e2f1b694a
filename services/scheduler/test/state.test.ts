import { describe, expect, it } from 'vitest';
import { dequeue, enqueue, unqueue } from '../src/state.js';
import { queueDepth } from '../src/sweeps.js';
import { leaderState, queuedJob } from './leader-state.js';

const payload = { manifest: '{}', credentials: null };

describe('the leader state kept with its queued jobs', () => {
  it('queue depth counts every queued job per target, a parked one too, and follows removals', () => {
    const ctx = leaderState();
    const a = queuedJob('A', ['linux'], 100);
    const b = queuedJob('B', ['linux', 'android'], 50);
    const parked = { ...queuedJob('C', ['windows-sign'], 10), avoid: { workerName: 'w', untilMs: 9, holdUntilMs: 9 } };
    [a, b, parked].forEach((j) => enqueue(ctx, j));
    expect(ctx.queue.size).toBe(2); // the parked job waits outside the dispatch queue
    expect(queueDepth(ctx).capabilities).toEqual({
      linux: { queued: 2, oldestQueuedAt: 50, assigned: 0, running: 0 },
      android: { queued: 1, oldestQueuedAt: 50, assigned: 0, running: 0 },
      'windows-sign': { queued: 1, oldestQueuedAt: 10, assigned: 0, running: 0 },
    });
    dequeue(ctx, b.jobId);
    unqueue(ctx, parked.jobId);
    expect(queueDepth(ctx).capabilities).toEqual({
      linux: { queued: 1, oldestQueuedAt: 100, assigned: 0, running: 0 },
    });
    // Running jobs count as assigned until their worker speaks, then as running.
    ctx.running.set(b.jobId, {
      ...b,
      workerId: 'w',
      assignedAt: 0,
      lastActivityAt: 0,
      active: false,
      cancelRequestedAt: null,
      pending: false,
    });
    expect(queueDepth(ctx).capabilities['android']).toEqual({
      queued: 0,
      oldestQueuedAt: null,
      assigned: 1,
      running: 0,
    });
  });

  it('a job queued again (re-queued) is counted once, with what it holds now', () => {
    const ctx = leaderState();
    const a = { ...queuedJob('A', ['linux'], 100), payload };
    enqueue(ctx, a);
    expect(ctx.heldPayloads).toBe(1);
    // Back from a failed assignment: the same job, now without its payload in memory.
    const { payload: _dropped, ...again } = a;
    enqueue(ctx, { ...again, attempt: 1 });
    expect(ctx.heldPayloads).toBe(0);
    expect(ctx.queuedLicenses.get('A')).toEqual({ tier: 'free', count: 1 });
    expect(queueDepth(ctx).capabilities['linux']).toMatchObject({ queued: 1, oldestQueuedAt: 100 });
    enqueue(ctx, a);
    expect(ctx.heldPayloads).toBe(1);
    expect(unqueue(ctx, a.jobId)).toBeDefined();
    expect(ctx.heldPayloads).toBe(0);
    expect(unqueue(ctx, a.jobId)).toBeUndefined(); // gone: nothing counted twice
    expect(ctx.heldPayloads).toBe(0);
    expect(ctx.queuedLicenses.has('A')).toBe(false);
  });

  it('counts payloads held by queued jobs only, so jobs queued without one do not use up the allowance', () => {
    const ctx = leaderState();
    // A deep queue read from MySQL at takeover holds no payloads.
    for (let i = 0; i < 1_000; i++) enqueue(ctx, queuedJob(`D${i % 7}`, ['visionos'], i));
    expect(ctx.heldPayloads).toBe(0);
    const fresh = [1, 2, 3].map((i) => ({ ...queuedJob('F', ['linux'], 5_000 + i), payload }));
    fresh.forEach((j) => enqueue(ctx, j));
    expect(ctx.heldPayloads).toBe(3);
    dequeue(ctx, fresh[0]!.jobId);
    expect(ctx.heldPayloads).toBe(2);
    expect(queueDepth(ctx).capabilities).toMatchObject({
      visionos: { queued: 1_000, oldestQueuedAt: 0 },
      linux: { queued: 2, oldestQueuedAt: 5_002 },
    });
  });
});
