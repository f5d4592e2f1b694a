/**
 * The scheduler's in-memory queue (rebuilt from MySQL whenever an instance becomes leader).
 *
 * Order: `sortKey = queuedAt - priority * agingStepMs` (lower first). Within a priority that is
 * FIFO; across priorities a pro job is treated as if it had been queued (10 - 1) aging steps
 * earlier than a free one, so free builds are never starved: they overtake newer pro builds after
 * that long. Finishing stages get a further boost: they continue work that already started.
 *
 * Jobs are grouped by the set of targets they need (their "key"); a worker can serve a key when it
 * has every target. Within a key, jobs sit in one lane per license, and only lanes whose license
 * is below its concurrency limit are eligible: a license at its limit parks its whole lane in
 * O(log n) instead of its jobs blocking (or being skipped one by one by) everyone else.
 */
import { Heap } from './heap.js';

export interface QueuedJob {
  readonly jobId: string;
  readonly licenseKey: string;
  readonly targets: readonly string[];
  readonly queuedAt: number;
  readonly sortKey: number;
}

interface Lane {
  readonly licenseKey: string;
  readonly jobs: Heap<QueuedJob>;
  /** The sortKey of the lane's current entry in its key heap; entries with another key are stale. */
  headKey: number;
  inHeap: boolean;
}

/** Heaps are never re-keyed in place: a lane whose head changed gets a new entry. */
interface LaneEntry {
  readonly lane: Lane;
  readonly headKey: number;
}

export interface KeyQueue {
  readonly key: string;
  readonly targets: readonly string[];
  readonly lanes: Heap<LaneEntry>;
  readonly laneByLicense: Map<string, Lane>;
  /** Sorted by (sortKey, jobId) for positions; inserts are a binary search and a splice. */
  readonly ordered: QueuedJob[];
}

export function capabilityKey(targets: readonly string[]): string {
  return [...new Set(targets.map((t) => t.toLowerCase()))].sort().join(',');
}

type Ordered = Pick<QueuedJob, 'jobId' | 'sortKey'>;
const byKey = (a: Ordered, b: Ordered) => a.sortKey < b.sortKey || (a.sortKey === b.sortKey && a.jobId < b.jobId);

export class JobQueue {
  readonly #keys = new Map<string, KeyQueue>();
  readonly #jobs = new Map<string, { job: QueuedJob; key: string }>();
  /** Lanes whose license may not start more builds now. */
  readonly #blocked = new Set<string>();

  get size(): number {
    return this.#jobs.size;
  }

  has(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  get(jobId: string): QueuedJob | undefined {
    return this.#jobs.get(jobId)?.job;
  }

  keys(): IterableIterator<KeyQueue> {
    return this.#keys.values();
  }

  add(job: QueuedJob): void {
    if (this.#jobs.has(job.jobId)) return;
    const key = capabilityKey(job.targets);
    let kq = this.#keys.get(key);
    if (!kq) {
      kq = {
        key,
        targets: key.split(','),
        lanes: new Heap<LaneEntry>((a, b) => a.headKey < b.headKey),
        laneByLicense: new Map(),
        ordered: [],
      };
      this.#keys.set(key, kq);
    }
    this.#jobs.set(job.jobId, { job, key });
    kq.ordered.splice(this.#insertionIndex(kq.ordered, job), 0, job);
    let lane = kq.laneByLicense.get(job.licenseKey);
    if (!lane) {
      lane = { licenseKey: job.licenseKey, jobs: new Heap<QueuedJob>(byKey), headKey: job.sortKey, inHeap: false };
      kq.laneByLicense.set(job.licenseKey, lane);
    }
    lane.jobs.push(job);
    this.#refreshLane(kq, lane);
  }

  /** Remove a job wherever it is (dispatched, cancelled, expired). */
  remove(jobId: string): QueuedJob | undefined {
    const entry = this.#jobs.get(jobId);
    if (!entry) return undefined;
    this.#jobs.delete(jobId);
    const kq = this.#keys.get(entry.key)!;
    const i = this.#indexOf(kq.ordered, entry.job);
    if (i >= 0) kq.ordered.splice(i, 1);
    const lane = kq.laneByLicense.get(entry.job.licenseKey)!;
    // Lazy: the job stays in its lane heap until it reaches the head; heads are checked against #jobs.
    this.#dropStaleHeads(lane);
    if (lane.jobs.size === 0) kq.laneByLicense.delete(lane.licenseKey);
    this.#refreshLane(kq, lane);
    if (kq.ordered.length === 0) this.#keys.delete(kq.key);
    return entry.job;
  }

  /** Mark a license as at (or below) its concurrency limit. */
  setBlocked(licenseKey: string, blocked: boolean): void {
    if (blocked === this.#blocked.has(licenseKey)) return;
    if (blocked) this.#blocked.add(licenseKey);
    else this.#blocked.delete(licenseKey);
    for (const kq of this.#keys.values()) {
      const lane = kq.laneByLicense.get(licenseKey);
      if (lane) this.#refreshLane(kq, lane);
    }
  }

  /** The best eligible job of a key, without removing it. */
  head(kq: KeyQueue): QueuedJob | undefined {
    for (;;) {
      const entry = kq.lanes.peek();
      if (!entry) return undefined;
      const lane = entry.lane;
      if (!lane.inHeap || entry.headKey !== lane.headKey) {
        kq.lanes.pop(); // superseded by a newer entry of the same lane
        continue;
      }
      if (this.#blocked.has(lane.licenseKey)) {
        kq.lanes.pop(); // re-entered by setBlocked(false)
        lane.inHeap = false;
        continue;
      }
      this.#dropStaleHeads(lane);
      const head = lane.jobs.peek();
      if (!head || head.sortKey !== entry.headKey) {
        kq.lanes.pop();
        lane.inHeap = false;
        this.#refreshLane(kq, lane);
        continue;
      }
      return head;
    }
  }

  /** 1-based place among jobs needing the same targets; 0 when not queued. */
  position(jobId: string): number {
    const entry = this.#jobs.get(jobId);
    if (!entry) return 0;
    return this.#indexOf(this.#keys.get(entry.key)!.ordered, entry.job) + 1;
  }

  /**
   * Queued jobs that come before a job with these targets and sort key: the place a job that is
   * not in the queue (yet) would take. Jobs the queue has not seen are not counted.
   */
  ahead(targets: readonly string[], sortKey: number, jobId: string): number {
    const kq = this.#keys.get(capabilityKey(targets));
    return kq ? this.#insertionIndex(kq.ordered, { jobId, sortKey }) : 0;
  }

  /** Queued jobs of a key in dispatch order (ignoring license limits), for position updates. */
  ordered(key: string, limit: number): readonly QueuedJob[] {
    return this.#keys.get(key)?.ordered.slice(0, limit) ?? [];
  }

  #dropStaleHeads(lane: Lane): void {
    while (lane.jobs.size > 0 && !this.#jobs.has(lane.jobs.peek()!.jobId)) lane.jobs.pop();
  }

  #refreshLane(kq: KeyQueue, lane: Lane): void {
    this.#dropStaleHeads(lane);
    const head = lane.jobs.peek();
    if (!head || this.#blocked.has(lane.licenseKey)) return;
    if (lane.inHeap && lane.headKey === head.sortKey) return;
    // Push a fresh entry; an outdated one is discarded when it surfaces in head().
    lane.headKey = head.sortKey;
    lane.inHeap = true;
    kq.lanes.push({ lane, headKey: head.sortKey });
  }

  #insertionIndex(list: readonly QueuedJob[], job: Ordered): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byKey(list[mid]!, job)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #indexOf(list: readonly QueuedJob[], job: QueuedJob): number {
    const i = this.#insertionIndex(list, job);
    return list[i]?.jobId === job.jobId ? i : -1;
  }
}
