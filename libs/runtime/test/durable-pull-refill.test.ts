// What a durable consume leaves on the server once its messages stop: one pull. The library
// pulls again whenever what its pulls still owe falls to its threshold (by default three
// quarters of `max_messages`), and again each time one of them expires with that little left
// by the others: after a burst, several small pulls renew one another for as long as nothing
// comes, each with its own heartbeats and expiry. consumeDurable refills at a quarter, below
// which no two pulls can renew each other.
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { pino } from 'pino';
import { connectTestNats, expect, test, until } from '@perry-hub/testkit';
import { consumeDurable } from '../src/index.js';

const log = pino({ level: 'silent' });
const EXPIRES_MS = 1_000;
const MAX_MESSAGES = 16;

test(
  'after bursts of messages, an idle durable consume holds one pull on the server',
  { timeout: 60_000 },
  async ({ natsUrl, prefix }) => {
    const stream = `${prefix}_REFILL`;
    const subject = `${prefix}.refill`;
    const nc = await connectTestNats(natsUrl);
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [subject] });
      await jsm.consumers.add(stream, { durable_name: 'usage', ack_policy: AckPolicy.Explicit });
      const js = jetstream(nc);
      const messages = await consumeDurable(
        nc,
        await js.consumers.get(stream, 'usage'),
        { max_messages: MAX_MESSAGES, expires: EXPIRES_MS },
        log,
      );
      let received = 0;
      const reading = (async () => {
        for await (const m of messages as AsyncIterable<JsMsg>) {
          m.ack();
          received++;
        }
      })();
      // Bursts of every size up to two pulls' worth, each read before the next.
      let sent = 0;
      for (let burst = 1; burst <= 2 * MAX_MESSAGES; burst++) {
        for (let i = 0; i < burst; i++) await js.publish(subject, new Uint8Array([burst]));
        sent += burst;
        await until(`${sent} messages read`, () => received === sent, 5_000, 5);
      }
      // Long enough for every pull of the bursts to expire a few times over.
      const waiting: number[] = [];
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, EXPIRES_MS / 2));
        waiting.push((await jsm.consumers.info(stream, 'usage')).num_waiting);
      }
      expect(
        waiting.slice(4),
        `pulls waiting on the server, every ${EXPIRES_MS / 2} ms: ${waiting.join(', ')}`,
      ).toEqual([1, 1, 1, 1]);
      await messages.close();
      await reading;
    } finally {
      await nc.close();
    }
  },
);
