// A durable pull consumer on a three-node cluster whose leader is cut off. Its pull lived on that
// leader; the library would pull again only after two missed heartbeats (here, with a 60 s
// `expires`, a minute). consumeDurable pulls from the new leader as soon as the cluster elects
// it, so a message published after the cut arrives well within that minute.
// Needs root and iproute2 (network namespaces); skipped with the reason without them.
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { pino } from 'pino';
import {
  connectTestNats,
  describeWithNamespaces,
  expect,
  startPartitionableNatsCluster,
  test,
  until,
} from '@perry-hub/testkit';
import { consumeDurable, publishRetrying } from '../src/index.js';

const log = pino({ level: 'silent' });
/** Heartbeats every 30 s: the library alone would not pull again for a minute after the cut. */
const EXPIRES_MS = 60_000;

describeWithNamespaces(
  'durable pull cluster test',
  'durable pulls on a cluster whose consumer leader is cut off',
  () => {
    test(
      'messages sent after the cut come from the new leader, without waiting for missed heartbeats',
      { timeout: 180_000 },
      async ({ prefix }) => {
        const cluster = await startPartitionableNatsCluster();
        const urls = cluster.urls.split(',');
        const stream = `${prefix}_DURABLE`;
        const subject = `${prefix}.durable.work`;
        const durable = 'worker';
        const setup = await connectTestNats(urls[0]!);
        let leader: number;
        try {
          const jsm = await until(
            'JetStream on the new cluster',
            async () => {
              const jsm = await jetstreamManager(setup);
              await jsm.streams.add({ name: stream, subjects: [subject], num_replicas: 3 });
              return jsm;
            },
            30_000,
            500,
          );
          const info = await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit });
          leader = cluster.nodes.findIndex((n) => n.serverName === info.cluster?.leader);
          expect(leader, `consumer leader ${info.cluster?.leader}`).toBeGreaterThanOrEqual(0);
        } finally {
          await setup.close();
        }
        // The reader stays on a node that keeps its cluster, as the hub's services move to one.
        const nc = await connectTestNats(urls[(leader + 1) % 3]!);
        const got: string[] = [];
        const consumer = await jetstream(nc).consumers.get(stream, durable);
        const messages = await consumeDurable(nc, consumer, { max_messages: 16, expires: EXPIRES_MS }, log);
        const reading = (async () => {
          for await (const m of messages as AsyncIterable<JsMsg>) {
            got.push(m.string());
            m.ack();
          }
        })();
        try {
          const js = jetstream(nc);
          // A stream just created may not be reachable through this node yet.
          await publishRetrying(js, subject, 'before');
          await expect.poll(() => got, { timeout: 10_000 }).toContain('before');
          expect(messages.restarts).toBe(0);

          cluster.partition(leader);
          const cutAt = Date.now();
          // The stream may have lost its leader too: its append waits for the next one.
          await until(
            'a message sent after the cut',
            () => js.publish(subject, 'after').catch(() => undefined),
            60_000,
            500,
          );
          await until(
            'the message sent after the cut',
            () => got.includes('after') || undefined,
            EXPIRES_MS - 20_000,
            200,
          );
          console.log(`delivered ${Date.now() - cutAt} ms after the cut, consumes begun again: ${messages.restarts}`);
          expect(messages.restarts).toBeGreaterThanOrEqual(1);
          expect(got).toEqual(['before', 'after']);
        } finally {
          await messages.close();
          await reading;
          await nc.close();
          cluster.heal(leader);
        }
      },
    );
  },
);
