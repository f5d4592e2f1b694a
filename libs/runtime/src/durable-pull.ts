/**
 * Messages of a durable pull consumer that follow its leader.
 *
 * A pull lives on the consumer's leader. When that node is killed or cut off, the cluster elects
 * another leader within seconds, but the client learns its pull is gone only after two missed
 * heartbeats (`expires` in all, see DURABLE_PULL_EXPIRES_MS); should its check of the consumer
 * then fail while the cluster settles, the library waits `expires` again before it pulls. In a
 * partition test that held the scheduler's intake, and so every dispatch, still for 19 s, of
 * which the new leader had been there for 14.
 *
 * Here the consumer's `LEADER_ELECTED` advisory ends the current consume (what it already
 * received is handed on first) and a new one pulls from the new leader at once. Nothing changes
 * while the leader stays: the advisory is the only message, and a single server never sends it.
 * A pull the old leader still answers (a healed partition) goes to a closed inbox; its messages
 * are unacknowledged and come again after the consumer's `ack_wait`.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { consumerLeaderElectedSubject } from '@perry-hub/contracts';
import type { Logger } from 'pino';
import { DURABLE_PULL_EXPIRES_MS } from './retry.js';

/** What the callers of a consume use of it. */
export interface DurableMessages extends AsyncIterable<JsMsg> {
  /** Ends the iteration once what was received is handed on. */
  stop(): void;
  /** stop(), and resolves once the iteration ended. */
  close(): Promise<void>;
  /** Consumes begun after the first, each on a new leader's election. */
  readonly restarts: number;
}

/**
 * `max_messages` with the point at which the library pulls again: when what its pulls still owe
 * falls to a quarter of it. The library's default, three quarters, also pulls again whenever one
 * of its pulls expires with no more than that owed by the others, so that after a burst several
 * smaller pulls renew one another for as long as nothing comes, each with its own heartbeats and
 * expiry (after the cost bench's run, three for the license's usage count: 0.8 more messages a
 * second on the idle bus). Below half, no two pulls can: once messages stop, one pull is left.
 */
export function refillAtAQuarter(maxMessages: number): { max_messages: number; threshold_messages: number } {
  return { max_messages: maxMessages, threshold_messages: Math.max(1, Math.floor(maxMessages / 4)) };
}

/**
 * `consumer.consume(options)` (with `expires` DURABLE_PULL_EXPIRES_MS unless given, and refilled
 * at a quarter, see refillAtAQuarter), begun again on each election of the consumer's leader.
 * `consumer` is a durable one, from `consumers.get`.
 */
export async function consumeDurable(
  nc: NatsConnection,
  consumer: Consumer,
  options: { readonly max_messages: number; readonly expires?: number },
  log: Logger,
): Promise<DurableMessages> {
  const { stream_name: stream, name: durable } = await consumer.info(true);
  const pull = { expires: options.expires ?? DURABLE_PULL_EXPIRES_MS, ...refillAtAQuarter(options.max_messages) };
  const consume = () => consumer.consume(pull);
  let current: ConsumerMessages = await consume();
  let stopped = false;
  let leaderChanged = false;
  let restarts = 0;
  let ended: () => void = () => undefined;
  const iterationEnded = new Promise<void>((resolve) => (ended = resolve));
  const advisories = nc.subscribe(consumerLeaderElectedSubject(stream, durable), {
    callback: () => {
      if (stopped || leaderChanged) return;
      leaderChanged = true;
      log.info({ stream, consumer: durable }, 'the consumer has a new leader: pulling from it');
      current.stop();
    },
  });

  async function* messages(): AsyncGenerator<JsMsg> {
    try {
      for (;;) {
        for await (const m of current) yield m;
        // Ended by itself (the consumer or its stream went away): the caller's to handle.
        if (stopped || !leaderChanged) return;
        leaderChanged = false;
        restarts++;
        current = await consume();
        if (stopped) current.stop(); // stopped while the new consume began
      }
    } finally {
      advisories.unsubscribe();
      ended();
    }
  }

  const iterator = messages();
  const stop = () => {
    if (stopped) return;
    stopped = true;
    advisories.unsubscribe();
    current.stop();
  };
  return {
    [Symbol.asyncIterator]: () => iterator,
    stop,
    close: async () => {
      stop();
      await Promise.race([iterationEnded, current.closed().then(() => undefined)]);
    },
    get restarts() {
      return restarts;
    },
  };
}
