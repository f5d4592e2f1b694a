import { describe, expect } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { test, connectTestNats, startIsolatedNats, until } from '@perry-hub/testkit';
import { Lease } from '../src/index.js';

const TTL_MS = 600;

async function withBucket<T>(natsUrl: string, prefix: string, body: (kv: KV) => Promise<T>): Promise<T> {
  const nc = await connectTestNats(natsUrl);
  try {
    // Like the topology's leases bucket: no TTL, so the entry carries its own expiry.
    const kv = await new Kvm(nc).create(`${prefix}-leases`, { history: 1 });
    return await body(kv);
  } finally {
    await nc.close();
  }
}

describe('Lease', () => {
  test('of two contenders exactly one wins', async ({ natsUrl, prefix }) => {
    await withBucket(natsUrl, prefix, async (kv) => {
      const a = new Lease(kv, { key: 'vm-controller', holder: 'a', ttlMs: TTL_MS });
      const b = new Lease(kv, { key: 'vm-controller', holder: 'b', ttlMs: TTL_MS });
      const results = await Promise.all([a.acquire(), b.acquire()]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(a.isHolder() !== b.isHolder()).toBe(true);
      // The loser keeps losing while the winner renews.
      const [winner, loser] = a.isHolder() ? [a, b] : [b, a];
      winner.campaign();
      await new Promise((resolve) => setTimeout(resolve, TTL_MS * 2));
      expect(await loser.acquire()).toBe(false);
      expect(winner.isHolder()).toBe(true);
      await winner.close();
      await loser.close();
    });
  });

  test('a holder that stops renewing is taken over after expiry, and learns it lost', async ({ natsUrl, prefix }) => {
    await withBucket(natsUrl, prefix, async (kv) => {
      const lost: string[] = [];
      const a = new Lease(kv, { key: 'l', holder: 'a', ttlMs: TTL_MS, onLost: (reason) => lost.push(reason) });
      expect(await a.acquire()).toBe(true);
      const acquiredAt = Date.now();
      let bAcquiredAt = 0;
      const b = new Lease(kv, { key: 'l', holder: 'b', ttlMs: TTL_MS, onAcquired: () => (bAcquiredAt = Date.now()) });
      b.campaign();
      await until('the standby to take the lease', () => b.isHolder());
      expect(bAcquiredAt - acquiredAt).toBeGreaterThanOrEqual(TTL_MS - 20);
      // The old holder's own deadline passed before the takeover.
      expect(a.isHolder()).toBe(false);
      expect(await a.renew()).toBe(false);
      expect(lost).toEqual(['taken']);
      await b.close();
    });
  });

  test('release hands the lease over at once', async ({ natsUrl, prefix }) => {
    await withBucket(natsUrl, prefix, async (kv) => {
      const a = new Lease(kv, { key: 'l', holder: 'a', ttlMs: 30_000 });
      const b = new Lease(kv, { key: 'l', holder: 'b', ttlMs: 30_000 });
      expect(await a.acquire()).toBe(true);
      expect(await b.acquire()).toBe(false);
      await a.release();
      expect(a.isHolder()).toBe(false);
      const before = Date.now();
      expect(await b.acquire()).toBe(true);
      expect(Date.now() - before).toBeLessThan(1_000);
      // A released holder can come back only once the new one lets go.
      expect(await a.acquire()).toBe(false);
      await b.close();
      expect(await a.acquire()).toBe(true);
      await a.close();
    });
  });

  test('a renewal unanswered at the deadline loses the lease then, not when its request gives up', async ({
    prefix,
  }) => {
    // A server of its own, stopped (SIGSTOP) so that the renewal waits out its 5 s timeout.
    const nats = await startIsolatedNats();
    const nc = await connectTestNats(nats.url);
    try {
      const kv = await new Kvm(nc).create(`${prefix}-leases`, { history: 1 });
      const lostAt: number[] = [];
      const a = new Lease(kv, { key: 'l', holder: 'a', ttlMs: TTL_MS, onLost: () => lostAt.push(Date.now()) });
      expect(await a.acquire()).toBe(true);
      const acquiredAt = Date.now();
      process.kill(nats.pid, 'SIGSTOP');
      let renewal: Promise<boolean> | undefined;
      try {
        renewal = a.renew();
        await until('the loss to be reported', () => lostAt.length > 0, 4_000);
      } finally {
        process.kill(nats.pid, 'SIGCONT');
      }
      expect(lostAt[0]! - acquiredAt).toBeLessThan(TTL_MS + 300);
      expect(a.isHolder()).toBe(false);
      expect(await renewal).toBe(false);
      expect(lostAt).toHaveLength(1);
    } finally {
      await nc.close();
    }
  });

  test('a lost lease is reported once when the holder cannot renew in time', async ({ natsUrl, prefix }) => {
    await withBucket(natsUrl, prefix, async (kv) => {
      let clock = 1_000_000;
      const lost: string[] = [];
      const a = new Lease(kv, { key: 'l', holder: 'a', ttlMs: TTL_MS, now: () => clock, onLost: (r) => lost.push(r) });
      expect(await a.acquire()).toBe(true);
      clock += TTL_MS;
      expect(a.isHolder()).toBe(false);
      a.campaign();
      await until('the loss to be reported', () => lost.length > 0);
      expect(lost).toEqual(['expired']);
      await a.close();
    });
  });
});
