// kill -9 of the whole all-in-one while the reference worker builds: the build carries on, the
// worker reconnects to the restarted hub and claims the job back (same attempt), and delivers the
// result of the build it never stopped. The job completes once, its command ran once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { RowDataPacket } from '@perry-hub/db';
import { loadWorkerConfig, startWorker } from '@perry-hub/worker';
import { ensureBuilt } from '../support/hub-process.js';
import { buildRequest } from '../support/perry-cli.js';
import { ProcessHub } from '../support/process-hub.js';
import { craftTarGz } from '../support/tar-craft.js';
import { CREDENTIALS, MANIFEST, WORKER_SECRET } from '../support/test-hub.js';
import { expectEveryJobCompletedOnce } from './harness.js';

let dir: string;
beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'perry-worker-crash-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fault: the hub killed while the reference worker builds', () => {
  it(
    'the build goes on, the worker claims the job back after the restart, and it completes once',
    { timeout: 300_000 },
    async () => {
      // A short lost limit: the restarted hub gives a released job back to the same worker after it.
      const hub = await ProcessHub.startAllInOne(join(dir, 'hub'), { PERRY_HUB_WORKER_LOST_MS: '3000' });
      const commands = new Map<string, number>();
      const config = loadWorkerConfig({
        PERRY_HUB_URL: hub.workerUrl,
        PERRY_HUB_WORKER_SECRET: WORKER_SECRET,
        PERRY_WORKER_NAME: 'ts-worker',
        PERRY_WORKER_WORK_DIR: join(dir, 'jobs'),
        PERRY_WORKER_COMMAND: 'sh ./build.sh',
        PERRY_BUILD_PERRY_BINARY: join(dir, 'no-perry-here'),
        PERRY_WORKER_RECONNECT_MIN_MS: '200',
        PERRY_WORKER_RECONNECT_MAX_MS: '1000',
      });
      const worker = await startWorker({
        config,
        log: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
        onCommandStart: (jobId) => commands.set(jobId, (commands.get(jobId) ?? 0) + 1),
      });
      try {
        await worker.connected();
        const script =
          'echo "::stage compiling building"\nsleep 8\necho "built"\necho "$PERRY_JOB_ID" > "$PERRY_OUTPUT_DIR/app.bin"\n';
        const res = await fetch(
          `${hub.url}/api/v1/build`,
          buildRequest({
            manifest: { ...MANIFEST, targets: ['linux'] },
            credentials: CREDENTIALS,
            tarball: craftTarGz([
              { name: 'build.sh', data: script },
              { name: 'src/main.ts', data: 'console.log(1);\n' },
            ]),
            apiToken: hub.apiToken,
          }),
        );
        expect(res.status).toBe(200);
        const jobId = ((await res.json()) as { job_id: string }).job_id;
        hub.acknowledged.add(jobId);
        await expect.poll(() => commands.get(jobId), { timeout: 30_000 }).toBe(1);

        const proc = hub.process('hub');
        await proc.crashAndRestart();
        const killedAt = Date.now();
        await proc.up();
        await hub.reconnect();
        console.log(
          `hub back ${Date.now() - killedAt} ms after the kill; worker connections so far ${worker.connections}`,
        );

        await expectEveryJobCompletedOnce(hub, 120_000);
        expect(commands.get(jobId)).toBe(1); // the build was not started again
        expect(worker.connections).toBeGreaterThanOrEqual(2);
        // Claimed back after the restart: assigned once, its attempt unchanged.
        const assigns = worker.received.filter((r) => r.frame.includes('"type":"job_assign"'));
        expect(assigns.length).toBe(1);
        const [row] = (await hub.db.query<RowDataPacket[]>('SELECT attempt FROM builds WHERE id = ?', [jobId]))[0];
        expect(row).toMatchObject({ attempt: 1 });
        expect(worker.sent.filter((f) => f.includes('"type":"complete"'))).toHaveLength(1);
      } finally {
        await worker.stop();
        await hub.stop();
      }
    },
  );
});
