// Replicas are configuration: on a three-node cluster, every service restarted with
// PERRY_HUB_JS_REPLICAS=3 raises every stream, KV bucket and object store of the hub to three
// replicas and builds keep working; restarted again without it, nothing is lowered (a warning
// says so) and builds still work.
import { jetstreamManager } from '@nats-io/jetstream';
import { SERVICE_NAMES, topologyNames } from '@perry-hub/contracts';
import { describe, expect, startIsolatedNatsCluster, test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectEveryJobCompletedOnce, startWorkers } from '../fault/harness.js';

/** Each stream of the hub under `prefix` (its KV and Object Store buckets are streams too) with its replicas. */
async function replicas(hub: ProcessHub, prefix: string): Promise<Record<string, number>> {
  const n = topologyNames(prefix);
  const ours: string[] = [n.intakeStream, n.eventsStream];
  const jsm = await jetstreamManager(hub.nc);
  const out: Record<string, number> = {};
  for await (const si of jsm.streams.list()) {
    const name = si.config.name;
    if (ours.includes(name) || name.startsWith(`KV_${prefix}-`) || name.startsWith(`OBJ_${prefix}-`)) {
      out[name] = si.config.num_replicas;
    }
  }
  return out;
}

describe('cluster: replicas', () => {
  test(
    'raising PERRY_HUB_JS_REPLICAS to 3 on a running cluster survives a restart of every service; nothing is lowered',
    { timeout: 300_000 },
    async ({ prefix, database }) => {
      ensureBuilt();
      const cluster = await startIsolatedNatsCluster(3);
      const hub = await ProcessHub.start(
        { natsUrl: cluster.urls, prefix, database },
        Object.fromEntries(SERVICE_NAMES.map((name) => [name, [name]])),
      );
      const workers = await startWorkers(hub, 2);
      const build = async (i: number) => {
        expect(await hub.submit(i)).toBeDefined();
      };
      try {
        await build(1);
        const before = await replicas(hub, prefix);
        // Intake, events, and the presence, instances, leases, vm, limits and blobs buckets.
        expect(Object.keys(before).length).toBe(8);
        expect(new Set(Object.values(before))).toEqual(new Set([1]));

        hub.env['PERRY_HUB_JS_REPLICAS'] = '3';
        for (const p of hub.processes) {
          await p.restart();
          await p.up();
        }
        await build(2);
        const raised = await replicas(hub, prefix);
        console.log(`replicas after the restart with PERRY_HUB_JS_REPLICAS=3: ${JSON.stringify(raised)}`);
        expect(Object.values(raised)).toEqual(Object.values(before).map(() => 3));

        delete hub.env['PERRY_HUB_JS_REPLICAS'];
        for (const p of hub.processes) {
          await p.restart();
          await p.up();
        }
        await build(3);
        expect(await replicas(hub, prefix)).toEqual(raised);
        const warned = hub.processes.filter((p) => /replicas are never lowered/.test(p.current.output()));
        expect(warned.map((p) => p.name).sort()).toEqual([...SERVICE_NAMES].sort());

        await expectEveryJobCompletedOnce(hub, 60_000);
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
