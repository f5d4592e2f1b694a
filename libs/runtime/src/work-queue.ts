/**
 * A durable consumer of a work-queue stream that its stream fell behind.
 *
 * nats-server 2.10 removes a work-queue stream's message block once all its messages are
 * acknowledged. Killed (-9) around that moment, it can restore the stream at an earlier last
 * sequence, even 0, while the consumer keeps the later position it had stored (nats-server
 * #5412, #6600). The stream then numbers new messages from the earlier sequence, and the
 * consumer skips every one up to its own position, silently and for good: the messages stay
 * stored and nobody receives them. With 2.10.27, a work-queue stream drained as fast as it is
 * written got there within a few kills.
 *
 * The consumer's owner looks after each reconnect and before it consumes; a consumer found
 * behind is created again, which delivers the stream from its first message: a work-queue
 * stream holds only what nobody has acknowledged.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerSpec } from '@perry-hub/contracts';
import { consumerConfig, isNotFound } from './topology.js';

/** One look at a work-queue stream and its one consumer (stream sequences). */
export interface WorkQueueLook {
  /** The last message the consumer delivered. */
  readonly delivered: number;
  /** Every message up to here is acknowledged (so removed from the stream). */
  readonly ackFloor: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly messages: number;
}

/** Why the consumer cannot deliver some of the stream's messages, or undefined. */
export function strandedBy(look: WorkQueueLook): string | undefined {
  if (look.delivered > look.lastSeq)
    return `it delivered up to sequence ${look.delivered}, past the stream's last (${look.lastSeq})`;
  if (look.messages > 0 && look.firstSeq <= look.ackFloor)
    return `the stream holds sequence ${look.firstSeq}, at or below the consumer's acknowledged floor (${look.ackFloor})`;
  return undefined;
}

/** The consumer first: its positions only grow while the stream is read. */
async function lookAt(nc: NatsConnection, spec: Pick<ConsumerSpec, 'stream' | 'durable'>): Promise<WorkQueueLook> {
  const jsm = await jetstreamManager(nc);
  const consumer = await jsm.consumers.info(spec.stream, spec.durable);
  const { state } = await jsm.streams.info(spec.stream);
  return {
    delivered: consumer.delivered.stream_seq,
    ackFloor: consumer.ack_floor.stream_seq,
    firstSeq: state.first_seq,
    lastSeq: state.last_seq,
    messages: state.messages,
  };
}

/**
 * Why the consumer misses messages its stream holds, or undefined. Two requests when all is
 * well; a finding is looked at again `confirmMs` later, since a message being acknowledged can
 * for a moment still be stored at the floor it has just raised.
 */
export async function strandedConsumer(
  nc: NatsConnection,
  spec: Pick<ConsumerSpec, 'stream' | 'durable'>,
  confirmMs = 1_000,
): Promise<string | undefined> {
  if (strandedBy(await lookAt(nc, spec)) === undefined) return undefined;
  await new Promise((r) => setTimeout(r, confirmMs));
  return strandedBy(await lookAt(nc, spec));
}

/** Deletes the durable consumer and creates it as the topology defines it (from the stream's start). */
export async function recreateConsumer(nc: NatsConnection, spec: ConsumerSpec): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.delete(spec.stream, spec.durable).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  await jsm.consumers.add(spec.stream, consumerConfig(spec));
}
