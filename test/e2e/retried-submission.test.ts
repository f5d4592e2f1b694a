// A retried submission is the same build, and a download is spent only once it finished: the
// CLI (no Idempotency-Key, gives up when its first WebSocket connect fails) re-run by its user
// gets the job it already paid for, and its artifact, counted once.
import { createHash, randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { describe, expect } from 'vitest';
import { expireArtifacts } from '@perry-hub/artifact-store';
import { jobStatusEndpoint, subjects, topologyNames } from '@perry-hub/contracts';
import { dbOptions, openPool, type Pool, type RowDataPacket } from '@perry-hub/db';
import { BlobStore, call } from '@perry-hub/runtime';
import { connectTestNats, test } from '@perry-hub/testkit';
import { buildRequest, perryPublish, sniffDownload } from '../support/perry-cli.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { CREDENTIALS, MANIFEST, tarball } from '../support/test-hub.js';
import { ofType, until, withHub, type Scenario } from './dispatch-kit.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SPENT = { error: { code: 'ARTIFACT_NOT_FOUND', message: 'Artifact not found or expired' } };
const MiB = 1024 * 1024;

async function one(db: Pool, sql: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const [rows] = await db.query<RowDataPacket[]>(sql, params);
  return rows;
}

const publishes = async (db: Pool) =>
  Number((await one(db, 'SELECT COALESCE(SUM(publishes), 0) AS n FROM usage_counters'))[0]?.['n']);

/** `perry publish` as its user re-runs it: same project, same credential. */
function cli(s: Scenario, input: Buffer, auth: { apiToken: string } | { licenseKey: string }, download = true) {
  return perryPublish({
    server: s.hub.url,
    manifest: { ...MANIFEST, targets: ['linux'] },
    credentials: CREDENTIALS,
    tarball: input,
    ...auth,
    download,
    timeoutMs: 30_000,
    reconnectDelayMs: () => 200,
  });
}

/** The CLI's POST alone: it got its 200, then its first WebSocket connect failed, so it exited. */
async function postOnly(s: Scenario, input: Buffer, apiToken: string): Promise<string> {
  const res = await post(s, input, { apiToken });
  expect(res.status).toBe(200);
  return ((await res.json()) as { job_id: string }).job_id;
}

function post(s: Scenario, input: Buffer, auth: { apiToken: string } | { licenseKey: string }) {
  const manifest = { ...MANIFEST, targets: ['linux'] };
  return fetch(
    `${s.hub.url}/api/v1/build`,
    buildRequest({ manifest, credentials: CREDENTIALS, tarball: input, ...auth }),
  );
}

/** Start a plain GET like the CLI's, take `keepBytes`, then drop the connection. */
function cutDownload(url: string, keepBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => {
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= keepBytes) {
          req.destroy();
          resolve(received);
        }
      });
      res.on('end', () => reject(new Error(`the whole download (${received} bytes) arrived before the cut`)));
    });
    req.on('error', () => undefined);
  });
}

describe('a retried submission', () => {
  test('identical concurrent submissions make one job; the duplicates leave no tarball and no reservation', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      const nc = await connectTestNats(natsUrl);
      try {
        const apiToken = await s.hub.account('pro');
        const input = tarball('concurrent');
        const ids = await Promise.all(Array.from({ length: 4 }, () => postOnly(s, input, apiToken)));
        expect(new Set(ids).size).toBe(1);
        expect(await one(db, 'SELECT id FROM builds')).toEqual([{ id: ids[0] }]);
        const states = await one(db, 'SELECT state, COUNT(*) AS n FROM submissions GROUP BY state ORDER BY state');
        expect(states).toEqual([
          { state: 'pending', n: 1 },
          { state: 'released', n: 3 },
        ]);
        const blobs = await BlobStore.open(nc, topologyNames(prefix).blobsBucket);
        expect((await blobs.list('tarballs/')).map((o) => o.name)).toEqual([`tarballs/${ids[0]}`]);

        // Another source is another build.
        const other = await postOnly(s, tarball('concurrent, edited'), apiToken);
        expect(other).not.toBe(ids[0]);

        // An Idempotency-Key names a submission through the same mechanism: concurrent requests
        // with one key are one job, whatever they upload.
        const keyed = await Promise.all(
          [0, 1, 2].map(async (i) => {
            const request = buildRequest({
              manifest: { ...MANIFEST, targets: ['linux'] },
              credentials: CREDENTIALS,
              tarball: tarball(`keyed ${i}`),
              apiToken,
            });
            const res = await fetch(`${s.hub.url}/api/v1/build`, {
              ...request,
              headers: { ...request.headers, 'idempotency-key': 'release-7' },
            });
            expect(res.status).toBe(200);
            return ((await res.json()) as { job_id: string }).job_id;
          }),
        );
        expect(new Set(keyed).size).toBe(1);
        expect(await one(db, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 3 }]);
      } finally {
        await nc.close();
        await db.end();
      }
    });
  });

  test('a CLI whose first WebSocket connect failed, re-run: the same job and its artifact, charged once; delivered, the same submission builds again', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      try {
        await s.worker('linux', { name: 'kamatera-fra' });
        const apiToken = await s.hub.account('pro');
        const input = tarball('first connect failed');
        const jobId = await postOnly(s, input, apiToken);
        await until('the build to complete', async () => (await s.status(jobId)).status === 'completed');
        await until('the publish to be counted', async () => (await publishes(db)) === 1);

        const rerun = await cli(s, input, { apiToken });
        expect(rerun.reason).toBe('Ready');
        expect(rerun.jobId).toBe(jobId);
        expect(rerun.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
        // Recorded once the last byte left the hub.
        await until(
          'the download to be recorded',
          async () =>
            (await one(db, 'SELECT result_delivery FROM builds WHERE id = ?', [jobId]))[0]?.['result_delivery'] ===
            'delivered',
        );
        expect(await one(db, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 1 }]);
        // Charged once: give a second count the time it would take to arrive.
        await new Promise((r) => setTimeout(r, 1_000));
        expect(await publishes(db)).toBe(1);

        // The result was delivered: running the CLI again is a new build (and a new publish).
        const again = await cli(s, input, { apiToken });
        expect(again.reason).toBe('Ready');
        expect(again.jobId).not.toBe(jobId);
        await until('the second publish to be counted', async () => (await publishes(db)) === 2);
      } finally {
        await db.end();
      }
    });
  });

  test('a cut download: a plain GET of the same link succeeds, the re-run CLI gets the same job; a finished download is 404 after', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      try {
        // Big enough that the cut comes long before the last byte leaves the hub.
        const artifact = randomBytes(16 * MiB);
        await s.worker('linux', { name: 'kamatera-fra', script: () => ({ artifact }) });
        const apiToken = await s.hub.account('pro');
        const input = tarball('cut download');
        const first = await cli(s, input, { apiToken }, false);
        expect(first.reason).toBe('Ready');
        const ready = first.messages.find(ofType('artifact_ready')) as { download_url: string; sha256: string };
        expect(ready.sha256).toBe(sha256(artifact));

        expect(await cutDownload(ready.download_url, MiB)).toBeGreaterThanOrEqual(MiB);
        // The hub saw the cut and released the link at once (a retry does not wait for it).
        const token = ready.download_url.split('/').at(-1)!;
        await until(
          'the cut transfer released',
          async () => (await one(db, 'SELECT state FROM artifacts WHERE token = ?', [token]))[0]?.['state'] === 'fresh',
        );
        const retried = await fetch(ready.download_url);
        expect(retried.status).toBe(200);
        const body = sniffDownload(Buffer.from(await retried.arrayBuffer()));
        expect(sha256(body)).toBe(ready.sha256);
        const spent = await fetch(ready.download_url);
        expect(spent.status).toBe(404);
        expect(await spent.json()).toEqual(SPENT);

        // Cut again on a second build, then the user re-runs the CLI: same job, same bytes.
        const input2 = tarball('cut download, re-run');
        const second = await cli(s, input2, { apiToken }, false);
        const ready2 = second.messages.find(ofType('artifact_ready')) as { download_url: string };
        await cutDownload(ready2.download_url, MiB);
        const rerun = await cli(s, input2, { apiToken });
        expect(rerun.reason).toBe('Ready');
        expect(rerun.jobId).toBe(second.jobId);
        expect(sha256(rerun.artifact!.bytes)).toBe(sha256(artifact));
        expect((await fetch(ready2.download_url)).status).toBe(404);
        await until('both publishes to be counted', async () => (await publishes(db)) === 2);
        await new Promise((r) => setTimeout(r, 1_000));
        expect(await publishes(db)).toBe(2);
        expect(await one(db, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 2 }]);
      } finally {
        await db.end();
      }
    });
  });

  test('a result nobody fetched within its lifetime is marked unfetched, and the same submission builds again', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      const nc = await connectTestNats(natsUrl);
      try {
        await s.worker('linux', { name: 'kamatera-fra' });
        const apiToken = await s.hub.account('pro');
        const input = tarball('never fetched');
        const jobId = await postOnly(s, input, apiToken);
        await until('the build to complete', async () => (await s.status(jobId)).status === 'completed');
        const status = () => call(nc, subjects(prefix), jobStatusEndpoint, { jobId });
        expect(await status()).toEqual({ found: true, status: 'completed', position: 0, delivery: 'pending' });

        // The artifact-store's expiry pass, run as it would run once the links' lifetime is over.
        const blobs = await BlobStore.open(nc, topologyNames(prefix).blobsBucket);
        expect(await expireArtifacts({ db, blobs, now: () => Date.now() + 3_600_000 })).toBe(1);
        expect(await status()).toEqual({ found: true, status: 'completed', position: 0, delivery: 'unfetched' });
        expect((await one(db, 'SELECT result_delivery FROM builds WHERE id = ?', [jobId]))[0]).toEqual({
          result_delivery: 'unfetched',
        });

        // Nothing left to give: running the CLI again builds anew.
        const rerun = await cli(s, input, { apiToken });
        expect(rerun.reason).toBe('Ready');
        expect(rerun.jobId).not.toBe(jobId);
        expect(rerun.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
        await until(
          'the download to be recorded',
          async () =>
            (await call(nc, subjects(prefix), jobStatusEndpoint, { jobId: rerun.jobId! })).delivery === 'delivered',
        );
        expect(await call(nc, subjects(prefix), jobStatusEndpoint, { jobId: rerun.jobId! })).toEqual({
          found: true,
          status: 'completed',
          position: 0,
          delivery: 'delivered',
        });
      } finally {
        await nc.close();
        await db.end();
      }
    });
  });

  test('a free license at its hourly limit still gets the re-run of a build it was charged for, and nothing new', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      try {
        await s.worker('linux', { name: 'kamatera-fra' });
        const licenseKey = await s.hub.registerLicense();
        const inputs = [0, 1, 2, 3, 4].map((i) => tarball(`hourly ${i}`));
        const ids: string[] = [];
        for (const input of inputs) {
          const res = await post(s, input, { licenseKey });
          expect(res.status).toBe(200);
          ids.push(((await res.json()) as { job_id: string }).job_id);
        }
        const refused = await post(s, tarball('hourly 5'), { licenseKey });
        expect(refused.status).toBe(429);
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');

        // The fifth CLI run was cut after its 200: run again, it is that build, not a sixth.
        const rerun = await cli(s, inputs[4]!, { licenseKey });
        expect(rerun.reason).toBe('Ready');
        expect(rerun.jobId).toBe(ids[4]);
        expect(rerun.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', inputs[4]!));
        await until('the five publishes to be counted', async () => (await publishes(db)) === 5);
        expect(await one(db, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 5 }]);
        // Delivered now: the same submission again would be a new build, and the limit says no.
        expect((await post(s, inputs[4]!, { licenseKey })).status).toBe(429);
      } finally {
        await db.end();
      }
    });
  });

  test('a logged-in CLI (Bearer) at its hourly limit still gets the re-run of a build it was charged for, and nothing new', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      try {
        await s.worker('linux', { name: 'kamatera-fra' });
        const apiToken = await s.hub.account('free');
        const inputs = [0, 1, 2, 3, 4].map((i) => tarball(`bearer hourly ${i}`));
        const ids: string[] = [];
        for (const input of inputs) ids.push(await postOnly(s, input, apiToken));
        const refused = await post(s, tarball('bearer hourly 5'), { apiToken });
        expect(refused.status).toBe(429);
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');

        // Authorized before its upload, refused by the limit, yet the same build: the dedupe wins.
        const rerun = await cli(s, inputs[4]!, { apiToken });
        expect(rerun.reason).toBe('Ready');
        expect(rerun.jobId).toBe(ids[4]);
        expect(rerun.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', inputs[4]!));
        await until('the five publishes to be counted', async () => (await publishes(db)) === 5);
        expect(await one(db, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 5 }]);
        // The refused submissions reserved nothing.
        expect(await one(db, "SELECT COUNT(*) AS n FROM submissions WHERE state <> 'released'")).toEqual([{ n: 5 }]);
        // Delivered now: the same submission again is a new build, and the limit says no.
        const again = await post(s, inputs[4]!, { apiToken });
        expect(again.status).toBe(429);
        expect(((await again.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
      } finally {
        await db.end();
      }
    });
  });

  test('at the monthly quota, a re-run gets its build (Bearer and license key alike); a new project gets the quota error', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const db = openPool(dbOptions(database, 2));
      try {
        const apiToken = await s.hub.account('free');
        const licenseKey = await s.hub.registerLicense();
        const bearerInput = tarball('bearer quota');
        const keyInput = tarball('license quota');
        const bearerJob = await postOnly(s, bearerInput, apiToken);
        const keyRes = await post(s, keyInput, { licenseKey });
        expect(keyRes.status).toBe(200);
        const keyJob = ((await keyRes.json()) as { job_id: string }).job_id;
        // Both at the quota now: 15 publishes counted this month (the hourly limit is not the point).
        const now = new Date();
        const period = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
        const accountLicense = String(
          (await one(db, 'SELECT licenseKey FROM builds WHERE id = ?', [bearerJob]))[0]!['licenseKey'],
        );
        for (const key of [accountLicense, licenseKey]) {
          await db.query(
            `INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 15)
             ON DUPLICATE KEY UPDATE publishes = 15`,
            [key, period],
          );
        }
        const quota = await post(s, tarball('bearer quota, another project'), { apiToken });
        expect(quota.status).toBe(429);
        expect(((await quota.json()) as { error: { code: string } }).error.code).toBe('PUBLISH_LIMIT_REACHED');

        // No worker yet: both builds are still owed to their users.
        const bearerAgain = await post(s, bearerInput, { apiToken });
        expect(bearerAgain.status).toBe(200);
        expect(((await bearerAgain.json()) as { job_id: string }).job_id).toBe(bearerJob);
        const keyAgain = await post(s, keyInput, { licenseKey });
        expect(keyAgain.status).toBe(200);
        expect(((await keyAgain.json()) as { job_id: string }).job_id).toBe(keyJob);
        expect(await one(db, 'SELECT COUNT(*) AS n FROM builds')).toEqual([{ n: 2 }]);
      } finally {
        await db.end();
      }
    });
  });
});
