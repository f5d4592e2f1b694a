// The per-build decisions in one CALL each decide what the service's transaction would, and refer
// every refusal to it (so they can never accept what it refuses): called directly here, against
// the database the service migrated.
import { randomUUID } from 'node:crypto';
import type { RowDataPacket } from '@perry-hub/db';
import { describe, expect } from 'vitest';
import { registerLicenseEndpoint } from '@perry-hub/contracts';
import { test } from '@perry-hub/testkit';
import { periodOf } from '../src/keys.js';
import { authorizeByProcedure, settleByProcedure, type Procedures } from '../src/procedures.js';
import { startLicense } from './support.js';

const MiB = 1024 * 1024;
const OPTIONS = { selfHosted: false, inFlightGraceMs: 60_000 };

describe('license procedures', () => {
  test('authorize by license key in one CALL: accepted, duplicate, invalid, and refer for every refusal', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    const procs: Procedures = { usable: true };
    const now = Date.now();
    const period = periodOf(now);
    const authorize = (request: Parameters<typeof authorizeByProcedure>[2], options = OPTIONS) =>
      authorizeByProcedure(procs, h.db, request, options, period, now);
    const submission = async (jobId: string) =>
      (
        await h.db.query<RowDataPacket[]>(
          'SELECT license_key, state, bound_project, expires_at, instance_id FROM submissions WHERE job_id = ?',
          [jobId],
        )
      )[0][0];
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const first = randomUUID();
      expect(
        await authorize({ jobId: first, licenseKey, projectId: 'com.app', instanceId: 'ingest-1', holdMs: 5_000 }),
      ).toEqual({
        kind: 'accepted',
        licenseKey,
        tier: 'free',
        priority: 1,
        accountId: null,
        limits: { maxUploadBytes: 50 * MiB, concurrentBuilds: 1, hourlySubmissions: 5, monthlyPublishes: 15 },
      });
      expect(await submission(first)).toEqual({
        license_key: licenseKey,
        state: 'pending',
        bound_project: 1,
        expires_at: now + 5_000,
        instance_id: 'ingest-1',
      });
      const [bound] = await h.db.query<RowDataPacket[]>('SELECT project_bundle_id FROM licenses WHERE licenseKey = ?', [
        licenseKey,
      ]);
      expect(bound[0]).toEqual({ project_bundle_id: 'com.app' });

      // Only the whole, exact key: the collation would match other letter case.
      for (const near of [licenseKey.toLowerCase(), `${licenseKey} `, 'FREE-0000']) {
        await expect(authorize({ jobId: randomUUID(), licenseKey: near, projectId: 'com.app' })).rejects.toMatchObject({
          code: 'LICENSE_INVALID',
        });
      }
      // Refusals reserve nothing and bind nothing: the transaction words them.
      const refused = [
        { projectId: 'com.other' },
        { projectId: 'COM.APP' },
        { projectId: 'com.app', declaredBytes: 50 * MiB + 1 },
        { projectId: 'com.app', apiToken: 'token' },
      ];
      for (const r of refused) expect(await authorize({ jobId: randomUUID(), licenseKey, ...r })).toBe('refer');

      // Idempotency keys match exactly.
      const built = randomUUID();
      await h.db.query("INSERT INTO builds (id, licenseKey, status, idempotency_key) VALUES (?, ?, 'queued', 'k1')", [
        built,
        licenseKey,
      ]);
      expect(await authorize({ jobId: randomUUID(), licenseKey, projectId: 'com.app', idempotencyKey: 'k1' })).toEqual({
        kind: 'duplicate',
        jobId: built,
        licenseKey,
      });
      // The hourly limit (5): four more, then refer.
      for (let i = 0; i < 3; i++) {
        expect(await authorize({ jobId: randomUUID(), licenseKey, projectId: 'com.app' })).toMatchObject({
          kind: 'accepted',
        });
      }
      expect(
        await authorize({ jobId: randomUUID(), licenseKey, projectId: 'com.app', idempotencyKey: 'K1' }),
      ).toMatchObject({ kind: 'accepted' });
      expect(await authorize({ jobId: randomUUID(), licenseKey, projectId: 'com.app' })).toBe('refer');
      // Self-hosted: no limit, no binding.
      expect(
        await authorize({ jobId: randomUUID(), licenseKey, projectId: 'com.other' }, { ...OPTIONS, selfHosted: true }),
      ).toMatchObject({ kind: 'accepted' });

      // The monthly quota counts builds in flight: 14 publishes and one pending reach 15.
      const quota = await h.call(registerLicenseEndpoint, { githubUsername: null });
      await h.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 14)', [
        quota.licenseKey,
        period,
      ]);
      const last = randomUUID();
      expect(await authorize({ jobId: last, licenseKey: quota.licenseKey, projectId: 'p' })).toMatchObject({
        kind: 'accepted',
      });
      expect(await authorize({ jobId: randomUUID(), licenseKey: quota.licenseKey, projectId: 'p' })).toBe('refer');
      const [pending] = await h.db.query<RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM submissions WHERE license_key = ?',
        [quota.licenseKey],
      );
      expect(Number(pending[0]!['n'])).toBe(1);

      // Settling: the first publish of the period creates its counter row; once per job.
      const fresh = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const job = randomUUID();
      await authorize({ jobId: job, licenseKey: fresh.licenseKey, projectId: 'p' });
      expect(await settleByProcedure(procs, h.db, job, fresh.licenseKey, period)).toBe(true);
      expect(await settleByProcedure(procs, h.db, job, fresh.licenseKey, period)).toBe(false);
      expect(await settleByProcedure(procs, h.db, last, fresh.licenseKey, period)).toBe(false);
      expect(await settleByProcedure(procs, h.db, last, quota.licenseKey, period)).toBe(true);
      const [counters] = await h.db.query<RowDataPacket[]>(
        'SELECT license_key, publishes FROM usage_counters WHERE license_key IN (?) ORDER BY publishes',
        [[fresh.licenseKey, quota.licenseKey]],
      );
      expect(counters).toEqual([
        { license_key: fresh.licenseKey, publishes: 1 },
        { license_key: quota.licenseKey, publishes: 15 },
      ]);
      expect(await submission(job)).toMatchObject({ state: 'done' });
      // Every decision above was the procedures' own.
      expect(procs.usable).toBe(true);

      // Without the procedures (a user who may not create routines), everything is referred.
      await h.db.query('DROP PROCEDURE perry_settle_publish');
      const orphan = randomUUID();
      await authorize({ jobId: orphan, licenseKey: fresh.licenseKey, projectId: 'p' });
      expect(await settleByProcedure(procs, h.db, orphan, fresh.licenseKey, period)).toBe(false);
      expect(procs.usable).toBe(false);
      expect(await authorize({ jobId: randomUUID(), licenseKey: fresh.licenseKey, projectId: 'p' })).toBe('refer');
      expect(await submission(orphan)).toMatchObject({ state: 'pending' });
    } finally {
      await h.close();
    }
  });
});
