// Publish counting from job outcomes on the bus: synthetic `<p>.jobs.<id>.done` events stand in
// for the scheduler's.
import type { RowDataPacket } from '@perry-hub/db';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import {
  accountCreateEndpoint,
  accountGetEndpoint,
  accountUpdateEndpoint,
  authorizeSubmissionEndpoint,
  registerLicenseEndpoint,
  subjects,
  type JobDone,
} from '@perry-hub/contracts';
import { test, until } from '@perry-hub/testkit';
import { startLicense, type LicenseHarness } from './support.js';

function done(licenseKey: string, outcome: JobDone['outcome'], jobId = randomUUID()): JobDone {
  return { jobId, outcome, licenseKey, tier: 'free', targets: ['linux'], attempt: 1, finishedAt: Date.now() };
}

async function publishDone(h: LicenseHarness, prefix: string, event: JobDone | string, msgID?: string) {
  const data = typeof event === 'string' ? event : JSON.stringify(event);
  const jobId = typeof event === 'string' ? randomUUID() : event.jobId;
  await jetstream(h.nc).publish(subjects(prefix).jobDone(jobId), data, msgID ? { msgID } : undefined);
}

async function publishes(h: LicenseHarness, licenseKey: string): Promise<number> {
  const [rows] = await h.db.query<RowDataPacket[]>(
    'SELECT SUM(publishes) AS n FROM usage_counters WHERE license_key = ?',
    [licenseKey],
  );
  return Number((rows[0] as { n: unknown }).n ?? 0);
}

describe('usage counting', () => {
  test('counts only successful completions, each job once, and ignores malformed events', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const success = done(licenseKey, 'succeeded');
      await publishDone(h, prefix, success);
      await publishDone(h, prefix, '{"not":"a job outcome"}');
      await publishDone(h, prefix, 'not json');
      await publishDone(h, prefix, done(licenseKey, 'failed'));
      await publishDone(h, prefix, done(licenseKey, 'cancelled'));
      // The same job's outcome again (a redelivery, or a republished outbox entry).
      await publishDone(h, prefix, { ...success, finishedAt: success.finishedAt + 1 }, randomUUID());
      const last = done(licenseKey, 'succeeded');
      await publishDone(h, prefix, last);
      await until('the outcome counted once', async () => {
        const [rows] = await h.db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM usage_events WHERE job_id = ?', [
          last.jobId,
        ]);
        return Number((rows[0] as { n: unknown }).n) === 1;
      });
      expect(await publishes(h, licenseKey)).toBe(2);

      // The consumer is durable: a restarted service does not count the stream again.
      await h.service.stop();
      const again = await startLicense(natsUrl, prefix, database);
      try {
        await new Promise((r) => setTimeout(r, 300));
        expect(await publishes(again, licenseKey)).toBe(2);
      } finally {
        await again.close();
      }
    } finally {
      await h.close();
    }
  });

  test('an outcome with a pending reservation is settled and counted at once, and only once', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const jobs = [a, b, c] as const;
      for (const jobId of jobs) await h.call(authorizeSubmissionEndpoint, { jobId, licenseKey, projectId: 'com.app' });
      const state = async (jobId: string) =>
        (await h.db.query<RowDataPacket[]>('SELECT state, outcome FROM submissions WHERE job_id = ?', [jobId]))[0][0];
      // The first publish of the period makes its counter row (in the same CALL); the next ones update it.
      const first = done(licenseKey, 'succeeded', jobs[0]);
      await publishDone(h, prefix, first);
      await until('the first publish counted', async () => (await publishes(h, licenseKey)) === 1);
      const second = done(licenseKey, 'succeeded', jobs[1]);
      await publishDone(h, prefix, second);
      // Redelivered (a republished outbox entry), and a failure.
      await publishDone(h, prefix, { ...second, finishedAt: second.finishedAt + 1 }, randomUUID());
      await publishDone(h, prefix, done(licenseKey, 'failed', jobs[2]));
      await until('every reservation settled', async () => (await state(jobs[2]))?.['state'] === 'done');
      expect(await state(jobs[1])).toMatchObject({ state: 'done', outcome: 'succeeded' });
      expect(await state(jobs[2])).toMatchObject({ state: 'done', outcome: 'failed' });
      expect(await publishes(h, licenseKey)).toBe(2);
      // Settled in one statement, also the first of the period: no usage event was recorded (the
      // reservations are the record).
      const [events] = await h.db.query<RowDataPacket[]>('SELECT job_id FROM usage_events WHERE license_key = ?', [
        licenseKey,
      ]);
      expect(events).toEqual([]);
    } finally {
      await h.close();
    }
  });

  test('a failed first build gives up its project binding; a done build leaves the quota', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const jobId = randomUUID();
      await h.call(authorizeSubmissionEndpoint, { jobId, licenseKey, projectId: 'com.first' });
      await expect(
        h.call(authorizeSubmissionEndpoint, { jobId: randomUUID(), licenseKey, projectId: 'com.second' }),
      ).rejects.toMatchObject({ code: 'ACCOUNT_REQUIRED' });
      await publishDone(h, prefix, done(licenseKey, 'failed', jobId));
      await until('the usage counted', async () => {
        const [rows] = await h.db.query<RowDataPacket[]>('SELECT state FROM submissions WHERE job_id = ?', [jobId]);
        return (rows[0] as { state: string }).state === 'done';
      });
      const next = await h.call(authorizeSubmissionEndpoint, {
        jobId: randomUUID(),
        licenseKey,
        projectId: 'com.second',
      });
      expect(next.kind).toBe('accepted');
    } finally {
      await h.close();
    }
  });

  test('pro publishes above the quota are reported to Polar, once each', async ({ natsUrl, prefix, database }) => {
    const received: { auth: string | undefined; body: unknown }[] = [];
    const polar = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ auth: req.headers.authorization, body: JSON.parse(body) });
        res.writeHead(req.url === '/v1/events' ? 200 : 404).end('{}');
      });
    });
    await new Promise<void>((r) => polar.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(polar.address() as AddressInfo).port}`;
    const h = await startLicense(natsUrl, prefix, database, {
      POLAR_ACCESS_TOKEN: 'polar-token',
      POLAR_METER_PUBLISH: 'meter-1',
      POLAR_API_URL: url,
    });
    try {
      const account = await h.call(accountCreateEndpoint, { githubId: '7', githubUsername: 'pro-user' });
      await h.call(accountUpdateEndpoint, { accountId: account.id, tier: 'pro', polarCustomerId: 'cus_1' });
      const auth = await h.call(authorizeSubmissionEndpoint, {
        jobId: randomUUID(),
        apiToken: account.apiToken,
        projectId: 'x',
      });
      const licenseKey = (auth as { licenseKey: string }).licenseKey;
      const d = new Date();
      const period = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
      await h.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 49)', [
        licenseKey,
        period,
      ]);
      const fiftieth = { ...done(licenseKey, 'succeeded'), tier: 'pro' as const };
      const fiftyFirst = { ...done(licenseKey, 'succeeded'), tier: 'pro' as const };
      await publishDone(h, prefix, fiftieth);
      await publishDone(h, prefix, fiftyFirst);
      await publishDone(h, prefix, fiftyFirst, randomUUID());
      await until(
        'the alert and the count',
        async () => received.length >= 1 && (await publishes(h, licenseKey)) === 51,
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(received).toEqual([
        { auth: 'Bearer polar-token', body: { customer_id: 'cus_1', meter_id: 'meter-1', value: 1 } },
      ]);
      expect((await h.call(accountGetEndpoint, { apiToken: account.apiToken })).usage.publishes).toBe(51);
    } finally {
      await h.close();
      polar.close();
    }
  });
});
