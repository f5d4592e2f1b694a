import { describe, expect, it } from 'vitest';
import { JobQueue, type QueuedJob } from '../src/queue/job-queue.js';
import { planDispatch, type WorkerSlots } from '../src/queue/match.js';

const STEP = 60_000;
let n = 0;
function job(licenseKey: string, targets: string[], queuedAt: number, priority = 1): QueuedJob {
  n += 1;
  return {
    jobId: `job-${String(n).padStart(4, '0')}`,
    licenseKey,
    targets,
    queuedAt,
    sortKey: queuedAt - priority * STEP,
  };
}
function worker(id: string, caps: string[], free: number, connectedAt = 0): WorkerSlots {
  return { workerId: id, capabilities: new Set(caps), free, connectedAt };
}
const LINUX = ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'];

describe('JobQueue and planDispatch', () => {
  it('dispatches pro before free, FIFO within a tier', () => {
    const q = new JobQueue();
    const free1 = job('F', ['linux'], 1000);
    const free2 = job('F2', ['linux'], 2000);
    const pro = job('P', ['linux'], 3000, 10);
    [free1, free2, pro].forEach((j) => q.add(j));
    const plan = planDispatch(q, [worker('w', LINUX, 3)], new Set(), () => undefined);
    expect(plan.map((a) => a.job.jobId)).toEqual([pro.jobId, free1.jobId, free2.jobId]);
  });

  it('ages free builds so a stream of pro builds cannot starve them', () => {
    const q = new JobQueue();
    const old = job('F', ['linux'], 0, 1);
    const newer = job('P', ['linux'], 10 * STEP, 10);
    q.add(newer);
    q.add(old);
    const [first] = planDispatch(q, [worker('w', LINUX, 1)], new Set(), () => undefined);
    expect(first!.job.jobId).toBe(old.jobId);
  });

  it('a job nobody can take does not block the others', () => {
    const q = new JobQueue();
    const stuck = job('A', ['visionos'], 0);
    const ok = job('B', ['linux'], 1);
    q.add(stuck);
    q.add(ok);
    const plan = planDispatch(q, [worker('w', LINUX, 2)], new Set(), () => undefined);
    expect(plan.map((a) => a.job.jobId)).toEqual([ok.jobId]);
    expect(q.has(stuck.jobId)).toBe(true);
  });

  it('needs a worker with every target, and fills every free slot in one round', () => {
    const q = new JobQueue();
    const sign = job('A', ['windows-sign'], 0);
    const both = job('B', ['linux', 'android'], 1);
    const third = job('C', ['linux'], 2);
    [sign, both, third].forEach((j) => q.add(j));
    const plan = planDispatch(
      q,
      [worker('linux', LINUX, 2), worker('win', ['windows-sign'], 1)],
      new Set(),
      () => undefined,
    );
    expect(new Map(plan.map((a) => [a.job.jobId, a.workerId]))).toEqual(
      new Map([
        [both.jobId, 'linux'],
        [third.jobId, 'linux'],
        [sign.jobId, 'win'],
      ]),
    );
  });

  it('a license at its concurrency limit waits while other licenses go ahead', () => {
    const q = new JobQueue();
    const a1 = job('A', ['linux'], 0);
    const a2 = job('A', ['linux'], 1);
    const b1 = job('B', ['linux'], 2);
    [a1, a2, b1].forEach((j) => q.add(j));
    const running = new Map<string, number>();
    const plan = planDispatch(q, [worker('w', LINUX, 3)], new Set(), (j) => {
      running.set(j.licenseKey, (running.get(j.licenseKey) ?? 0) + 1);
      if (running.get(j.licenseKey)! >= 1) q.setBlocked(j.licenseKey, true);
    });
    expect(plan.map((a) => a.job.jobId)).toEqual([a1.jobId, b1.jobId]);
    expect(q.position(a2.jobId)).toBe(1);
    q.setBlocked('A', false);
    expect(planDispatch(q, [worker('w', LINUX, 1)], new Set(), () => undefined)[0]!.job.jobId).toBe(a2.jobId);
  });

  it('skips targets of a draining pool', () => {
    const q = new JobQueue();
    const sign = job('A', ['windows-sign'], 0);
    q.add(sign);
    expect(planDispatch(q, [worker('win', ['windows-sign'], 1)], new Set(['windows-sign']), () => undefined)).toEqual(
      [],
    );
  });

  it('reports positions per target set and forgets removed jobs', () => {
    const q = new JobQueue();
    const js = [job('A', ['linux'], 0), job('B', ['linux'], 1), job('C', ['windows-sign'], 2), job('D', ['linux'], 3)];
    js.forEach((j) => q.add(j));
    expect(js.map((j) => q.position(j.jobId))).toEqual([1, 2, 1, 3]);
    q.remove(js[1]!.jobId);
    expect(q.position(js[3]!.jobId)).toBe(2);
    expect(q.position(js[1]!.jobId)).toBe(0);
    expect(q.size).toBe(3);
  });

  it('ranks a job it has not seen yet where it will go', () => {
    const q = new JobQueue();
    [job('A', ['linux'], 0), job('B', ['linux'], 2000), job('C', ['windows-sign'], 1000)].forEach((j) => q.add(j));
    const late = job('D', ['linux'], 1000);
    expect(q.ahead(late.targets, late.sortKey, late.jobId)).toBe(1);
    q.add(late);
    expect(q.position(late.jobId)).toBe(2);
    expect(q.ahead(['macos-sign'], 0, 'job-x')).toBe(0);
  });

  it('stays consistent under many random adds, removals and dispatches', () => {
    const q = new JobQueue();
    const live = new Set<string>();
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 2000; i++) {
      const r = rand();
      if (r < 0.6) {
        const j = job(
          `L${Math.floor(rand() * 5)}`,
          [rand() < 0.5 ? 'linux' : 'windows-sign'],
          Math.floor(rand() * 1e6),
          rand() < 0.3 ? 10 : 1,
        );
        q.add(j);
        live.add(j.jobId);
      } else if (r < 0.8 && live.size > 0) {
        const id = [...live][Math.floor(rand() * live.size)]!;
        q.remove(id);
        live.delete(id);
      } else {
        for (const a of planDispatch(q, [worker('w', [...LINUX, 'windows-sign'], 2)], new Set(), () => undefined)) {
          expect(live.delete(a.job.jobId)).toBe(true);
        }
      }
      expect(q.size).toBe(live.size);
    }
    const drained = planDispatch(q, [worker('w', [...LINUX, 'windows-sign'], 1e6)], new Set(), () => undefined);
    expect(drained.map((a) => a.job.jobId).sort()).toEqual([...live].sort());
    const keys = drained.map((a) => a.job.sortKey);
    expect(keys).toEqual([...keys].sort((a, b) => a - b));
  });

  it('a worker that refuses a job leaves it to the next worker, and takes another line meanwhile', () => {
    const q = new JobQueue();
    const released = job('A', ['linux'], 1000, 10);
    const other = job('B', ['android'], 2000);
    [released, other].forEach((j) => q.add(j));
    const refuses = (workerId: string, j: QueuedJob) => workerId === 'w1' && j.jobId === released.jobId;
    const plan = planDispatch(
      q,
      [worker('w1', LINUX, 2, 0), worker('w2', LINUX, 1, 1)],
      new Set(),
      () => undefined,
      refuses,
    );
    expect(plan.map((a) => `${a.job.jobId}@${a.workerId}`)).toEqual([`${other.jobId}@w1`, `${released.jobId}@w2`]);
  });
});
