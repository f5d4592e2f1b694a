// KV watches on a three-node cluster with one node cut off. A LivenessView's watch whose consumer
// lives on that node goes silent while the reader's connection is fine: the view notices that the
// bucket holds records it was not given, and watches afresh, instead of taking every instance for
// dead until the library's ordered consumer gives up (two missed heartbeats of 30 s). And a watch
// made meanwhile (watchKv) is created even when its consumer is first placed on that node.
// Needs root and iproute2 (network namespaces); skipped with the reason without them.
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { pino } from 'pino';
import {
  connectTestNats,
  describeWithNamespaces,
  expect,
  startPartitionableNatsCluster,
  test,
  until,
} from '@perry-hub/testkit';
import { LivenessView, LivenessWriter, watchKv, type KvWatch } from '../src/index.js';

const TTL_MS = 2_000;
const log = pino({ level: 'silent' });

describeWithNamespaces('KV watch cluster test', 'KV watches on a cluster with a node cut off', () => {
  test(
    'a watch whose consumer is cut off is started afresh, the writer stays live, and watches made meanwhile are created',
    { timeout: 180_000 },
    async ({ prefix }) => {
      const cluster = await startPartitionableNatsCluster();
      // Reader and writer on node 0 only: they stay with it, as clients of a node that keeps its
      // cluster do.
      const nc = await connectTestNats(cluster.urls.split(',')[0]!);
      try {
        const bucket = `${prefix}-instances`;
        // A new cluster may answer 'temporarily unavailable' a little longer.
        const kv = await until(
          'the bucket on the new cluster',
          () => new Kvm(nc).create(bucket, { history: 1, replicas: 3 }).catch(() => undefined),
          30_000,
          500,
        );
        const writer = new LivenessWriter({ kv, instanceId: 'gw-a', service: 'worker-gateway', ttlMs: TTL_MS, log });
        await writer.start();
        const jsm = await jetstreamManager(nc);
        const consumers = async () => {
          const hosts = new Map<string, string | undefined>();
          for await (const ci of jsm.consumers.list(`KV_${bucket}`)) hosts.set(ci.name, ci.cluster?.leader);
          return hosts;
        };
        // A view whose watch's consumer lives on node 2 (a single-replica consumer goes to any of
        // its stream's nodes): views are made until one's does.
        const cutNode = cluster.nodes[2]!.serverName;
        let view: LivenessView | undefined;
        let behind = 0;
        for (let tries = 0; !view && tries < 30; tries++) {
          const before = await consumers();
          const candidate = new LivenessView({
            bucket,
            services: ['worker-gateway'],
            ttlMs: TTL_MS,
            onBehind: () => behind++,
          });
          await candidate.start(log, nc);
          // (A creation asked for twice leaves two consumers: which is the view's is not known.)
          const created = [...(await consumers())].filter(([name]) => !before.has(name));
          if (created.length === 1 && created[0]![1] === cutNode) view = candidate;
          else candidate.stop();
        }
        expect(view, 'no view had its consumer on node 2 in 30 tries').toBeDefined();
        await expect.poll(() => view!.state('gw-a')).toBe('live');

        cluster.partition(2);
        const cutAt = Date.now();
        try {
          // The record expires unrenewed in the silent watch; the bucket has newer ones once the
          // stream has a leader on the two nodes left: the view watches afresh. From 20 s after
          // the cut, still cut off, the writer is judged live throughout (the library's watch
          // alone stays silent for up to a minute, and the writer looks dead all along).
          await new Promise((r) => setTimeout(r, 20_000));
          const states = new Set<string>();
          for (const end = Date.now() + 3 * TTL_MS; Date.now() < end;) {
            states.add(view!.state('gw-a'));
            await new Promise((r) => setTimeout(r, 100));
          }
          expect([...states]).toEqual(['live']);
          expect(behind).toBeGreaterThan(0);

          // Watches made while node 2 is cut off: a third of them are placed there and never
          // confirmed, but asked again each is created, and each delivers.
          const watches = await Promise.all(Array.from({ length: 6 }, () => watchKv(kv, { key: 'probe.>' })));
          await kv.put('probe.a', 'x');
          const firstKey = async (watch: KvWatch) => {
            for await (const entry of watch) return entry.key;
          };
          expect(await Promise.all(watches.map(firstKey))).toEqual(Array(6).fill('probe.a'));
          for (const watch of watches) watch.stop();
          expect(Date.now() - cutAt, 'the checks ran while node 2 was still cut off').toBeLessThan(45_000);
        } finally {
          cluster.heal(2);
        }
        view!.stop();
        await writer.stop();
      } finally {
        await nc.close();
      }
    },
  );
});
