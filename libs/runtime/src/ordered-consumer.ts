/**
 * An ordered consumer of a stream, made as `js.consumers.get(stream, options)` makes it, without
 * the stream info request that call sends first (it only checks that the stream exists; the
 * consumer's creation fails the same way when it does not). A CLI's watch and an SSE follower
 * each make one, so that request was two messages per watched build.
 *
 * The consumer behaves as the library's ordered consumer: it is the library's own class, given
 * the same configuration, and recreates itself from its cursor on a gap or a lost consumer.
 */
import {
  AckPolicy,
  DeliverPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamClient,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import { nanos, nuid, type NatsConnection } from '@nats-io/nats-core';
import { JS_API_PREFIX } from '@perry-hub/contracts';

export interface OrderedConsumerRequest {
  /** One subject (or pattern) the consumer delivers. */
  readonly filter_subjects: string;
  readonly deliver_policy: typeof DeliverPolicy.All | typeof DeliverPolicy.StartSequence;
  /** With `DeliverPolicy.StartSequence`. */
  readonly opt_start_seq?: number;
}

/**
 * The server deletes the consumer once it has had no pull request this long: the backstop for a
 * reader that could not end it (its hub instance died, or its delete was lost). The library's
 * ordered consumer waits 5 minutes. A watch that lost its server for longer recreates its
 * consumer from its cursor, as on any loss.
 */
const INACTIVE_MS = 30_000;

type OrderedConsumerClass = new (api: unknown, info: ConsumerInfo, opts: Partial<OrderedConsumerOptions>) => Consumer;

export async function orderedConsumer(
  js: JetStreamClient,
  stream: string,
  request: OrderedConsumerRequest,
): Promise<Consumer> {
  const opts: Partial<OrderedConsumerOptions> = {
    name_prefix: nuid.next(),
    filter_subjects: request.filter_subjects,
    deliver_policy: request.deliver_policy,
    ...(request.opt_start_seq !== undefined ? { opt_start_seq: request.opt_start_seq } : {}),
  };
  const config: Partial<ConsumerConfig> = {
    name: `${opts.name_prefix}_1`,
    deliver_policy: request.deliver_policy,
    ack_policy: AckPolicy.None,
    inactive_threshold: nanos(INACTIVE_MS),
    num_replicas: 1,
    max_deliver: 1,
    mem_storage: true,
    filter_subject: request.filter_subjects,
    ...(request.deliver_policy === DeliverPolicy.StartSequence ? { opt_start_seq: request.opt_start_seq ?? 1 } : {}),
  };
  // With the client's options, and no account info request (checkAPI false).
  const jsm = await js.jetstreamManager(false);
  const info = await jsm.consumers.add(stream, config);
  // The library's ordered consumer is its pull consumer class constructed with the ordered
  // options; the class is reached through the consumer it makes from an info.
  const plain = js.consumers.getConsumerFromInfo(info) as Consumer & { api: unknown };
  const Ordered = plain.constructor as OrderedConsumerClass;
  return new Ordered(plain.api, info, opts);
}

/**
 * Ends a read of an ordered consumer: stops its pulls, then deletes the consumer at the server
 * without waiting for the answer (published with no reply subject: one message in, none
 * delivered). Left alone, the server keeps the consumer with the reader's last pull pending
 * until the pull expires (30 s) and then the inactive threshold passes, so the end of a busy
 * spell leaves hundreds of idle consumers the server keeps ticking over for most of a minute.
 * The pulls stop first because the library's ordered consumer recreates a consumer deleted under
 * it. Never throws: a delete that is lost leaves the consumer to the inactive threshold.
 */
export async function endOrderedRead(
  nc: NatsConnection,
  consumer: Consumer,
  messages?: Pick<ConsumerMessages, 'close'>,
): Promise<void> {
  try {
    await messages?.close();
  } catch {
    // Closed with an error (its consumer lost, its connection gone): it pulls no more either way.
  }
  try {
    const { stream_name, name } = await consumer.info(true);
    if (!nc.isClosed()) nc.publish(`${JS_API_PREFIX}.CONSUMER.DELETE.${stream_name}.${name}`);
  } catch {
    // A closing connection: the inactive threshold removes the consumer.
  }
}
