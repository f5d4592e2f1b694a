// The leader's links to the bus: a consumer, watch or subscription that ends on its own is fatal
// (reported once, never after stop()); stop() ends every link once, however often it is called.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { connectTestNats, test, until } from '@perry-hub/testkit';
import { LeaderLinks } from '../src/links.js';

const log = pino({ level: 'silent' });

describe('LeaderLinks', () => {
  test('a consumer that ends on its own is fatal, reported once; after stop() nothing is', async ({
    natsUrl,
    prefix,
  }) => {
    const nc = await connectTestNats(natsUrl);
    try {
      const jsm = await jetstreamManager(nc);
      const stream = `${prefix}_LINKS`;
      await jsm.streams.add({ name: stream, subjects: [`${prefix}.links.>`] });
      await jsm.consumers.add(stream, { durable_name: 'leader' });
      const consumer = await jetstream(nc).consumers.get(stream, 'leader');
      const fatal: Error[] = [];
      const links = new LeaderLinks({ nc, log, onFatal: (err) => fatal.push(err) });
      const seen: string[] = [];
      const first = await consumer.consume();
      links.consume('the leader consumer', first, (m) => {
        seen.push(m.string());
        m.ack();
      });
      await jetstream(nc).publish(`${prefix}.links.a`, 'one');
      await until('the message handed on', async () => seen.length === 1);
      expect(seen).toEqual(['one']);
      expect(fatal).toEqual([]);

      // Ended from outside (as a lost consumer ends): fatal once, even with a second loss.
      await first.stop();
      await until('the loss reported', async () => fatal.length > 0);
      expect(fatal.map((e) => e.message)).toEqual(['the leader consumer ended']);
      const second = await consumer.consume();
      links.consume('another consumer', second, (m) => m.ack());
      await second.stop();
      await new Promise((r) => setTimeout(r, 100));
      expect(fatal).toHaveLength(1);

      // Stopped: links end without a report, and a second stop() is the same teardown.
      const quiet: Error[] = [];
      const stopped = new LeaderLinks({ nc, log, onFatal: (err) => quiet.push(err) });
      const kv = await new Kvm(nc).create(`${prefix}-links`, { history: 1 });
      const changes: [string, unknown][] = [];
      await stopped.watch('the test bucket', kv, (key, value) => changes.push([key, value]));
      let stops = 0;
      stopped.onStop(() => stops++);
      await kv.put('a', JSON.stringify({ n: 1 }));
      await kv.put('b', 'not json');
      await kv.delete('a');
      await until('the watch saw the put and the delete', async () => changes.length === 2);
      expect(changes).toEqual([
        ['a', { n: 1 }],
        ['a', undefined],
      ]);
      const once = stopped.stop();
      expect(stopped.stop()).toBe(once);
      await once;
      expect(stopped.stopped).toBe(true);
      expect(stops).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(quiet).toEqual([]);
    } finally {
      await nc.close();
    }
  });

  test('subscriptions skip malformed messages; a periodic task never overlaps itself and ends with stop()', async ({
    natsUrl,
    prefix,
  }) => {
    const nc = await connectTestNats(natsUrl);
    const links = new LeaderLinks({ nc, log, onFatal: () => undefined });
    try {
      const got: unknown[] = [];
      links.subscribe(`${prefix}.links.events`, (data) => got.push(data));
      nc.publish(`${prefix}.links.events`, 'not json');
      nc.publish(`${prefix}.links.events`, JSON.stringify({ ok: true }));
      await until('the well-formed message', async () => got.length > 0);
      expect(got).toEqual([{ ok: true }]);

      let running = 0;
      let most = 0;
      let runs = 0;
      links.every(10, async () => {
        runs++;
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 50));
        running--;
      });
      await until('a few runs', async () => runs >= 3);
      expect(most).toBe(1);
      await links.stop();
      const after = runs;
      await new Promise((r) => setTimeout(r, 100));
      expect(runs).toBe(after);
    } finally {
      await links.stop();
      await nc.close();
    }
  });

  test('links added after stop() (a takeover still starting when its lease was lost) are ended at once', async ({
    natsUrl,
    prefix,
  }) => {
    const nc = await connectTestNats(natsUrl);
    const fatal: Error[] = [];
    const links = new LeaderLinks({ nc, log, onFatal: (err) => fatal.push(err) });
    try {
      await links.stop();
      let stops = 0;
      links.onStop(() => stops++);
      await until('a stop added late ran', async () => stops === 1);

      // A watch made after the teardown: stopped, not left delivering to a leader that is gone.
      const kv = await new Kvm(nc).create(`${prefix}-late`, { history: 1 });
      const changes: string[] = [];
      await links.watch('a late bucket', kv, (key) => changes.push(key));
      await kv.put('a', JSON.stringify(1));
      await new Promise((r) => setTimeout(r, 200));
      expect(changes).toEqual([]);

      let runs = 0;
      links.every(10, async () => {
        runs++;
      });
      await new Promise((r) => setTimeout(r, 100));
      expect(runs).toBe(0);
      expect(stops).toBe(1);
      expect(fatal).toEqual([]);
    } finally {
      await nc.close();
    }
  });
});
