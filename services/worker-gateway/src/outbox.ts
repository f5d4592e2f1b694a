/**
 * The bus side of one worker connection, in the order the worker spoke. Events (progress and
 * logs) are appended to their job's log in batches: the frames of one socket read, and whatever
 * arrives while the previous append is being stored, go as one entry per job (one publish and
 * one ack, where a message each cost both). A busy build's lines therefore wait for at most one
 * round trip, and a quiet one's go at once. A step that must come after the appends, such as
 * handing a `complete` to the scheduler, first waits for every earlier append to be stored: a CLI
 * never sees a build end before its last log lines.
 *
 * One batch per connection is in flight at a time and each is retried under its own Nats-Msg-Id
 * until stored, so a job's entries are stored once and in the order the worker spoke, even across
 * a JetStream outage.
 */
import type { Logger } from 'pino';

export type Step =
  | { readonly kind: 'event'; readonly jobId: string; readonly data: string }
  | { readonly kind: 'barrier'; readonly run: () => Promise<void> };

interface Batch {
  readonly events: string[];
  bytes: number;
}

export interface OutboxOptions {
  /** Stores one job's events, in order, as one entry (retrying on its own until it gives up). */
  readonly append: (jobId: string, events: readonly string[]) => Promise<void>;
  /** Events per entry at most. */
  readonly maxBatchEvents: number;
  /** Bytes per entry at most (a larger single event goes alone). */
  readonly maxBatchBytes: number;
  /** Queued steps past which the owner should stop reading its socket. */
  readonly highWater: number;
  readonly onPressure: (high: boolean) => void;
  readonly log: Logger;
}

export class Outbox {
  readonly #steps: Step[] = [];
  readonly #options: OutboxOptions;
  #pumping: Promise<void> | undefined;
  #inflight = 0;
  #high = false;

  constructor(options: OutboxOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#steps.length + this.#inflight;
  }

  push(step: Step): void {
    this.#steps.push(step);
    if (!this.#high && this.#steps.length >= this.#options.highWater) {
      this.#high = true;
      this.#options.onPressure(true);
    }
    this.#pumping ??= this.#pump().finally(() => {
      this.#pumping = undefined;
      if (this.#steps.length > 0) this.push({ kind: 'barrier', run: async () => undefined });
    });
  }

  /** Resolves when everything pushed so far has been done (or given up on). */
  async idle(): Promise<void> {
    while (this.#pumping) await this.#pumping;
  }

  async #pump(): Promise<void> {
    // The rest of this socket read's frames first: they join the first one's entry.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#steps.length > 0) {
      const first = this.#steps[0]!;
      if (first.kind === 'barrier') {
        this.#steps.shift();
        this.#relieve();
        await this.#guard(first.run);
        continue;
      }
      // Every event queued up to the next barrier, per job in order, in entries within the limits.
      const byJob = new Map<string, Batch[]>();
      let taken = 0;
      for (let step = this.#steps[0]; step?.kind === 'event'; step = this.#steps[++taken]) {
        const batches = byJob.get(step.jobId) ?? [];
        byJob.set(step.jobId, batches);
        const bytes = Buffer.byteLength(step.data) + 1;
        const last = batches.at(-1);
        if (
          last &&
          last.events.length < this.#options.maxBatchEvents &&
          last.bytes + bytes <= this.#options.maxBatchBytes
        ) {
          last.events.push(step.data);
          last.bytes += bytes;
        } else batches.push({ events: [step.data], bytes });
      }
      this.#steps.splice(0, taken);
      this.#relieve();
      this.#inflight = taken;
      await Promise.all(
        [...byJob].map(async ([jobId, batches]) => {
          for (const batch of batches) await this.#guard(() => this.#options.append(jobId, batch.events));
        }),
      );
      this.#inflight = 0;
    }
  }

  #relieve(): void {
    if (this.#high && this.#steps.length < this.#options.highWater / 2) {
      this.#high = false;
      this.#options.onPressure(false);
    }
  }

  /** Steps retry on their own and log what they give up on; nothing may stop the pump. */
  async #guard(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      this.#options.log.error({ err }, 'outbox step failed');
    }
  }
}
