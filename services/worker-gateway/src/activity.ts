/**
 * Which jobs spoke lately. The scheduler's no-output watchdog needs to know that a job is alive,
 * not every line it printed, so the gateway batches: one `JobActivity` per interval, listing each
 * job (and attempt) that sent anything since the last one.
 */
import type { JobActivity, Subjects } from '@perry-hub/contracts';
import type { NatsConnection } from '@nats-io/nats-core';

export class ActivityBatcher {
  #jobs = new Map<string, number>();
  readonly #nc: NatsConnection;
  readonly #subjects: Subjects;

  constructor(nc: NatsConnection, subjects: Subjects) {
    this.#nc = nc;
    this.#subjects = subjects;
  }

  /** Jobs heard of since the last batch. */
  get pending(): boolean {
    return this.#jobs.size > 0;
  }

  touch(jobId: string, attempt: number): void {
    this.#jobs.set(jobId, attempt);
  }

  flush(now = Date.now()): void {
    if (this.#jobs.size === 0) return;
    const batch: JobActivity = {
      at: now,
      jobs: [...this.#jobs].map(([jobId, attempt]) => ({ jobId, attempt })),
    };
    this.#jobs = new Map();
    this.#nc.publish(this.#subjects.workers('activity'), JSON.stringify(batch));
  }
}
