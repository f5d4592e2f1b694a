// Submission counters shared between ingest instances every few attempts: one instance alone is
// exact, several let at most `shareEvery - 1` each through that the others did not know of, and
// a bucket that cannot be reached loses no attempt.
import { describe, expect } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { topologyFor, topologyNames } from '@perry-hub/contracts';
import { ensureTopology, type NatsConnection } from '@perry-hub/runtime';
import { connectTestNats, test } from '@perry-hub/testkit';
import { WindowCounters } from '../src/abuse/counters.js';

const HOUR_MS = 3_600_000;
const EVERY = 4;
/** A fixed instant in the middle of an hour's window. */
const NOW = 1_800_000_000_000 + 1_000;

/** The one counter of a scope in the bucket (0 while there is none). */
async function stored(kv: KV, scope: string): Promise<number> {
  for await (const key of await kv.keys(`${scope}.>`)) {
    const entry = await kv.get(key);
    return entry ? Number(entry.string()) : 0;
  }
  return 0;
}

/** A connection with the ingest's topology made, and the limits bucket's name; closed after `body`. */
async function withLimitsBucket(
  natsUrl: string,
  prefix: string,
  body: (nc: NatsConnection, bucket: string) => Promise<void>,
): Promise<void> {
  const nc = await connectTestNats(natsUrl);
  try {
    await ensureTopology(nc, topologyFor(prefix, 'ingest'));
    await body(nc, topologyNames(prefix).limitsBucket);
  } finally {
    await nc.close();
  }
}

describe('WindowCounters.hitShared', () => {
  test('one instance counts exactly and writes the bucket every 4th attempt', async ({ natsUrl, prefix }) => {
    await withLimitsBucket(natsUrl, prefix, async (nc, bucket) => {
      const counters = await WindowCounters.open(nc, bucket);
      const kv = await new Kvm(nc).open(bucket);
      const counts: number[] = [];
      const written: number[] = [];
      for (let i = 0; i < 10; i++) {
        counts.push((await counters.hitShared('submit-license', 'KEY-1', HOUR_MS, EVERY, NOW)).count);
        written.push(await stored(kv, 'submit-license'));
      }
      expect(counts).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(written).toEqual([0, 0, 0, 4, 4, 4, 4, 8, 8, 8]);
    });
  });

  test('two instances exceed a limit by at most 3 each, and each refuses once it learns the total', async ({
    natsUrl,
    prefix,
  }) => {
    await withLimitsBucket(natsUrl, prefix, async (nc, bucket) => {
      const instances = [await WindowCounters.open(nc, bucket), await WindowCounters.open(nc, bucket)];
      const max = 10;
      let admitted = 0;
      // A client alternating between the instances, as a load balancer would send it.
      for (let i = 0; i < 40; i++) {
        const { count } = await instances[i % 2]!.hitShared('submit-address', '203.0.113.7', HOUR_MS, EVERY, NOW);
        if (count <= max) admitted++;
      }
      expect(admitted).toBeGreaterThanOrEqual(max);
      expect(admitted).toBeLessThanOrEqual(max + instances.length * (EVERY - 1));
      // Both have shared enough by now: neither admits any more.
      for (const counters of instances) {
        expect((await counters.hitShared('submit-address', '203.0.113.7', HOUR_MS, EVERY, NOW)).count).toBeGreaterThan(
          max,
        );
      }
      console.log(`limit ${max}, two instances sharing every ${EVERY}: ${admitted} admitted`);
    });
  });

  test('attempts counted while the bucket cannot be reached are written with the next share', async ({
    natsUrl,
    prefix,
  }) => {
    await withLimitsBucket(natsUrl, prefix, async (nc, bucket) => {
      const counters = await WindowCounters.open(nc, bucket);
      for (let i = 0; i < 3; i++) await counters.hitShared('submit-license', 'KEY-2', HOUR_MS, EVERY, NOW);
      // The 4th attempt's write fails (the bucket is gone); the four are kept, not lost.
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(`KV_${bucket}`);
      await expect(counters.hitShared('submit-license', 'KEY-2', HOUR_MS, EVERY, NOW)).rejects.toThrow();
      await ensureTopology(nc, topologyFor(prefix, 'ingest'));
      const fifth = await counters.hitShared('submit-license', 'KEY-2', HOUR_MS, EVERY, NOW);
      expect(fifth.count).toBe(5);
      expect(await stored(await new Kvm(nc).open(bucket), 'submit-license')).toBe(5);
    });
  });
});
