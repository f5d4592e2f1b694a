// Reservations never outlive their request: past its deadline, or as soon as the instance that
// held its request is dead, a pending reservation whose job row never appeared is released (and
// its project binding undone); one with a job, or whose request may still be running, is kept.
import type { RowDataPacket } from '@perry-hub/db';
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { authorizeSubmissionEndpoint, registerLicenseEndpoint } from '@perry-hub/contracts';
import { test } from '@perry-hub/testkit';
import { releaseDeadReservations } from '../src/reservations.js';
import { startLicense } from './support.js';

const GRACE_MS = 900_000;

describe('reservation sweep', () => {
  test('releases a dead submission after its deadline, never one with a job or still in time', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    // The service's own sweep runs at start; the one under test is called with a moved clock.
    const h = await startLicense(natsUrl, prefix, database, { PERRY_HUB_RESERVATION_SWEEP_SECS: '3600' });
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: 'sweep' });
      const reserve = async (holdMs: number) => {
        const jobId = randomUUID();
        await h.call(authorizeSubmissionEndpoint, { jobId, licenseKey, projectId: 'com.example.app', holdMs });
        return jobId;
      };
      const dead = await reserve(5_000);
      const recorded = await reserve(5_000);
      const slow = await reserve(600_000);
      await h.db.query("INSERT INTO builds (id, licenseKey, status, queuedAt) VALUES (?, ?, 'queued', ?)", [
        recorded,
        licenseKey,
        Date.now(),
      ]);
      const state = async (jobId: string) => {
        const [rows] = await h.db.query<RowDataPacket[]>('SELECT state FROM submissions WHERE job_id = ?', [jobId]);
        return rows[0]?.['state'];
      };
      const bound = async () => {
        const [rows] = await h.db.query<RowDataPacket[]>(
          'SELECT project_bundle_id FROM licenses WHERE licenseKey = ?',
          [licenseKey],
        );
        return rows[0]?.['project_bundle_id'];
      };
      expect(await bound()).toBe('com.example.app');

      // Before any deadline: nothing goes.
      expect(await releaseDeadReservations(h.db, GRACE_MS)).toBe(0);
      // Past the short deadlines: only the one without a job.
      expect(await releaseDeadReservations(h.db, GRACE_MS, Date.now() + 60_000)).toBe(1);
      expect([await state(dead), await state(recorded), await state(slow)]).toEqual(['released', 'pending', 'pending']);
      // The job-less slow one, once its own deadline passed too; its binding is then undone only
      // if nothing else holds it (the recorded job still does).
      expect(await releaseDeadReservations(h.db, GRACE_MS, Date.now() + 700_000)).toBe(1);
      expect(await state(slow)).toBe('released');
      expect(await bound()).toBe('com.example.app');
      expect(await releaseDeadReservations(h.db, GRACE_MS, Date.now() + 700_000)).toBe(0);
    } finally {
      await h.close();
    }
  });

  test('releases at once the reservations of a dead instance without a job, and only those', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const h = await startLicense(natsUrl, prefix, database, { PERRY_HUB_RESERVATION_SWEEP_SECS: '3600' });
    try {
      const { licenseKey } = await h.call(registerLicenseEndpoint, { githubUsername: 'instances' });
      const reserve = async (instanceId: string) => {
        const jobId = randomUUID();
        await h.call(authorizeSubmissionEndpoint, {
          jobId,
          licenseKey,
          projectId: 'com.example.app',
          holdMs: 600_000,
          instanceId,
        });
        return jobId;
      };
      const orphan = await reserve('ingest-dead');
      const recorded = await reserve('ingest-dead');
      const alive = await reserve('ingest-live');
      await h.db.query("INSERT INTO builds (id, licenseKey, status, queuedAt) VALUES (?, ?, 'queued', ?)", [
        recorded,
        licenseKey,
        Date.now(),
      ]);
      const state = async (jobId: string) => {
        const [rows] = await h.db.query<RowDataPacket[]>('SELECT state FROM submissions WHERE job_id = ?', [jobId]);
        return rows[0]?.['state'];
      };
      const dead = (id: string) => id === 'ingest-dead';
      expect(await releaseDeadReservations(h.db, GRACE_MS, Date.now(), dead)).toBe(1);
      expect([await state(orphan), await state(recorded), await state(alive)]).toEqual([
        'released',
        'pending',
        'pending',
      ]);
      expect(await releaseDeadReservations(h.db, GRACE_MS, Date.now(), dead)).toBe(0);
    } finally {
      await h.close();
    }
  });
});
