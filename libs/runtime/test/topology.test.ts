// Storage sizes are configuration: ensureTopology applies them when it creates a stream or
// bucket and when one already exists with other sizes (an operator changing the limit).
// Every instance of every service ensures its part at once when a hub starts, on one server or on
// a cluster: all of them succeed, and a stream another instance is still creating is waited for.
import { expect } from 'vitest';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { backingStream, topology, topologyNames, type TopologyEntry } from '@perry-hub/contracts';
import { connectTestNats, startIsolatedNatsCluster, test } from '@perry-hub/testkit';
import { ensureTopology } from '../src/index.js';

const MiB = 1024 * 1024;

test('max_bytes of the blobs bucket and the events stream, on creation and on a later change', async ({
  natsUrl,
  prefix,
}) => {
  const nc = await connectTestNats(natsUrl);
  try {
    const jsm = await jetstreamManager(nc);
    const names = topologyNames(prefix);
    const sizes = async () => {
      const blobs = (await jsm.streams.info(`OBJ_${names.blobsBucket}`)).config;
      const events = (await jsm.streams.info(names.eventsStream)).config;
      const limits = (await jsm.streams.info(`KV_${names.limitsBucket}`)).config;
      return {
        blobs: [blobs.max_bytes, blobs.discard],
        events: [events.max_bytes, events.discard],
        limits: [limits.max_bytes, limits.discard],
      };
    };
    await ensureTopology(nc, topology(prefix, { blobsMaxBytes: 64 * MiB, eventsMaxBytes: 32 * MiB }));
    // A full store refuses new objects (never drops parts of old ones); a full log drops its oldest events.
    expect(await sizes()).toEqual({
      blobs: [64 * MiB, DiscardPolicy.New],
      events: [32 * MiB, DiscardPolicy.Old],
      limits: [64 * MiB, DiscardPolicy.Old],
    });
    await ensureTopology(nc, topology(prefix, { blobsMaxBytes: 128 * MiB, eventsMaxBytes: 16 * MiB }));
    expect(await sizes()).toEqual({
      blobs: [128 * MiB, DiscardPolicy.New],
      events: [16 * MiB, DiscardPolicy.Old],
      limits: [64 * MiB, DiscardPolicy.Old],
    });
  } finally {
    await nc.close();
  }
});

test('a consumer whose stream another instance is still creating is made once the stream is there', async ({
  natsUrl,
  prefix,
}) => {
  const nc = await connectTestNats(natsUrl);
  try {
    const entries = topology(prefix);
    const consumer = entries.find((e) => e.kind === 'consumer')!;
    const stream = entries.find((e) => e.kind === 'stream' && e.name === consumer.stream)!;
    let created = false;
    const late = new Promise<void>((resolve, reject) =>
      setTimeout(
        () =>
          ensureTopology(nc, [stream])
            .then(() => void (created = true))
            .then(resolve, reject),
        1_500,
      ),
    );
    await ensureTopology(nc, [consumer]);
    await late;
    expect(created).toBe(true);
    const jsm = await jetstreamManager(nc);
    if (consumer.kind !== 'consumer') throw new Error('not a consumer');
    expect((await jsm.consumers.info(consumer.stream, consumer.durable)).config.filter_subject).toBe(
      consumer.filterSubject,
    );
  } finally {
    await nc.close();
  }
});

test(
  'six instances ensuring the whole topology at once on a three-node cluster all succeed, with three replicas each',
  { timeout: 240_000 },
  async ({ prefix }) => {
    const cluster = await startIsolatedNatsCluster(3);
    const urls = cluster.urls.split(',');
    // Two instances on each node, as two instances of each service spread over the cluster.
    const ncs = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => connectTestNats(urls[i]!)));
    try {
      const entries: readonly TopologyEntry[] = topology(prefix);
      const results = await Promise.allSettled(ncs.map((nc) => ensureTopology(nc, entries, { replicas: 3 })));
      expect(
        results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
      ).toEqual([]);
      const jsm = await jetstreamManager(ncs[0]!);
      const names = entries.flatMap((e) => backingStream(e) ?? []);
      for (const name of names) expect([name, (await jsm.streams.info(name)).config.num_replicas]).toEqual([name, 3]);
    } finally {
      await Promise.all(ncs.map((nc) => nc.close()));
    }
  },
);

test(
  'with one node of three down, a restarted instance ensures the topology without waiting for that node',
  { timeout: 240_000 },
  async ({ prefix }) => {
    const cluster = await startIsolatedNatsCluster(3);
    const urls = cluster.urls.split(',');
    const entries: readonly TopologyEntry[] = topology(prefix);
    const first = await connectTestNats(urls[0]!);
    try {
      await ensureTopology(first, entries, { replicas: 3 });
    } finally {
      await first.close();
    }
    await cluster.kill(2);
    // A quorum of each stream's replicas is current, which is what a write needs: no stream is
    // waited for until its wait gives up (30 s each, minutes for the whole topology).
    const warnings: string[] = [];
    const log = { info: () => undefined, warn: (_o: unknown, msg?: string) => void warnings.push(String(msg)) };
    const nc = await connectTestNats(urls[0]!);
    try {
      await ensureTopology(nc, entries, { replicas: 3, log });
      expect(warnings.filter((w) => w.includes('has not caught up'))).toEqual([]);
    } finally {
      await nc.close();
    }
  },
);
