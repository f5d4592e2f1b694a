// orderedConsumer: the library's ordered consumer, made without a stream info request; it reads
// a subject from the start or from a sequence, and recreates itself when its consumer is lost.
import { describe, expect } from 'vitest';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectTestNats, test } from '@perry-hub/testkit';
import { orderedConsumer } from '../src/index.js';

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
      expect(infos.getProcessed()).toBe(0);
    } finally {
      await tap.close();
      await nc.close();
    }
  });
});
