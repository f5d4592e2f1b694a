/**
 * Matching, as a pure function over the queue and the workers' free slots: each worker with a
 * free slot takes the best eligible job among the keys it can serve (it has every target, and no
 * target belongs to a draining VM pool). A job nobody can take never blocks anyone: it just stays
 * in its key's queue.
 */
import type { JobQueue, QueuedJob } from './job-queue.js';

export interface WorkerSlots {
  readonly workerId: string;
  readonly capabilities: ReadonlySet<string>;
  /** Free slots: max_concurrent minus the jobs the scheduler has on it. */
  free: number;
  /** Earlier connections first, like the original. */
  readonly connectedAt: number;
}

export interface Assignment {
  readonly job: QueuedJob;
  readonly workerId: string;
}

export function planDispatch(
  queue: JobQueue,
  workers: readonly WorkerSlots[],
  draining: ReadonlySet<string>,
  /** Called for each assignment before the next pick, so license limits apply within a round. */
  onAssign: (job: QueuedJob) => void,
  /** A worker that must not take a job: the key's line is skipped for it this round. */
  refuses: (workerId: string, job: QueuedJob) => boolean = () => false,
): Assignment[] {
  const assignments: Assignment[] = [];
  const ordered = [...workers].filter((w) => w.free > 0).sort((a, b) => a.connectedAt - b.connectedAt);
  for (const worker of ordered) {
    const skipped = new Set<string>();
    while (worker.free > 0) {
      let best: QueuedJob | undefined;
      let bestKey = '';
      for (const kq of queue.keys()) {
        if (skipped.has(kq.key)) continue;
        if (!kq.targets.every((t) => worker.capabilities.has(t) && !draining.has(t))) continue;
        const head = queue.head(kq);
        if (
          head &&
          (!best || head.sortKey < best.sortKey || (head.sortKey === best.sortKey && head.jobId < best.jobId))
        ) {
          best = head;
          bestKey = kq.key;
        }
      }
      if (!best) break;
      if (refuses(worker.workerId, best)) {
        skipped.add(bestKey);
        continue;
      }
      queue.remove(best.jobId);
      worker.free -= 1;
      onAssign(best);
      assignments.push({ job: best, workerId: worker.workerId });
    }
  }
  return assignments;
}
