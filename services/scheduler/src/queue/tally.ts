/**
 * How many queued jobs need each target, and since when the oldest of them waits: the queue
 * depth the leader publishes (several times a second while jobs move) and the queue-expiry sweep
 * read it in O(targets), not by walking every queued job (100,000 queued made each walk ~50 ms
 * of a blocked event loop).
 *
 * Counts change with every add and remove. The oldest per target is the top of a min-heap of
 * (queuedAt, job) entries; a removed (or re-added) job's entry is dropped lazily when it reaches
 * the top, and a heap holding more stale entries than live ones is compacted, so memory stays
 * proportional to the queued jobs and each operation is O(log n) amortized.
 */
import { Heap } from './heap.js';

export interface TalliedJob {
  readonly jobId: string;
  readonly targets: readonly string[];
  readonly queuedAt: number;
}

export interface TargetTally {
  readonly queued: number;
  /** Earliest `queuedAt` among them (null when none wait). */
  readonly oldestQueuedAt: number | null;
}

/** One add of a job: an entry is current while the job's record is this very object. */
interface Entry {
  readonly job: TalliedJob;
  readonly queuedAt: number;
}

interface Line {
  count: number;
  readonly oldest: Heap<Entry>;
}

/** Below this many entries a heap is never compacted (not worth it). */
const COMPACT_MIN_ENTRIES = 64;

export class QueueTally {
  readonly #jobs = new Map<string, TalliedJob>();
  readonly #lines = new Map<string, Line>();

  get size(): number {
    return this.#jobs.size;
  }

  /** Heap entries held, current and stale: at most about twice the counted (job, target) pairs. */
  get entries(): number {
    let n = 0;
    for (const line of this.#lines.values()) n += line.oldest.size;
    return n;
  }

  /** Count a job; a job already counted is replaced (its targets or queuedAt may differ). */
  add(job: TalliedJob): void {
    this.remove(job.jobId);
    const record: TalliedJob = { jobId: job.jobId, targets: [...job.targets], queuedAt: job.queuedAt };
    this.#jobs.set(job.jobId, record);
    for (const target of record.targets) {
      let line = this.#lines.get(target);
      if (!line) {
        line = { count: 0, oldest: new Heap<Entry>((a, b) => a.queuedAt < b.queuedAt) };
        this.#lines.set(target, line);
      }
      line.count += 1;
      line.oldest.push({ job: record, queuedAt: record.queuedAt });
    }
  }

  /** Uncount a job; false when it was not counted. */
  remove(jobId: string): boolean {
    const record = this.#jobs.get(jobId);
    if (!record) return false;
    this.#jobs.delete(jobId);
    for (const target of record.targets) {
      const line = this.#lines.get(target)!;
      line.count -= 1;
      if (line.count === 0) this.#lines.delete(target);
      else this.#dropStale(line);
    }
    return true;
  }

  /** The count and oldest wait of one target (zero and null when no queued job needs it). */
  target(target: string): TargetTally {
    const line = this.#lines.get(target);
    if (!line) return { queued: 0, oldestQueuedAt: null };
    return { queued: line.count, oldestQueuedAt: line.oldest.peek()!.queuedAt };
  }

  /** Every target some queued job needs, with its tally. */
  *targets(): IterableIterator<[string, TargetTally]> {
    for (const target of this.#lines.keys()) yield [target, this.target(target)];
  }

  /** The earliest `queuedAt` of all queued jobs (null when none). */
  oldestQueuedAt(): number | null {
    let oldest: number | null = null;
    for (const line of this.#lines.values()) {
      const at = line.oldest.peek()!.queuedAt;
      if (oldest === null || at < oldest) oldest = at;
    }
    return oldest;
  }

  #current(entry: Entry): boolean {
    return this.#jobs.get(entry.job.jobId) === entry.job;
  }

  /** Keeps the top current, and the heap at most about twice the live count. */
  #dropStale(line: Line): void {
    const heap = line.oldest;
    while (heap.size > 0 && !this.#current(heap.peek()!)) heap.pop();
    if (heap.size > COMPACT_MIN_ENTRIES && heap.size > 2 * line.count) heap.retain((e) => this.#current(e));
  }
}
