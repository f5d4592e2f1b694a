// kill -9 of the whole hub (all six services in one process) at the moments a user pays for:
// right after a submission's job row is committed (the CLI never gets its answer), in the middle
// of artifact downloads, and in the middle of an upload (a reservation without a job). After the
// restart the user simply runs the CLI again, or fetches the same link: the same job, its
// artifact, one publish counted; the dead upload's reservation is released.
import { createHash, randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { describe, expect } from 'vitest';
import { SERVICE_NAMES } from '@perry-hub/contracts';
import type { RowDataPacket } from '@perry-hub/db';
import { test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { buildRequest, perryPublish, sniffDownload } from '../support/perry-cli.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { CREDENTIALS, MANIFEST, WORKER_SECRET, tarball } from '../support/test-hub.js';
import { publishBody, send } from '../integration/support/perry-publish.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SPENT = { error: { code: 'ARTIFACT_NOT_FOUND', message: 'Artifact not found or expired' } };
// Short request deadline and a sweep every second, so a dead reservation goes within seconds.
const ENV = { PERRY_HUB_REQUEST_TIMEOUT_MS: '4000', PERRY_HUB_RESERVATION_SWEEP_SECS: '1' };

async function poll<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function rows(hub: ProcessHub, sql: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await hub.db.query<RowDataPacket[]>(sql, params);
  return r;
}

async function withWholeHub(
  { natsUrl, prefix, database }: { natsUrl: string; prefix: string; database: ProcessHub['options']['database'] },
  body: (hub: ProcessHub, worker: (artifact?: Buffer) => Promise<SimulatedWorker>) => Promise<void>,
  env: Record<string, string> = ENV,
): Promise<void> {
  ensureBuilt();
  const hub = await ProcessHub.start({ natsUrl, prefix, database, env }, { hub: [...SERVICE_NAMES] });
  const workers: SimulatedWorker[] = [];
  const history = new WorkerHistory();
  const worker = async (artifact?: Buffer) => {
    const w = linuxWorker({
      url: hub.workerUrl,
      secret: WORKER_SECRET,
      name: `linux-${workers.length}`,
      history,
      reconnectDelayMs: 200,
      ...(artifact ? { script: () => ({ artifact }) } : {}),
    });
    workers.push(w);
    await w.connected();
    return w;
  };
  try {
    await body(hub, worker);
  } finally {
    for (const w of workers) await w.stop();
    await hub.stop();
  }
}

function rerun(hub: ProcessHub, input: Buffer, download = true) {
  return perryPublish({
    server: hub.url,
    manifest: { ...MANIFEST, targets: ['linux'] },
    credentials: CREDENTIALS,
    tarball: input,
    apiToken: hub.apiToken,
    download,
    timeoutMs: 60_000,
    reconnectDelayMs: () => 300,
  });
}

/**
 * A plain GET like the CLI's that has received at least `bytes`, then stops reading: the hub
 * cannot finish sending (the rest is far more than socket buffers hold) until it dies.
 */
function downloadStarted(url: string, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => {
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) {
          res.pause();
          resolve();
        }
      });
      res.on('end', () => reject(new Error('the download finished before the crash')));
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
  });
}

describe('fault: the whole hub killed', () => {
  test(
    'kill -9 right after the job row is committed: the re-run CLI gets that job and its artifact, charged once',
    { timeout: 180_000 },
    async ({ natsUrl, prefix, database }) => {
      await withWholeHub({ natsUrl, prefix, database }, async (hub, worker) => {
        const input = tarball('cut submission');
        const request = buildRequest({
          manifest: { ...MANIFEST, targets: ['linux'] },
          credentials: CREDENTIALS,
          tarball: input,
          apiToken: hub.apiToken,
        });
        const cli = new AbortController();
        const answered = fetch(`${hub.url}/api/v1/build`, { ...request, signal: cli.signal }).then(
          (r) => r.status,
          () => 'cut',
        );
        const [row] = await poll('the job row', () =>
          rows(hub, 'SELECT id FROM builds').then((r) => r.length > 0 && r),
        );
        // The CLI is cut off first, then the hub dies: whatever the hub was about to say is lost.
        cli.abort();
        await hub.process('hub').crashAndRestart();
        console.log(`the CLI's first request: ${String(await answered)}`);
        await hub.process('hub').up();
        await worker();

        const result = await rerun(hub, input);
        expect(result.reason).toBe('Ready');
        expect(result.jobId).toBe(row!['id']);
        expect(result.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
        expect(await rows(hub, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 1 }]);
        await poll('the publish to be counted', async () => (await hub.usage()) === 1);
        await new Promise((r) => setTimeout(r, 1_000));
        expect(await hub.usage()).toBe(1);
      });
    },
  );

  test(
    'downloads cut by a crash: a plain GET of the link, and a re-run CLI, both get the artifact; spent once complete',
    { timeout: 180_000 },
    async ({ natsUrl, prefix, database }) => {
      await withWholeHub({ natsUrl, prefix, database }, async (hub, worker) => {
        const artifact = randomBytes(16 * MiB);
        await worker(artifact);
        const inputs = [tarball('download cut, link retried'), tarball('download cut, CLI re-run')];
        const firstRuns = await Promise.all(inputs.map((input) => rerun(hub, input, false)));
        const links = firstRuns.map((r) => {
          expect(r.reason).toBe('Ready');
          const ready = r.messages.find((m) => m.type === 'artifact_ready') as { download_url: string };
          return ready.download_url;
        });
        await Promise.all(links.map((url) => downloadStarted(url, MiB)));
        await hub.process('hub').crashAndRestart();
        await hub.process('hub').up();

        const plain = await fetch(links[0]!);
        expect(plain.status).toBe(200);
        expect(sha256(sniffDownload(Buffer.from(await plain.arrayBuffer())))).toBe(sha256(artifact));
        const spent = await fetch(links[0]!);
        expect(spent.status).toBe(404);
        expect(await spent.json()).toEqual(SPENT);

        const again = await rerun(hub, inputs[1]!);
        expect(again.reason).toBe('Ready');
        expect(again.jobId).toBe(firstRuns[1]!.jobId);
        expect(sha256(again.artifact!.bytes)).toBe(sha256(artifact));

        expect(await rows(hub, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 2 }]);
        await poll('both publishes to be counted', async () => (await hub.usage()) === 2);
        await new Promise((r) => setTimeout(r, 1_000));
        expect(await hub.usage()).toBe(2);
      });
    },
  );

  test(
    'a reservation left by a submission killed mid-upload is released at the restart, long before its deadline',
    { timeout: 180_000 },
    async ({ natsUrl, prefix, database }) => {
      // Default request deadline (10 minutes) and sweep interval (a minute): the restarted
      // license finds the ingest instance that held the request dead (its liveness record
      // expired) and releases the reservation within seconds.
      await withWholeHub(
        { natsUrl, prefix, database },
        async (hub) => {
          // Authorized before the tarball (Bearer), then the upload stalls: the hub dies under it.
          const body = publishBody({
            manifest: JSON.stringify({ ...MANIFEST, targets: ['linux'] }),
            credentials: JSON.stringify(CREDENTIALS),
            tarball: {
              length: 4 * MiB,
              chunks: async function* () {
                yield Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(64 * 1024)]);
                await new Promise(() => undefined);
              },
            },
            apiToken: hub.apiToken,
          });
          void send(`${hub.url}/api/v1/build`, {
            headers: {
              'content-type': `multipart/form-data; boundary=${body.boundary}`,
              'content-length': body.length,
              authorization: `Bearer ${hub.apiToken}`,
            },
            body: body.chunks(),
          }).catch(() => undefined);
          const [reservation] = await poll('the reservation', () =>
            rows(hub, "SELECT job_id FROM submissions WHERE state = 'pending'").then((r) => r.length > 0 && r),
          );
          await hub.process('hub').crashAndRestart();
          await hub.process('hub').up();
          await poll(
            'the reservation to be released',
            async () =>
              (await rows(hub, 'SELECT state FROM submissions WHERE job_id = ?', [reservation!['job_id']]))[0]?.[
                'state'
              ] === 'released',
            10_000,
          );
          expect(await rows(hub, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 0 }]);
        },
        {},
      );
    },
  );
});
