/**
 * The places of the jobs this instance queued, as the scheduler's leader sends them once it has
 * queued each: the intake message names this instance (INTAKE_POSITION_HEADER) and the place
 * comes to `<p>.positions.<instance>`, one message where asking (`queue-position`) costs a
 * request and its answer. A place that does not come in time (a scheduler of an earlier version,
 * no leader at the moment, an intake published only on a retry) is asked for as before.
 */
import { INTAKE_POSITION_HEADER, QueuePositionNotice, type Subjects } from '@perry-hub/contracts';
import { headers, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { isValid, type Logger } from '@perry-hub/runtime';

/** How long a submission waits for its place before asking for it. */
export const POSITION_WAIT_MS = 1_000;

export class PositionNotices {
  readonly #waiting = new Map<string, (position: number | undefined) => void>();
  readonly #sub: Subscription;

  constructor(
    nc: NatsConnection,
    subjects: Subjects,
    private readonly instance: string,
    log: Logger,
    private readonly waitMs = POSITION_WAIT_MS,
  ) {
    this.#sub = nc.subscribe(subjects.positions(instance), {
      callback: (err, msg) => {
        if (err) return log.warn({ err }, 'queue position subscription ended; submissions ask for their place');
        let notice: unknown;
        try {
          notice = msg.json();
        } catch {
          return;
        }
        if (isValid(QueuePositionNotice, notice)) this.#waiting.get(notice.jobId)?.(notice.position);
      },
    });
  }

  /** The intake message's headers that ask for the place. */
  headers(): MsgHdrs {
    const h = headers();
    h.set(INTAKE_POSITION_HEADER, this.instance);
    return h;
  }

  /**
   * Listen for `jobId`'s place (before its intake is published: the answer may come before the
   * publish is acknowledged). The returned function waits for it: the place, or undefined after
   * the wait; it must be called once.
   */
  expect(jobId: string): () => Promise<number | undefined> {
    let resolve!: (position: number | undefined) => void;
    const place = new Promise<number | undefined>((r) => (resolve = r));
    this.#waiting.set(jobId, resolve);
    return async () => {
      const timer = setTimeout(() => resolve(undefined), this.waitMs);
      try {
        return await place;
      } finally {
        clearTimeout(timer);
        this.#waiting.delete(jobId);
      }
    };
  }

  stop(): void {
    this.#sub.unsubscribe();
    for (const resolve of this.#waiting.values()) resolve(undefined);
  }
}
