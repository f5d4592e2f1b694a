// The nats-server killed and restarted mid-run (same data directory and port): every service
// reconnects, JetStream keeps what it acknowledged, and every job completes exactly once.
import { describe } from 'vitest';
import { startIsolatedNats, test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectEveryJobCompletedOnce, startWorkers, submitSteadily } from './harness.js';

describe('fault: nats-server restarted', () => {
  test(
    'a kill -9 and restart of nats-server during 100 jobs: 0 lost, 0 duplicate completions',
    { timeout: 300_000 },
    async ({ prefix, database }) => {
      ensureBuilt();
      const nats = await startIsolatedNats();
      let server = nats;
      const hub = await ProcessHub.start(
        {
          natsUrl: nats.url,
          prefix,
          database,
          env: { PERRY_HUB_SCHEDULER_LEASE_MS: '3000', PERRY_HUB_MAX_RETRIES: '10' },
        },
        { hub: ['license', 'artifact-store', 'scheduler', 'worker-gateway', 'vm-controller', 'ingest'] },
      );
      const workers = await startWorkers(hub, 4);
      try {
        const submitting = submitSteadily(hub, 100);
        await new Promise((r) => setTimeout(r, 1500));
        process.kill(nats.pid, 'SIGKILL');
        server = await nats.restart();
        await submitting;
        await expectEveryJobCompletedOnce(hub, 180_000);
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
        await server.stop();
      }
    },
  );
});
