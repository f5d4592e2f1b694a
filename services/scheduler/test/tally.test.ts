import { describe, expect, it } from 'vitest';
import { QueueTally, type TalliedJob } from '../src/queue/tally.js';

const job = (jobId: string, targets: string[], queuedAt: number): TalliedJob => ({ jobId, targets, queuedAt });

/** What the tally must say, by walking every job (what queue depth did before). */
function walk(jobs: ReadonlyMap<string, TalliedJob>): Map<string, { queued: number; oldestQueuedAt: number | null }> {
  const out = new Map<string, { queued: number; oldestQueuedAt: number | null }>();
  for (const j of jobs.values()) {
    for (const t of j.targets) {
      const e = out.get(t) ?? { queued: 0, oldestQueuedAt: null };
      e.queued += 1;
      if (e.oldestQueuedAt === null || j.queuedAt < e.oldestQueuedAt) e.oldestQueuedAt = j.queuedAt;
      out.set(t, e);
    }
  }
  return out;
}

describe('QueueTally', () => {
  it('counts jobs per target, a job needing two targets in both, with the oldest wait', () => {
    const t = new QueueTally();
    t.add(job('a', ['linux'], 300));
    t.add(job('b', ['linux', 'android'], 100));
    t.add(job('c', ['windows-sign'], 200));
    expect(new Map(t.targets())).toEqual(
      new Map([
        ['linux', { queued: 2, oldestQueuedAt: 100 }],
        ['android', { queued: 1, oldestQueuedAt: 100 }],
        ['windows-sign', { queued: 1, oldestQueuedAt: 200 }],
      ]),
    );
    expect(t.size).toBe(3);
    expect(t.oldestQueuedAt()).toBe(100);
  });

  it('removing the oldest job moves the oldest wait to the next; the last one empties the target', () => {
    const t = new QueueTally();
    t.add(job('a', ['linux'], 100));
    t.add(job('b', ['linux'], 100)); // same queuedAt: a tie
    t.add(job('c', ['linux'], 250));
    expect(t.remove('a')).toBe(true);
    expect(t.target('linux')).toEqual({ queued: 2, oldestQueuedAt: 100 });
    expect(t.remove('b')).toBe(true);
    expect(t.target('linux')).toEqual({ queued: 1, oldestQueuedAt: 250 });
    expect(t.remove('b')).toBe(false); // not counted twice
    expect(t.remove('c')).toBe(true);
    expect(t.target('linux')).toEqual({ queued: 0, oldestQueuedAt: null });
    expect([...t.targets()]).toEqual([]);
    expect(t.oldestQueuedAt()).toBeNull();
    expect(t.size).toBe(0);
  });

  it('a job added again (re-queued) is counted once, with its new targets and wait', () => {
    const t = new QueueTally();
    t.add(job('a', ['linux'], 100));
    t.add(job('b', ['linux'], 200));
    t.add(job('a', ['windows-sign'], 300)); // its build ran; it waits for signing now
    expect(t.target('linux')).toEqual({ queued: 1, oldestQueuedAt: 200 });
    expect(t.target('windows-sign')).toEqual({ queued: 1, oldestQueuedAt: 300 });
    t.add(job('b', ['linux'], 200)); // the same again changes nothing
    expect(t.target('linux')).toEqual({ queued: 1, oldestQueuedAt: 200 });
    expect(t.size).toBe(2);
    t.remove('b');
    t.add(job('b', ['linux'], 50)); // removed, then back with an earlier queuedAt
    expect(t.target('linux')).toEqual({ queued: 1, oldestQueuedAt: 50 });
  });

  it('keeps the caller from changing a counted job behind its back', () => {
    const t = new QueueTally();
    const targets = ['linux'];
    t.add(job('a', targets, 100));
    targets.push('android');
    expect(t.target('android')).toEqual({ queued: 0, oldestQueuedAt: null });
    expect(t.remove('a')).toBe(true);
    expect(t.target('linux').queued).toBe(0);
  });

  it('agrees with a walk over every job under many random adds, re-adds and removals', () => {
    const t = new QueueTally();
    const live = new Map<string, TalliedJob>();
    const targets = ['linux', 'android', 'windows-sign', 'ios-sign'];
    let seed = 11;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 5000; i++) {
      const r = rand();
      if (r < 0.5 || live.size === 0) {
        // New jobs, and some re-adds of live ones (a re-queue), with ties in queuedAt.
        const id = r < 0.1 && live.size > 0 ? [...live.keys()][Math.floor(rand() * live.size)]! : `j${i}`;
        const picked = targets.filter(() => rand() < 0.4);
        const j = job(id, picked.length > 0 ? picked : ['linux'], Math.floor(rand() * 50) * 10);
        t.add(j);
        live.set(id, j);
      } else {
        // Mostly the oldest (a FIFO drains from the front), sometimes any job (cancelled).
        const ids = [...live.values()].sort((a, b) => a.queuedAt - b.queuedAt).map((j) => j.jobId);
        const id = rand() < 0.6 ? ids[0]! : ids[Math.floor(rand() * ids.length)]!;
        expect(t.remove(id)).toBe(true);
        live.delete(id);
      }
      if (i % 50 === 0 || i > 4950) {
        expect(new Map(t.targets())).toEqual(walk(live));
        const oldest = [...live.values()].reduce<number | null>(
          (m, j) => (m === null || j.queuedAt < m ? j.queuedAt : m),
          null,
        );
        expect(t.oldestQueuedAt()).toBe(oldest);
      }
      const pairs = [...live.values()].reduce((n, j) => n + j.targets.length, 0);
      expect(t.entries).toBeLessThanOrEqual(2 * pairs + 65 * targets.length);
      expect(t.size).toBe(live.size);
    }
  });

  it('a long-waiting job at the front does not let removed jobs pile up behind it', () => {
    // The oldest job of a target nobody serves stays while thousands pass through the same target:
    // the tally must still answer, and (compacted) without keeping every removed job.
    const t = new QueueTally();
    t.add(job('stuck', ['visionos'], 0));
    for (let i = 1; i <= 20_000; i++) {
      t.add(job(`j${i}`, ['visionos'], i));
      t.remove(`j${i}`);
      expect(t.entries).toBeLessThanOrEqual(2 * t.size + 65);
    }
    expect(t.target('visionos')).toEqual({ queued: 1, oldestQueuedAt: 0 });
    t.remove('stuck');
    expect(t.target('visionos')).toEqual({ queued: 0, oldestQueuedAt: null });
  });
});
