/**
 * A CLI watching one job. The original sent a late subscriber nothing of what had happened
 * (defects 23, 24); here the job's event log in JetStream is replayed from its start and then
 * followed live, through one ordered consumer, so there is no gap between the two and no
 * duplicate. Every frame is a stored wire message, byte for byte (an entry may hold several:
 * EVENT_BATCH_HEADER). The CLI stops at the first
 * `error` and leaves at `complete`, so the gateway never invents an `error` the original would
 * not have sent: when the scheduler cannot be asked, the socket closes without one and the CLI
 * reconnects.
 *
 * A watcher is a stranger who knows a job id: it may watch, within limits (frames per connection,
 * watchers per job; the job's status is asked once for all of them), and it may not act: its
 * `cancel` is answered with an error frame and never forwarded.
 */
import { DeliverPolicy, type Consumer, type ConsumerMessages } from '@nats-io/jetstream';
import {
  EVENT_BATCH_HEADER,
  splitEvents,
  token,
  topologyNames,
  type JobStatusReply,
  type WireObject,
} from '@perry-hub/contracts';
import type { Connection, Session } from './connection.js';
import { endOrderedRead, orderedConsumer, refillAtAQuarter, retrying } from '@perry-hub/runtime';
import type { GatewayContext } from './context.js';
import {
  JOB_NOT_FOUND,
  TOO_MANY_WATCHERS,
  cancelRefused,
  jobCreated,
  parseFrame,
  stringField,
  syntheticComplete,
} from './wire.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);
/** How long the scheduler may be away before a subscriber is sent off to reconnect. */
const STATUS_RETRY_MS = 10_000;
/** A finished job whose log ends without `complete` gets the original's synthetic one after this. */
const SYNTHETIC_COMPLETE_AFTER_MS = 2_000;

const decoder = new TextDecoder();

export class CliSession implements Session {
  readonly #ctx: GatewayContext;
  readonly #conn: Connection;
  #jobId: string | undefined;
  /** The job this socket counts against in `ctx.watchers`, once it subscribed. */
  #watching: string | undefined;
  #frames = 0;
  #consumer: Consumer | undefined;
  #messages: ConsumerMessages | undefined;
  #closed = false;

  constructor(ctx: GatewayContext, conn: Connection) {
    this.#ctx = ctx;
    this.#conn = conn;
  }

  onMessage(text: string): void {
    if (!this.#counted()) return;
    const message = parseFrame(text);
    if (message) this.#handle(message);
  }

  /** The first message (`subscribe`) comes here. */
  handle(message: WireObject): void {
    if (this.#counted()) this.#handle(message);
  }

  /** The CLI sends one frame per connection; a watcher that keeps talking is closed. */
  #counted(): boolean {
    if (++this.#frames <= this.#ctx.config.maxWatcherFrames) return true;
    if (!this.#conn.closed) {
      this.#ctx.notices.note('watcher closed: too many frames', { remote: this.#conn.remote });
      this.#conn.close(1008, 'too many frames');
    }
    return false;
  }

  #handle(message: WireObject): void {
    const type = stringField(message, 'type');
    const jobId = stringField(message, 'job_id');
    if (type === 'subscribe' && this.#jobId === undefined) {
      this.#jobId = jobId ?? '';
      void this.#subscribe(this.#jobId).catch((err: unknown) => {
        this.#conn.log.error({ err, jobId }, 'subscription failed');
        this.#conn.close(1011);
      });
    } else if (type === 'cancel') {
      void this.#conn.send(cancelRefused(jobId !== undefined && isToken(jobId) ? jobId : undefined));
    }
    // A second subscribe, and anything else (the spec's `ping`), is ignored, as by the original.
  }

  async #subscribe(jobId: string): Promise<void> {
    if (!isToken(jobId)) return this.#conn.sendAndClose(JOB_NOT_FOUND);
    // Refused before anything is asked: the excess of a storm costs nobody a round trip.
    const { watchers, config } = this.#ctx;
    const watching = watchers.get(jobId) ?? 0;
    if (watching >= config.maxWatchersPerJob) {
      this.#ctx.notices.note('watcher refused: too many watchers of one job', { remote: this.#conn.remote, jobId });
      return this.#conn.sendAndClose(TOO_MANY_WATCHERS, 1008, 'too many watchers');
    }
    watchers.set(jobId, watching + 1);
    this.#watching = jobId;
    const status = await this.#status(jobId);
    if (this.#closed) return;
    if (!status) return this.#conn.close(1011, 'scheduler unavailable');
    if (!status.found) return this.#conn.sendAndClose(JOB_NOT_FOUND);
    if (!(await this.#conn.send(jobCreated(jobId, status.position)))) return;
    await this.#follow(jobId, status.status !== null && TERMINAL.has(status.status) ? status : undefined);
  }

  async #status(jobId: string): Promise<JobStatusReply | undefined> {
    // One of this gateway's workers is building it: the scheduler would answer just this (a
    // running job is at position 0), so it is not asked. The usual case: a CLI watches the
    // build it has just submitted, which a worker took at once.
    for (const worker of this.#ctx.workers.values()) {
      if (worker.building(jobId)) return { found: true, status: 'running', position: 0 };
    }
    try {
      return await retrying(() => this.#ctx.jobStatus.get(jobId), {
        forMs: STATUS_RETRY_MS,
        cancelled: () => this.#closed,
      });
    } catch (err) {
      this.#ctx.notices.note('job status unavailable', { err, jobId });
      return undefined;
    }
  }

  async #follow(jobId: string, finished: JobStatusReply | undefined): Promise<void> {
    const { js, subjects, config } = this.#ctx;
    const eventsStream = topologyNames(config.subjectPrefix).eventsStream;
    /** The log's last entry: one request (without the stream info `js.streams.get` asks first). */
    const lastEntry = async () =>
      (await js.jetstreamManager(false)).streams.getMessage(eventsStream, { last_by_subj: subjects.jobEvents(jobId) });
    // Retried while JetStream elects leaders or this gateway's server is cut off from the rest.
    const consumer = await retrying(
      () =>
        orderedConsumer(js, eventsStream, {
          filter_subjects: subjects.jobEvents(jobId),
          deliver_policy: DeliverPolicy.All,
        }),
      { forMs: STATUS_RETRY_MS, cancelled: () => this.#closed },
    );
    this.#consumer = consumer;
    if (this.#closed) return this.#stopFollowing();
    /** The watch reached its end: `complete` sent (real or synthetic), or the CLI gone. */
    let ended = false;
    let fallback: NodeJS.Timeout | undefined;
    const armFallback = () => {
      clearTimeout(fallback);
      fallback = setTimeout(() => {
        // Only for a log with nothing more to deliver: a slow one (JetStream busy) is waited for,
        // and one whose stored end is a real `complete` this consumer did not deliver (a consumer
        // lost in a leader change) is not papered over: the CLI reconnects and reads it again.
        void (async () => {
          const info = await consumer.info(false);
          if (!this.#following(consumer)) return;
          if (info.num_pending > 0) return armFallback();
          const last = await lastEntry();
          if (this.#closed) return;
          ended = true;
          if (last && isComplete(splitEvents(last.data, last.header.get(EVENT_BATCH_HEADER)).at(-1)!))
            return this.#conn.close(1011, 'event log unavailable');
          void this.#conn.send(syntheticComplete(jobId, finished?.status === 'completed'));
          this.#stopFollowing();
        })().catch(() => {
          if (this.#following(consumer)) armFallback();
        });
      }, SYNTHETIC_COMPLETE_AFTER_MS);
    };
    // A finished job's log normally ends with its `complete`; one that does not (expired, or the
    // scheduler has not appended it yet) gets the original's synthetic one once the log is quiet.
    if (finished) armFallback();
    // A consumer that stopped delivering (lost in a partition and not recovered) must not leave
    // the CLI waiting forever: when the log's stored end is past what was delivered and older
    // than a check period, the CLI is made to reconnect (the new CLI does; it reads on).
    let delivered = 0;
    let deliveredAt = Date.now();
    const stallCheckMs = config.watchStallCheckMs;
    let watchdog: NodeJS.Timeout | undefined;
    const armWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        // A consumer that delivered within the period is not stalled: nothing to ask.
        if (Date.now() - deliveredAt < stallCheckMs) return armWatchdog();
        void (async () => {
          const last = await lastEntry();
          if (!this.#following(consumer)) return;
          const stale = last !== null && last.seq > delivered && Date.now() - last.time.getTime() > stallCheckMs;
          if (stale) return this.#conn.close(1011, 'event log stalled');
          armWatchdog();
        })().catch(() => {
          if (this.#following(consumer)) armWatchdog();
        });
      }, stallCheckMs);
      watchdog.unref();
    };
    armWatchdog();
    const messages = await consumer.consume(refillAtAQuarter(256));
    this.#messages = messages;
    if (this.#closed) return this.#stopFollowing();
    try {
      follow: for await (const m of messages) {
        clearTimeout(fallback);
        delivered = m.seq;
        deliveredAt = Date.now();
        // A batched entry is sent as the messages it holds, one frame each.
        for (const frame of splitEvents(m.data, m.headers?.get(EVENT_BATCH_HEADER))) {
          if (!(await this.#conn.sendPaced(frame)) || isComplete(frame)) {
            ended = true;
            break follow;
          }
        }
        if (finished && m.info.pending === 0) armFallback();
      }
    } finally {
      clearTimeout(fallback);
      clearTimeout(watchdog);
      this.#stopFollowing();
    }
    // The consumer gave up before the end (no `complete` sent): the CLI reconnects and reads on.
    if (!ended && !this.#closed) this.#conn.close(1011, 'event log unavailable');
  }

  /** This socket is open and still reads the log through `consumer`. */
  #following(consumer: Consumer): boolean {
    return !this.#closed && this.#consumer === consumer;
  }

  /** Ends the watch's read of the log, and its consumer with it (see endOrderedRead). */
  #stopFollowing(): void {
    const consumer = this.#consumer;
    const messages = this.#messages;
    this.#consumer = undefined;
    this.#messages = undefined;
    if (consumer) void endOrderedRead(this.#ctx.nc, consumer, messages);
  }

  onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopFollowing();
    const jobId = this.#watching;
    if (jobId === undefined) return;
    this.#watching = undefined;
    const left = (this.#ctx.watchers.get(jobId) ?? 1) - 1;
    if (left > 0) this.#ctx.watchers.set(jobId, left);
    else this.#ctx.watchers.delete(jobId);
  }
}

/** A job id the bus can carry: one subject token, and no longer than any id the hub hands out. */
function isToken(value: string): boolean {
  if (value.length > 128) return false;
  try {
    token(value);
    return true;
  } catch {
    return false;
  }
}

function isComplete(data: Uint8Array): boolean {
  const text = decoder.decode(data);
  return text.includes('"complete"') && stringField(parseFrame(text) ?? {}, 'type') === 'complete';
}
