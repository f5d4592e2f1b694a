// The nats-server killed and restarted mid-run (same data directory and port): every service
// reconnects, JetStream keeps what it acknowledged, and every job completes exactly once.
import { describe } from 'vitest';
import { startIsolatedNats, test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { WORKER_SECRET } from '../support/test-hub.js';
import { expectEveryJobCompletedOnce } from './history.js';

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
      const history = new WorkerHistory();
      const workers: SimulatedWorker[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          const w = linuxWorker({
            url: hub.workerUrl,
            secret: WORKER_SECRET,
            name: `linux-${i}`,
            maxConcurrent: 2,
            history,
            reconnectDelayMs: 200,
            script: () => ({ durationMs: 50 + Math.floor(Math.random() * 200), logLines: 2 }),
          });
          workers.push(w);
          await w.connected();
        }
        const submitting = (async () => {
          for (let i = 0; i < 100; i++) {
            // A submission during the outage may be refused (503); only acknowledged ones count.
            await hub.submit(i);
            await new Promise((r) => setTimeout(r, 40));
          }
        })();
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
