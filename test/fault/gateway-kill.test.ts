// kill -9 of the worker-gateway, 20 times, during a 200-job run with 4 workers that reconnect:
// the lost connections' jobs are re-queued, nothing acknowledged is lost, nothing completes twice.
// A dead gateway's workers are released when its liveness record expires (seconds), not after
// the lost-worker wait (left at its default minute here, so only the fast path can pass).
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { Kvm } from '@nats-io/kv';
import { topologyNames } from '@perry-hub/contracts';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectEveryJobCompletedOnce, startWorkers, submitSteadily } from './harness.js';

const JOBS = 200;
const KILLS = 20;

describe('fault: worker-gateway killed', () => {
  test(
    '20 kill -9 of the gateway during 200 jobs: 0 lost, 0 duplicate completions',
    { timeout: 300_000 },
    async ({ natsUrl, prefix, database }) => {
      ensureBuilt();
      const hub = await ProcessHub.start(
        {
          natsUrl,
          prefix,
          database,
          // This test is about losing none, not about giving up.
          env: { PERRY_HUB_MAX_RETRIES: '20' },
        },
        {
          edge: ['license', 'artifact-store', 'scheduler', 'vm-controller', 'ingest'],
          gateway: ['worker-gateway'],
        },
      );
      const workers = await startWorkers(hub, 4);
      try {
        const submitting = submitSteadily(hub, JOBS);
        const killing = (async () => {
          const gateway = hub.process('gateway');
          for (let k = 0; k < KILLS; k++) {
            await new Promise((r) => setTimeout(r, 300));
            await gateway.crashAndRestart();
            await gateway.up();
          }
        })();
        await Promise.all([submitting, killing]);
        await expectEveryJobCompletedOnce(hub, 180_000);

        // One more kill, timed: until the dead instance's workers are gone from presence.
        const presence = await new Kvm(hub.nc).open(topologyNames(prefix).presenceBucket);
        const gatewaysOf = async () => {
          const ids: string[] = [];
          for await (const key of await presence.keys()) {
            const entry = await presence.get(key);
            if (entry?.operation === 'PUT') ids.push((entry.json() as { gatewayId: string }).gatewayId);
          }
          return ids;
        };
        // The last of the 20 kills may be only seconds old: its workers go first.
        await expect.poll(async () => new Set(await gatewaysOf()).size, { timeout: 30_000, interval: 200 }).toBe(1);
        const dead = new Set(await gatewaysOf());
        const gateway = hub.process('gateway');
        await gateway.crashAndRestart();
        const killedAt = Date.now();
        await expect
          .poll(async () => (await gatewaysOf()).filter((id) => dead.has(id)).length, {
            timeout: 30_000,
            interval: 100,
          })
          .toBe(0);
        const releaseMs = Date.now() - killedAt;
        console.log(`a dead gateway's workers were released ${releaseMs} ms after its kill -9`);
        expect(releaseMs).toBeLessThan(10_000);
        await gateway.up();
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
