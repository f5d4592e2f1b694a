// kill -9 of the scheduler, 20 times, during a 200-job run with 4 workers: nothing acknowledged is
// lost and nothing completes twice.
import { describe } from 'vitest';
import { test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectEveryJobCompletedOnce, startWorkers, submitSteadily } from './harness.js';

const JOBS = 200;
const KILLS = 20;

describe('fault: scheduler killed', () => {
  test(
    '20 kill -9 of the scheduler during 200 jobs: 0 lost, 0 duplicate completions',
    { timeout: 300_000 },
    async ({ natsUrl, prefix, database }) => {
      ensureBuilt();
      const hub = await ProcessHub.start(
        { natsUrl, prefix, database, env: { PERRY_HUB_SCHEDULER_LEASE_MS: '1500', PERRY_HUB_WORKER_LOST_MS: '3000' } },
        {
          edge: ['license', 'artifact-store', 'worker-gateway', 'vm-controller', 'ingest'],
          schedulerA: ['scheduler'],
          schedulerB: ['scheduler'],
        },
      );
      const workers = await startWorkers(hub, 4);
      try {
        const submitting = submitSteadily(hub, JOBS);
        const killing = (async () => {
          for (let k = 0; k < KILLS; k++) {
            await new Promise((r) => setTimeout(r, 400));
            const victim = hub.process(k % 2 === 0 ? 'schedulerA' : 'schedulerB');
            await victim.crashAndRestart();
            await victim.up();
          }
        })();
        await Promise.all([submitting, killing]);
        await expectEveryJobCompletedOnce(hub, 120_000);
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
