// An orderly restart of the all-in-one (SIGTERM, or Ctrl-C's SIGINT) while builds run: their
// workers go on building, reconnect and claim their builds back, so no retry is counted (with
// none allowed at all, the builds still succeed), no build is started twice, each completes once,
// and no attempt count rises.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowDataPacket } from '@perry-hub/db';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { WORKER_SECRET } from '../support/test-hub.js';
import { expectEveryJobCompletedOnce } from './harness.js';
import { whenTrue } from '@perry-hub/testkit';

let dataDir: string;
beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-graceful-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function builds(hub: ProcessHub): Promise<RowDataPacket[]> {
  const [r] = await hub.db.query<RowDataPacket[]>('SELECT id, status, attempt, retries FROM builds');
  return r;
}

describe('an orderly restart of the whole hub', () => {
  it(
    'SIGTERM, then SIGINT, while builds run: each build goes on where it ran, no retry, no attempt raised',
    { timeout: 300_000 },
    async () => {
      const hub = await ProcessHub.startAllInOne(dataDir, { PERRY_HUB_MAX_RETRIES: '0' });
      const history = new WorkerHistory();
      const workers: SimulatedWorker[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const w = linuxWorker({
            url: hub.workerUrl,
            secret: WORKER_SECRET,
            name: `linux-${i}`,
            maxConcurrent: 2,
            history,
            reconnectDelayMs: 500,
            script: () => ({ durationMs: 15_000, logLines: 2, logEveryMs: 1_000 }),
          });
          workers.push(w);
          await w.connected();
        }
        const restarts: { signal: 'SIGTERM' | 'SIGINT'; running: string[] }[] = [];
        for (const [n, signal] of (['SIGTERM', 'SIGINT'] as const).entries()) {
          for (let i = 0; i < 2; i++) expect(await hub.submit(n * 10 + i)).toBeDefined();
          await whenTrue(
            'two builds running',
            async () => (await builds(hub)).filter((r) => r['status'] === 'running').length >= 2,
            20_000,
          );
          await new Promise((r) => setTimeout(r, 1_000));
          const running = (await builds(hub)).filter((r) => r['status'] === 'running').map((r) => String(r['id']));
          restarts.push({ signal, running });
          const proc = hub.process('hub');
          const at = Date.now();
          await proc.restart(signal);
          await proc.up();
          await hub.reconnect();
          console.log(`${signal}: ${running.length} builds running, the hub was back ${Date.now() - at} ms later`);
        }

        await expectEveryJobCompletedOnce(hub, 120_000);
        const rows = await builds(hub);
        const starts = (id: string) => history.started.filter((s) => s.jobId === id).length;
        console.log(
          rows
            .map(
              (r) =>
                `${String(r['id']).slice(0, 8)}: attempt ${r['attempt']}, retries ${r['retries']}, ${starts(String(r['id']))} starts`,
            )
            .join('; '),
        );
        // No retry counted: with none allowed, every build still succeeded (checked above).
        expect(rows.map((r) => Number(r['retries']))).toEqual(rows.map(() => 0));
        // Each build went on where it ran: one start, attempt 1.
        for (const r of rows) {
          expect(starts(String(r['id'])), String(r['id'])).toBe(1);
          expect(Number(r['attempt']), String(r['id'])).toBe(1);
        }
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
