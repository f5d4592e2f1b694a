// Licenses, accounts and submission authorization through the license service's endpoints,
// against a real nats-server and MariaDB.
import type { RowDataPacket } from '@perry-hub/db';
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import {
  accountCreateEndpoint,
  accountGetEndpoint,
  accountUpdateEndpoint,
  authorizeSubmissionEndpoint,
  registerLicenseEndpoint,
  releaseSubmissionEndpoint,
  verifyLicenseEndpoint,
} from '@perry-hub/contracts';
import { test } from '@perry-hub/testkit';
import { startLicense, type LicenseHarness } from './support.js';

const MiB = 1024 * 1024;

function submit(h: LicenseHarness, who: { licenseKey?: string; apiToken?: string }, extra: object = {}) {
  return h.call(authorizeSubmissionEndpoint, { jobId: randomUUID(), projectId: 'com.example.app', ...who, ...extra });
}

function period(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

describe('license service', () => {
  test('registers device-bound free licenses with 128-bit keys and verifies them exactly', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const lic = await h.call(registerLicenseEndpoint, { githubUsername: 'octo' });
      expect(lic.licenseKey).toMatch(/^FREE(-[0-9A-F]{4}){8}$/);
      expect(lic).toMatchObject({ tier: 'free', platforms: ['macos'] });
      const other = await h.call(registerLicenseEndpoint, { githubUsername: null });
      expect(other.licenseKey).not.toBe(lic.licenseKey);
      expect(await h.call(verifyLicenseEndpoint, { licenseKey: lic.licenseKey })).toEqual({
        valid: true,
        tier: 'free',
        platforms: ['macos'],
      });
      // MySQL's collation would match these; the whole, exact key is required.
      for (const near of [lic.licenseKey.toLowerCase(), `${lic.licenseKey} `, lic.licenseKey.slice(0, -1), '']) {
        expect(await h.call(verifyLicenseEndpoint, { licenseKey: near })).toEqual({
          valid: false,
          tier: null,
          platforms: null,
        });
      }
      const [rows] = await h.db.query('SELECT device_bound, githubUsername FROM licenses WHERE licenseKey = ?', [
        lic.licenseKey,
      ]);
      expect(rows).toEqual([{ device_bound: 1, githubUsername: 'octo' }]);
    } finally {
      await h.close();
    }
  });

  test('binds a device license to one project; refuses unknown keys and oversized uploads', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const ok = await submit(h, { licenseKey }, { declaredBytes: 50 * MiB });
      expect(ok).toMatchObject({ kind: 'accepted', licenseKey, tier: 'free', priority: 1, accountId: null });
      expect(ok).toHaveProperty('limits', {
        maxUploadBytes: 50 * MiB,
        concurrentBuilds: 1,
        hourlySubmissions: 5,
        monthlyPublishes: 15,
      });
      await expect(submit(h, { licenseKey }, { projectId: 'com.example.other' })).rejects.toMatchObject({
        code: 'ACCOUNT_REQUIRED',
        message:
          "Free device licenses support one project. Run 'perry login' to create an account and publish multiple projects.",
        details: { login_url: 'https://app.perryts.com/cli/authorize' },
      });
      await expect(submit(h, { licenseKey: 'FREE-0000-0000-0000' })).rejects.toMatchObject({
        code: 'LICENSE_INVALID',
        message: 'Invalid license key',
      });
      await expect(submit(h, { licenseKey }, { declaredBytes: 50 * MiB + 1 })).rejects.toMatchObject({
        code: 'UPLOAD_TOO_LARGE',
        message: 'Tarball too large: the free tier allows 50 MiB',
      });

      // A binding whose only submission was released is undone.
      const fresh = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const first = await submit(h, { licenseKey: fresh.licenseKey }, { projectId: 'com.one' });
      expect(first.kind).toBe('accepted');
      const [sub] = await h.db.query<RowDataPacket[]>('SELECT job_id FROM submissions WHERE license_key = ?', [
        fresh.licenseKey,
      ]);
      const jobId = (sub[0] as { job_id: string }).job_id;
      expect(await h.call(releaseSubmissionEndpoint, { jobId })).toEqual({ released: true });
      expect(await h.call(releaseSubmissionEndpoint, { jobId })).toEqual({ released: false });
      expect((await submit(h, { licenseKey: fresh.licenseKey }, { projectId: 'com.two' })).kind).toBe('accepted');
    } finally {
      await h.close();
    }
  });

  test('hourly limit and monthly quota, counted in MySQL, with builds in flight', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const accepted = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => submit(h, { licenseKey }).catch((e) => e)));
      expect(accepted.filter((a) => a.kind === 'accepted')).toHaveLength(5);
      expect(accepted.filter((a) => a.code === 'RATE_LIMITED')).toHaveLength(2);
      expect(accepted.find((a) => a.code)).toMatchObject({ message: 'Hourly build limit reached (5 per hour)' });
      // Released submissions do not count.
      const [rows] = await h.db.query<RowDataPacket[]>('SELECT job_id FROM submissions LIMIT 1');
      await h.call(releaseSubmissionEndpoint, { jobId: (rows[0] as { job_id: string }).job_id });
      expect((await submit(h, { licenseKey })).kind).toBe('accepted');

      // Monthly quota: 15 publishes counted.
      const quota = await h.call(registerLicenseEndpoint, { githubUsername: null });
      await h.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 15)', [
        quota.licenseKey,
        period(),
      ]);
      await expect(submit(h, { licenseKey: quota.licenseKey })).rejects.toMatchObject({
        code: 'PUBLISH_LIMIT_REACHED',
        message: `You've used 15/15 free publishes this month. Resets on the 1st. Run 'perry login' to upgrade to Pro ($19/mo, 50 publishes).`,
        details: { usage: { publishes: 15, limit: 15, period: period() } },
      });

      // 14 counted plus one accepted build in flight reach the quota too (no overshoot).
      const busy = await h.call(registerLicenseEndpoint, { githubUsername: null });
      await h.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 14)', [
        busy.licenseKey,
        period(),
      ]);
      expect((await submit(h, { licenseKey: busy.licenseKey })).kind).toBe('accepted');
      await expect(submit(h, { licenseKey: busy.licenseKey })).rejects.toMatchObject({ code: 'PUBLISH_LIMIT_REACHED' });

      // Asked to, the limits answer instead of failing (the submission may be a retry), and
      // reserve nothing: the caller decides once it knows the tarball.
      const before = await h.db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM submissions');
      expect(await submit(h, { licenseKey: quota.licenseKey }, { deferLimits: true })).toEqual({
        kind: 'limited',
        licenseKey: quota.licenseKey,
        error: {
          code: 'PUBLISH_LIMIT_REACHED',
          message: expect.stringContaining('15/15') as unknown,
          details: { usage: { publishes: 15, limit: 15, period: period() } },
        },
      });
      expect(await submit(h, { licenseKey }, { deferLimits: true })).toMatchObject({
        kind: 'limited',
        licenseKey,
        error: { code: 'RATE_LIMITED', message: 'Hourly build limit reached (5 per hour)' },
      });
      const after = await h.db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM submissions');
      expect(after[0]).toEqual(before[0]);
    } finally {
      await h.close();
    }
  });

  test('accounts: API tokens, tier sync onto licenses, pro overage allowed, usage view', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const created = await h.call(accountCreateEndpoint, { githubId: '42', githubUsername: 'octo', email: 'o@x.io' });
      expect(created).toMatchObject({ githubUsername: 'octo', tier: 'free', created: true });
      expect(created.apiToken).toMatch(/^[0-9a-f]{64}$/);
      const again = await h.call(accountCreateEndpoint, { githubId: '42', githubUsername: 'octo' });
      expect(again).toEqual({ ...created, created: false });

      const auth = await submit(h, { apiToken: created.apiToken });
      expect(auth).toMatchObject({ kind: 'accepted', tier: 'free', accountId: created.id });
      const licenseKey = (auth as { licenseKey: string }).licenseKey;
      // Account licenses are not device-bound: any project.
      expect((await submit(h, { apiToken: created.apiToken }, { projectId: 'other' })).kind).toBe('accepted');
      await expect(submit(h, { apiToken: `${created.apiToken}x` })).rejects.toMatchObject({
        code: 'AUTH_INVALID',
        message: 'Invalid API token',
      });

      await expect(h.call(accountUpdateEndpoint, { accountId: randomUUID() })).rejects.toMatchObject({
        code: 'NOT_FOUND',
        message: 'Account not found',
      });
      await h.call(accountUpdateEndpoint, { accountId: created.id, tier: 'pro', hasPaymentMethod: true });
      expect(await h.call(verifyLicenseEndpoint, { licenseKey })).toEqual({
        valid: true,
        tier: 'pro',
        platforms: ['macos', 'ios', 'android', 'windows', 'linux'],
      });
      await h.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 60)', [
        licenseKey,
        period(),
      ]);
      // Pro with an account may exceed the quota (billed as overage).
      expect(await submit(h, { apiToken: created.apiToken }, { declaredBytes: 200 * MiB })).toMatchObject({
        kind: 'accepted',
        tier: 'pro',
        priority: 10,
      });
      expect(await h.call(accountGetEndpoint, { apiToken: created.apiToken })).toEqual({
        id: created.id,
        githubUsername: 'octo',
        email: 'o@x.io',
        tier: 'pro',
        hasPaymentMethod: true,
        usage: { publishes: 60, publishLimit: 50, deepVerifies: 0, verifyLimit: 20, period: period() },
      });
      await expect(h.call(accountGetEndpoint, { apiToken: '' })).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    } finally {
      await h.close();
    }
  });

  test('an idempotency key already used by a build returns that job', async ({ natsUrl, prefix, database }) => {
    const h = await startLicense(natsUrl, prefix, database);
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      const jobId = randomUUID();
      await h.db.query("INSERT INTO builds (id, licenseKey, status, idempotency_key) VALUES (?, ?, 'queued', 'k1')", [
        jobId,
        licenseKey,
      ]);
      expect(await submit(h, { licenseKey }, { idempotencyKey: 'k1' })).toEqual({
        kind: 'duplicate',
        jobId,
        licenseKey,
      });
      expect((await submit(h, { licenseKey }, { idempotencyKey: 'K1' })).kind).toBe('accepted');
    } finally {
      await h.close();
    }
  });

  test('self-hosted: no quota, no hourly limit, no device binding; licenses still required', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database, { PERRY_HUB_SELF_HOSTED: 'true' });
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: null });
      await h.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 99)', [
        licenseKey,
        period(),
      ]);
      for (let i = 0; i < 7; i++) {
        expect((await submit(h, { licenseKey }, { projectId: `com.p${i}` })).kind).toBe('accepted');
      }
      await expect(submit(h, { licenseKey: 'nope' })).rejects.toMatchObject({ code: 'LICENSE_INVALID' });
    } finally {
      await h.close();
    }
  });
});
