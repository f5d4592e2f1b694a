// kill -9 of the worker-gateway, 20 times, during a 200-job run with 4 workers that reconnect:
// the lost connections' jobs are re-queued, nothing acknowledged is lost, nothing completes twice.
import { describe } from 'vitest';
import { test } from '@perry-hub/testkit';
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
          // Each kill costs the jobs in flight an attempt; this test is about losing none, not about giving up.
          env: { PERRY_HUB_WORKER_LOST_MS: '2000', PERRY_HUB_MAX_RETRIES: '20' },
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
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
