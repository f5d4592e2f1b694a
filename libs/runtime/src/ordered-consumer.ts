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
  type JetStreamClient,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import { nanos, nuid } from '@nats-io/nats-core';

export interface OrderedConsumerRequest {
  /** One subject (or pattern) the consumer delivers. */
  readonly filter_subjects: string;
  readonly deliver_policy: typeof DeliverPolicy.All | typeof DeliverPolicy.StartSequence;
  /** With `DeliverPolicy.StartSequence`. */
  readonly opt_start_seq?: number;
}

/**
 * The server deletes the consumer once it has had no pull request this long. The library's
 * ordered consumer waits 5 minutes; a watch's consumer is not deleted when the watch ends (that
 * is a request and its answer per watch), so at 100 builds a second 30,000 of them would be kept.
 * A watch that lost its server for longer recreates its consumer from its cursor, as on any loss.
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
