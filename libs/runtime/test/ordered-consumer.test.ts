// orderedConsumer: the library's ordered consumer, made without a stream info request; it reads
// a subject from the start or from a sequence, and recreates itself when its consumer is lost.
// endOrderedRead: ends a read and deletes its consumer with one message and no answer, on one
// server and on a cluster (where the delete goes through the meta leader).
import { describe, expect } from 'vitest';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectTestNats, startIsolatedNatsCluster, test, until } from '@perry-hub/testkit';
import { endOrderedRead, orderedConsumer, publishRetrying } from '../src/index.js';

const encoder = new TextEncoder();

describe('orderedConsumer', () => {
  test('reads a subject in order without asking for the stream info, and survives its consumer being deleted', async ({
    natsUrl,
    prefix,
  }) => {
    const nc = await connectTestNats(natsUrl);
    const tap = await connectTestNats(natsUrl);
    try {
      const stream = `${prefix.toUpperCase()}_OC`;
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${prefix}.oc.>`] });
      const js = jetstream(nc);
      for (let i = 1; i <= 3; i++) await js.publish(`${prefix}.oc.a`, encoder.encode(`a${i}`));
      await js.publish(`${prefix}.oc.b`, encoder.encode('b1'));
      const infos = tap.subscribe(`$JS.API.STREAM.INFO.${stream}`);
      await tap.flush();

      const fromStart = await orderedConsumer(js, stream, {
        filter_subjects: `${prefix}.oc.a`,
        deliver_policy: DeliverPolicy.All,
      });
      const messages = await fromStart.consume({ max_messages: 16, expires: 2_000 });
      const seen: string[] = [];
      for await (const m of messages) {
        seen.push(m.string());
        if (seen.length === 3) {
          // Lost consumer: the library's ordered consumer makes a new one from its cursor.
          await jsm.consumers.delete(stream, (await fromStart.info(true)).name);
          await js.publish(`${prefix}.oc.a`, encoder.encode('a4'));
        }
        if (seen.length === 4) break;
      }
      expect(seen).toEqual(['a1', 'a2', 'a3', 'a4']);

      const fromSeq = await orderedConsumer(js, stream, {
        filter_subjects: `${prefix}.oc.>`,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: 3,
      });
      const batch = await fromSeq.fetch({ max_messages: 3, expires: 2_000 });
      const later: string[] = [];
      for await (const m of batch) later.push(m.string());
      expect(later).toEqual(['a3', 'b1', 'a4']);

      await tap.flush();
      expect(infos.getReceived()).toBe(0);
    } finally {
      await tap.close();
      await nc.close();
    }
  });
});

/** Reads two messages through an ordered consumer, ends the read, and checks what that cost. */
async function readThenEnd(
  nc: NatsConnection,
  tap: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  subject: string,
) {
  const js = jetstream(nc);
  // On a cluster, a stream just created may not be reachable through every node yet.
  for (let i = 1; i <= 2; i++) await publishRetrying(js, subject, encoder.encode(`m${i}`));
  const deletes = tap.subscribe(`$JS.API.CONSUMER.DELETE.${stream}.>`);
  await tap.flush();
  const consumer = await orderedConsumer(js, stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const name = (await consumer.info(true)).name;
  // The read's pull stays pending at the server after the last message, as a watch's does.
  const messages = await consumer.consume({ max_messages: 16, expires: 30_000 });
  let seen = 0;
  for await (const _ of messages) if (++seen === 2) break;
  await endOrderedRead(nc, consumer, messages);

  const gone = await until(`consumer ${name} deleted`, async () =>
    jsm.consumers.info(stream, name).then(
      () => false,
      (err: Error) => /consumer not found/.test(err.message),
    ),
  );
  expect(gone).toBe(true);
  await tap.flush();
  const sent = deletes.getReceived();
  deletes.unsubscribe();
  return { sent };
}

describe('endOrderedRead', () => {
  test('deletes the consumer at once with one message that asks for no answer', async ({ natsUrl, prefix }) => {
    const nc = await connectTestNats(natsUrl);
    const tap = await connectTestNats(natsUrl);
    try {
      const stream = `${prefix.toUpperCase()}_END`;
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${prefix}.end.>`] });
      const replies: string[] = [];
      const sub = tap.subscribe(`$JS.API.CONSUMER.DELETE.${stream}.>`, {
        callback: (_err, m) => void replies.push(m.reply ?? ''),
      });
      await tap.flush();
      expect(await readThenEnd(nc, tap, jsm, stream, `${prefix}.end.a`)).toEqual({ sent: 1 });
      // No reply subject: the server answers no one.
      expect(replies).toEqual(['']);
      sub.unsubscribe();

      // On a closed connection it does nothing and does not throw (the inactive threshold is the backstop).
      const consumer = await orderedConsumer(jetstream(nc), stream, {
        filter_subjects: `${prefix}.end.a`,
        deliver_policy: DeliverPolicy.All,
      });
      const closing = await connectTestNats(natsUrl);
      await closing.close();
      await expect(endOrderedRead(closing, consumer)).resolves.toBeUndefined();
      expect((await jsm.consumers.info(stream, (await consumer.info(true)).name)).name).toBeTruthy();
    } finally {
      await tap.close();
      await nc.close();
    }
  });

  test("deletes a replicated stream's consumer on a cluster", { timeout: 120_000 }, async ({ prefix }) => {
    const cluster = await startIsolatedNatsCluster(3);
    const nc = await connectTestNats(cluster.urls);
    const tap = await connectTestNats(cluster.urls);
    try {
      const stream = `${prefix.toUpperCase()}_END3`;
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${prefix}.end3.>`], num_replicas: 3 });
      expect(await readThenEnd(nc, tap, jsm, stream, `${prefix}.end3.a`)).toEqual({ sent: 1 });
    } finally {
      await tap.close();
      await nc.close();
    }
  });
});
