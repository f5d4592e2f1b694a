import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JetStreamPublishOptions,
  type PubAck,
  type StoredMsg,
} from '@nats-io/jetstream';
import { errors } from '@nats-io/nats-core';
import { HubError, isHubError } from '@perry-hub/contracts';

export interface RetryOptions {
  /** Give up after this long (the last failure is rethrown). */
  readonly forMs: number;
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Checked before each new attempt: stop early when the caller no longer cares. */
  readonly cancelled?: () => boolean;
}

/**
 * A failure another attempt may fix: the error says so (HubError) or it is not a HubError at all,
 * except a connection closed or draining, which no attempt can fix (this process is stopping).
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) return false;
  return isHubError(err) ? err.retry !== 'never' : true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run `attempt` until it succeeds, fails for good, or `forMs` has passed, with exponential
 * backoff. Used where the peer may be restarting or failing over (the scheduler, JetStream).
 */
export async function retrying<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const deadline = Date.now() + options.forMs;
  let delayMs = options.firstDelayMs ?? 100;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!isRetryable(err) || Date.now() + delayMs > deadline || options.cancelled?.()) throw err;
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, options.maxDelayMs ?? 2_000);
    }
  }
}

/** How long a JetStream append rides out a stream leader election or a node restart. */
export const JETSTREAM_PUBLISH_RETRY_MS = 30_000;

/**
 * `expires` of the pulls of the hub's durable consumers (the scheduler's intake, the license's
 * usage count, the ingest's callbacks). A pull lives on the consumer's leader; one lost with its
 * node (kill -9, a partition) is renewed when the next leader is elected (durable-pull.ts), or,
 * should that advisory be missed, after two missed heartbeats, each half this. The
 * library's 30 s default once held dispatch still for 27 s after a node was killed, and held the
 * usage count still past a healed partition; 10 s costs about one message every 3 s while idle.
 */
export const DURABLE_PULL_EXPIRES_MS = 10_000;

/** What an append's acknowledgement says, as far as retrying it goes. */
export interface AppendAck {
  readonly seq: number;
  readonly duplicate?: boolean;
}

/**
 * An ack of "duplicate" without a sequence: JetStream remembers the message id from an earlier
 * attempt that it has not stored, yet or ever. nats-server 2.10 stages the id when the stream
 * leader proposes an append and, should the leader drop the proposal on losing its leadership (a
 * partition, an election), keeps refusing that id as a duplicate for the whole duplicate window
 * (fixed in 2.11, nats-server#6415). Taken as stored, the append would be lost.
 */
export const unconfirmedDuplicate = (ack: AppendAck): boolean => ack.duplicate === true && ack.seq === 0;

/**
 * How long an id may stay unconfirmed before it counts as dropped: a proposal still in flight is
 * stored within milliseconds by a leader with a quorum, within seconds by one whose follower is
 * catching up after a partition; appending again sooner would store it twice.
 */
export const UNCONFIRMED_GRACE_MS = 8_000;

export interface AppendOnceOptions {
  readonly msgID: string;
  readonly forMs?: number;
  readonly cancelled?: () => boolean;
  /**
   * Where the caller can tell, the sequence at which an earlier attempt was stored (or
   * undefined): asked before every attempt after one whose outcome is unknown (an error, or an id
   * JetStream keeps unconfirmed). A message id does not cover that case on a cluster: an append
   * its old stream leader proposed just before losing its leadership is stored by the new leader
   * only with the next append, so a retry checked against the new leader's ids is stored too.
   */
  readonly stored?: () => Promise<number | undefined>;
  /** Ask `stored` before the first attempt too: an earlier process may have made one. */
  readonly storedFirst?: boolean;
  /** Default UNCONFIRMED_GRACE_MS. */
  readonly graceMs?: number;
}

/**
 * Appends with `msgID` and retries until JetStream confirms it (see `retrying`), so that an
 * attempt stored whose ack was lost is not stored twice. Before each retry, `stored` says whether
 * an earlier attempt went through after all. An id JetStream keeps unconfirmed is, after
 * `graceMs`, replaced by `<msgID>.<n>`: an append duplicated by a dropped proposal coming back is
 * far less likely than one lost to it. An earlier attempt found stored is answered with its
 * sequence and `duplicate` (the rest of its ack is not known).
 */
export async function appendOnce<A extends AppendAck>(
  append: (msgID: string) => Promise<A>,
  options: AppendOnceOptions,
): Promise<A> {
  const { msgID: first, forMs = JETSTREAM_PUBLISH_RETRY_MS, stored, cancelled } = options;
  const graceMs = options.graceMs ?? UNCONFIRMED_GRACE_MS;
  let [msgID, renamed, unconfirmedSince] = [first, 0, undefined as number | undefined];
  let ask = options.storedFirst === true;
  return retrying(
    async () => {
      if (ask && stored) {
        const seq = await stored();
        if (seq !== undefined) return { seq, duplicate: true } as A;
      }
      ask = true;
      const ack = await append(msgID);
      if (!unconfirmedDuplicate(ack)) return ack;
      unconfirmedSince ??= Date.now();
      if (Date.now() - unconfirmedSince >= graceMs) {
        [msgID, unconfirmedSince] = [`${first}.${++renamed}`, undefined];
      }
      throw new Error(`JetStream has not confirmed an earlier append with message id ${msgID}`);
    },
    { forMs, maxDelayMs: 1_000, ...(cancelled ? { cancelled } : {}) },
  );
}

/** Where to look for an append whose outcome is unknown (`findAppend`). */
export interface AppendPlace {
  readonly stream: string;
  /** A subject of the stream nothing is ever stored on: purged as a barrier. */
  readonly barrier: string;
  /** The subject the append went to. */
  readonly subject: string;
}

/**
 * The sequence at which an append with `msgID` (or, renamed by `appendOnce`, `<msgID>.<n>`) was
 * stored on its subject, or undefined: `appendOnce`'s `stored` for an append that matters once.
 * First a barrier: the purge goes through the stream's log like an append and is answered once
 * the leader has applied everything before it, including an append its predecessor proposed
 * that the next append would otherwise have stored beside a retry. Then the subject is read from
 * the leader's store (a direct get may be answered by a follower behind it): its last message,
 * and only when that is another, its messages from the first. Needs the stream's `check` access.
 */
export async function findAppend(
  jsm: JetStreamManager,
  place: AppendPlace,
  msgID: string,
): Promise<number | undefined> {
  const { stream, barrier, subject } = place;
  const ours = (m: StoredMsg) => {
    const id = m.header?.get('Nats-Msg-Id') ?? '';
    return id === msgID || id.startsWith(`${msgID}.`);
  };
  await jsm.streams.purge(stream, { filter: barrier });
  const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  if (!last) return undefined;
  if (ours(last)) return last.seq;
  for (let seq = 1; seq < last.seq;) {
    // The server's stored-message get takes `next_by_subj` (2.9+); the client types only its direct get's.
    const next = { next_by_subj: subject, seq } as unknown as { seq: number };
    const m = await jsm.streams.getMessage(stream, next);
    if (!m || m.seq >= last.seq) return undefined;
    if (ours(m)) return m.seq;
    seq = m.seq + 1;
  }
  return undefined;
}

/**
 * `js.publish` that rides out a moment without a stream leader (no responders, a timeout, a
 * lost connection): on a cluster, a node's death leaves its streams leaderless for seconds. An
 * answer from JetStream other than 503 (too big, wrong sequence) is final. With `msgID`, an
 * append stored just before its ack was lost is not stored twice (see `appendOnce`).
 */
export async function publishRetrying(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array | string,
  options: Partial<JetStreamPublishOptions> & {
    readonly forMs?: number;
    readonly cancelled?: () => boolean;
    readonly stored?: () => Promise<number | undefined>;
    readonly storedFirst?: boolean;
  } = {},
): Promise<PubAck> {
  const { forMs = JETSTREAM_PUBLISH_RETRY_MS, cancelled, stored, storedFirst, msgID, ...publish } = options;
  const append = async (id: string | undefined) => {
    try {
      return await js.publish(subject, data, id === undefined ? publish : { ...publish, msgID: id });
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code !== 503)
        throw new HubError('INTERNAL_ERROR', `JetStream refused an append to ${subject}: ${err.message}`, {
          retry: 'never',
          cause: err,
        });
      throw err;
    }
  };
  const rest = { forMs, ...(cancelled ? { cancelled } : {}) };
  if (msgID === undefined) return retrying(() => append(undefined), { ...rest, maxDelayMs: 1_000 });
  return appendOnce(append, { msgID, ...rest, ...(stored ? { stored } : {}), ...(storedFirst ? { storedFirst } : {}) });
}
