/** Appending to a job's event log and announcing its outcome, through JetStream. */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { JobDone, Subjects } from '@perry-hub/contracts';
import { publishRetrying } from '@perry-hub/runtime';

const encoder = new TextEncoder();

export class JobEvents {
  constructor(
    private readonly js: JetStreamClient,
    private readonly subjects: Subjects,
  ) {}

  /** `msgId` makes a republish (after a crash) a no-op. */
  async append(jobId: string, wireMessage: string, msgId?: string): Promise<void> {
    await publishRetrying(
      this.js,
      this.subjects.jobEvents(jobId),
      encoder.encode(wireMessage),
      msgId ? { msgID: msgId } : {},
    );
  }

  /** The outcome; a job with a callback URL's once more, for the ingest that queues its callbacks. */
  async done(outcome: JobDone): Promise<void> {
    const data = encoder.encode(JSON.stringify(outcome));
    await publishRetrying(this.js, this.subjects.jobDone(outcome.jobId), data, { msgID: `${outcome.jobId}:done` });
    if (outcome.callback) {
      await publishRetrying(this.js, this.subjects.jobCallbacks(outcome.jobId), data, {
        msgID: `${outcome.jobId}:callbacks`,
      });
    }
  }
}
