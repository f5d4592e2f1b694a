/** Appending to a job's event log and announcing its outcome, through JetStream. */
import type { JetStreamClient, JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import type { JobDone, Subjects } from '@perry-hub/contracts';
import { publishRetrying } from '@perry-hub/runtime';

const encoder = new TextEncoder();

/** A job id no job has (ids are UUIDs): purging its subject removes nothing. */
const NO_JOB = 'barrier';

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
    const eventLog = this.subjects.jobEvents(jobId);
    for (const [i, message] of events.entries()) {
      // The log's last entry is this final event or a later one: this one is stored.
      const ours = (m: StoredMsg) => (finalIndex(m, jobId) ?? -1) >= i;
      await this.#once(eventLog, encoder.encode(message), `${jobId}:final:${i}`, ours, republish);
    }
    const data = encoder.encode(JSON.stringify(done));
    await this.#once(this.subjects.jobDone(jobId), data, `${jobId}:done`, () => true, republish);
    if (done.callback) {
      await this.#once(this.subjects.jobCallbacks(jobId), data, `${jobId}:callbacks`, () => true, republish);
    }
  }

  async #once(subject: string, data: Uint8Array, msgID: string, ours: (m: StoredMsg) => boolean, first: boolean) {
    const stored = async () => {
      const jsm = await this.#manager();
      // A barrier: the purge goes through the stream's log like an append, and is answered once
      // the leader has applied everything before it, including an append its predecessor
      // proposed that the next append would otherwise have stored beside a retry.
      await jsm.streams.purge(this.stream, { filter: this.subjects.jobCallbacks(NO_JOB) });
      // Read from the leader's store (a direct get may be answered by a follower behind it).
      const last = await jsm.streams.getMessage(this.stream, { last_by_subj: subject });
      return last && ours(last) ? last.seq : undefined;
    };
    await publishRetrying(this.js, subject, data, { msgID, stored, storedFirst: first });
  }

  #manager(): Promise<JetStreamManager> {
    return (this.#jsm ??= this.js.jetstreamManager(false));
  }
}

/** Which of its job's final events a stored message is (`<job>:final:<i>`, perhaps renamed `.<n>`). */
function finalIndex(m: StoredMsg, jobId: string): number | undefined {
  const id = m.header?.get('Nats-Msg-Id') ?? '';
  const match = /^(.+):final:(\d+)(?:\.\d+)?$/.exec(id);
  return match && match[1] === jobId ? Number(match[2]) : undefined;
}
