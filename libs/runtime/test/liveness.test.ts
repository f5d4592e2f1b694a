import { describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { pino } from 'pino';
import { connectTestNats, test } from '@perry-hub/testkit';
import {
  Lease,
  LivenessView,
  LivenessWriter,
  MOVE_AFTER_FAILING_MS,
  forgetInstances,
  instanceKey,
  instanceState,
  newInstanceId,
  type InstanceRecord,
} from '../src/index.js';

const TTL_MS = 600;
const log = pino({ level: 'silent' });

describe('instanceState', () => {
  const live = (expiresAt: number): InstanceRecord => ({ kind: 'live', expiresAt });
  const cases: [string, InstanceRecord | undefined, number, number, 'live' | 'dead' | 'unknown'][] = [
    ['no record: unknown, never guessed dead', undefined, 100_000, 0, 'unknown'],
    ['deleted record: dead at once, even right after the reader started', { kind: 'gone' }, 1_000, 1_000, 'dead'],
    ['fresh record', live(10_000), 9_000, 0, 'live'],
    ['expired record, reader watching for a whole TTL', live(10_000), 10_001, 0, 'dead'],
    ['expired record, reader just (re)connected: not believed yet', live(10_000), 12_000, 11_900, 'live'],
    ['expired record, a TTL after the reader reconnected', live(10_000), 12_000 + TTL_MS + 1, 12_000, 'dead'],
    ['expiry exactly now is still live', live(10_000), 10_000, 0, 'live'],
  ];
  it.each(cases)('%s', (_name, record, now, watchingSince, expected) => {
    expect(instanceState(record, now, watchingSince, TTL_MS)).toBe(expected);
  });
});

describe('liveness records', () => {
  test('a stopped writer is dead at once; a killed one once its record expires', async ({ natsUrl, prefix }) => {
    const nc = await connectTestNats(natsUrl);
    try {
      const bucket = `${prefix}-instances`;
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      const gone: string[] = [];
      const view = new LivenessView({
        bucket,
        services: ['worker-gateway'],
        ttlMs: TTL_MS,
        onGone: (id) => gone.push(id),
      });
      await view.start(log, nc);
      const orderly = new LivenessWriter({ kv, instanceId: 'gw-a', service: 'worker-gateway', ttlMs: TTL_MS, log });
      const killed = new LivenessWriter({ kv, instanceId: 'gw-b', service: 'worker-gateway', ttlMs: TTL_MS, log });
      await orderly.start();
      await killed.start();
      await expect.poll(() => [view.state('gw-a'), view.state('gw-b')]).toEqual(['live', 'live']);
      await new Promise((r) => setTimeout(r, TTL_MS * 2));
      expect([view.state('gw-a'), view.state('gw-b')]).toEqual(['live', 'live']); // refreshed meanwhile
      // A live record vouches for its instance as of its last refresh (a third of the TTL at most).
      const vouched = view.vouchedAt('gw-a');
      expect(vouched).toBeDefined();
      expect(Date.now() - vouched!).toBeLessThanOrEqual(TTL_MS);
      expect(view.vouch('gw-a')).toEqual({ at: vouched });
      // What the writer is told to stamp reaches readers with its next refresh.
      orderly.stampWith(() => ({ presenceRevision: 42, presenceCurrentAt: 1_700 }));
      await expect
        .poll(() => view.vouch('gw-a'))
        .toEqual({ at: expect.any(Number), presenceRevision: 42, presenceCurrentAt: 1_700 });
      expect(view.vouch('gw-b')).toEqual({ at: expect.any(Number) });
      await orderly.stop();
      await expect.poll(() => view.state('gw-a')).toBe('dead');
      expect(view.vouchedAt('gw-a')).toBeUndefined();
      expect(gone).toEqual(['gw-a']);
      killed.abandon();
      const killedAt = Date.now();
      await expect.poll(() => view.state('gw-b'), { timeout: 5_000 }).toBe('dead');
      expect(Date.now() - killedAt).toBeLessThan(TTL_MS * 3);
      expect(view.vouchedAt('gw-b')).toBeUndefined();
      expect(view.state('never-seen')).toBe('unknown');
      expect(view.vouchedAt('never-seen')).toBeUndefined();
      view.stop();
    } finally {
      await nc.close();
    }
  });

  test('the next run forgets its predecessors, and takes their leases at once', async ({ natsUrl, prefix }) => {
    const nc = await connectTestNats(natsUrl);
    try {
      const bucket = `${prefix}-instances`;
      const instances = await new Kvm(nc).create(bucket, { history: 1 });
      const leases = await new Kvm(nc).create(`${prefix}-leases`, { history: 1 });
      const sched1 = newInstanceId('scheduler');
      const before = new LivenessWriter({
        kv: instances,
        instanceId: sched1,
        service: 'scheduler',
        ttlMs: 60_000,
        log,
      });
      await before.start();
      const old = new Lease(leases, { key: 'scheduler', holder: sched1, ttlMs: 60_000 });
      expect(await old.acquire()).toBe(true);
      const stranger = new Lease(leases, { key: 'scheduler', holder: 'sched-x', ttlMs: 60_000 });
      expect(await stranger.acquire()).toBe(false);
      const view = new LivenessView({ bucket, services: ['scheduler'], ttlMs: 60_000 });
      await view.start(log, nc);
      // Caught up when start() resolves: the record written before is in.
      expect(view.state(sched1)).toBe('live');
      await forgetInstances(instances, [sched1, 'not-an-instance-id']);
      await expect.poll(() => view.state(sched1)).toBe('dead');
      const next = new Lease(leases, { key: 'scheduler', holder: 'sched-2', ttlMs: 60_000, predecessors: [sched1] });
      expect(await next.acquire()).toBe(true);
      view.stop();
      before.abandon();
    } finally {
      await nc.close();
    }
  });

  test('a reader is sent only the records of the services it judges, and caught up with theirs alone', async ({
    natsUrl,
    prefix,
  }) => {
    const nc = await connectTestNats(natsUrl);
    const reader = await connectTestNats(natsUrl);
    try {
      const bucket = `${prefix}-instances`;
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      const ingest = newInstanceId('ingest');
      const gateway = newInstanceId('worker-gateway');
      const busy = new LivenessWriter({ kv, instanceId: ingest, service: 'ingest', ttlMs: 150, log });
      await busy.start();
      // Records of other services only: start() must not wait for a record it will never get.
      const view = new LivenessView({ bucket, services: ['worker-gateway'], ttlMs: TTL_MS });
      await view.start(log, reader);
      expect((await kv.get(instanceKey('ingest', ingest)))?.operation).toBe('PUT');
      expect(view.state(ingest)).toBe('unknown');
      // The ingest record is rewritten every 50 ms: about 20 writes, none delivered to the reader.
      const received = reader.stats().inMsgs;
      await new Promise((r) => setTimeout(r, 1_000));
      expect(reader.stats().inMsgs - received).toBeLessThanOrEqual(1); // at most a watch heartbeat
      const writer = new LivenessWriter({ kv, instanceId: gateway, service: 'worker-gateway', ttlMs: TTL_MS, log });
      await writer.start();
      await expect.poll(() => view.state(gateway)).toBe('live');
      expect(view.state(ingest)).toBe('unknown');
      await writer.stop();
      await expect.poll(() => view.state(gateway)).toBe('dead');
      view.stop();
      busy.abandon();
    } finally {
      await reader.close();
      await nc.close();
    }
  });
});

describe('a writer whose records cannot be written', () => {
  /** A writer whose bucket's stream is gone: its writes get no responders, as on a cluster whose new stream is not yet reachable through this node. */
  const unanswered = async (natsUrl: string, prefix: string, run: (kv: KV, nc: NatsConnection) => Promise<void>) => {
    const nc = await connectTestNats(natsUrl);
    try {
      const bucket = `${prefix}-instances`;
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`);
      await run(kv, nc);
    } finally {
      await nc.close();
    }
  };

  test('starts once its bucket answers: a first write without a stream is tried again', async ({ natsUrl, prefix }) => {
    await unanswered(natsUrl, prefix, async (kv, nc) => {
      const writer = new LivenessWriter({ kv, instanceId: 'x', service: 'ingest', ttlMs: 60_000, log });
      let started = false;
      const starting = writer.start().then(() => (started = true));
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(started).toBe(false);
      await new Kvm(nc).create(`${prefix}-instances`, { history: 1 });
      await starting;
      const entry = await kv.get(instanceKey('ingest', 'x'));
      expect(JSON.parse(entry!.string())).toMatchObject({ instanceId: 'x', service: 'ingest' });
      await writer.stop();
    });
  });

  test('a start whose bucket never answers ends when the writer is stopped', async ({ natsUrl, prefix }) => {
    await unanswered(natsUrl, prefix, async (kv) => {
      const writer = new LivenessWriter({ kv, instanceId: 'x', service: 'ingest', ttlMs: 60_000, log });
      let settledAt: number | undefined;
      const starting = writer.start().finally(() => (settledAt = Date.now()));
      starting.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(settledAt).toBeUndefined();
      const stoppedAt = Date.now();
      await writer.stop();
      await starting.catch(() => undefined);
      // Within the longest pause between attempts, not the 30 s a start otherwise keeps trying.
      expect(settledAt! - stoppedAt).toBeLessThan(2_000);
    });
  });

  test.for([
    ['moves to another server of a cluster', 2, 1],
    ['stays on its only server', 1, 0],
  ] as const)('%s', { timeout: 20_000 }, async ([, servers, moves], { natsUrl, prefix }) => {
    const nc = await connectTestNats(natsUrl);
    try {
      const bucket = `${prefix}-instances`;
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      const reconnects: number[] = [];
      const connection = {
        getServer: () => nc.getServer(),
        getServers: () => Array.from({ length: servers }, () => nc.getServers()[0]!),
        status: () => nc.status(),
        reconnect: async () => void reconnects.push(Date.now()),
      };
      const writer = new LivenessWriter({ kv, instanceId: 'x', service: 'ingest', ttlMs: 300, log, nc: connection });
      await writer.start();
      // Every write fails from now on, as through a server cut off from its cluster.
      await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`);
      await new Promise((resolve) => setTimeout(resolve, MOVE_AFTER_FAILING_MS + 2_500));
      writer.abandon();
      expect(reconnects).toHaveLength(moves);
    } finally {
      await nc.close();
    }
  });
});
