/** Appending to a job's event log and announcing its outcome, through JetStream. */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { JobDone, Subjects } from '@perry-hub/contracts';
import { findAppend, publishRetrying } from '@perry-hub/runtime';

const encoder = new TextEncoder();

/** What a finished job's last messages are, in the order they are appended. */
export interface FinalMessages {
  /** The CLI's last events (`complete` last), appended to the job's event log. */
  readonly events: readonly string[];
  /** The outcome, for usage and callbacks. */
  readonly done: JobDone;
}

export class JobEvents {
  #jsm: Promise<JetStreamManager> | undefined;

  constructor(
    private readonly js: JetStreamClient,
    private readonly subjects: Subjects,
    /** The stream holding the job events (`topologyNames(prefix).eventsStream`). */
    private readonly stream: string,
  ) {}

  /** An event in passing (a stage, a queue update, a relayed error): a retry may repeat it. */
  async append(jobId: string, wireMessage: string): Promise<void> {
    await publishRetrying(this.js, this.subjects.jobEvents(jobId), encoder.encode(wireMessage));
  }

  /**
   * A finished job's last messages, each stored once: its final events, then its outcome (and
   * the outcome once more for the ingest that queues callbacks, for a job with a callback URL).
   * Before a retry, and before everything when `republish` (an earlier process may have appended
   * some), each is looked for in the stream; see `appendOnce` for why a message id is not enough.
   */
  async final(jobId: string, { events, done }: FinalMessages, republish = false): Promise<void> {
    for (const [i, message] of events.entries()) {
      await this.#once(this.subjects.jobEvents(jobId), encoder.encode(message), `${jobId}:final:${i}`, republish);
    }
    const data = encoder.encode(JSON.stringify(done));
    await this.#once(this.subjects.jobDone(jobId), data, `${jobId}:done`, republish);
    if (done.callback) {
      await this.#once(this.subjects.jobCallbacks(jobId), data, `${jobId}:callbacks`, republish);
    }
  }

  async #once(subject: string, data: Uint8Array, msgID: string, first: boolean) {
    const place = { stream: this.stream, barrier: this.subjects.eventsBarrier, subject };
    const stored = async () => findAppend(await this.#manager(), place, msgID);
    await publishRetrying(this.js, subject, data, { msgID, stored, storedFirst: first });
  }

  #manager(): Promise<JetStreamManager> {
    return (this.#jsm ??= this.js.jetstreamManager(false));
  }
}
