// An upload authorized by the grant its worker was given for the tarball (not asked again) is
// recorded only while that attempt of the job runs, by its builds row: a worker whose job was
// released, reassigned or ended records nothing. One the scheduler authorized is recorded for
// the job's attempt only: a job assigned again since fences out the old attempt's upload.
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { HubError, registerArtifactEndpoint, subjects } from '@perry-hub/contracts';
import type { RowDataPacket } from '@perry-hub/db';
import { call } from '@perry-hub/runtime';
import { test } from '@perry-hub/testkit';
import { startArtifactStore } from './support.js';

describe('register-artifact whileRunning', () => {
  test("records for the running attempt only; a released, reassigned or ended attempt gets JOB_NOT_RUNNING; without whileRunning, for the job's attempt only", async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const s = subjects(prefix);
      const jobId = randomUUID();
      await db.query("INSERT INTO builds (id, status, attempt) VALUES (?, 'running', 2)", [jobId]);
      const register = (attempt: number, whileRunning: boolean) =>
        call(nc, s, registerArtifactEndpoint, {
          jobId,
          attempt,
          artifact: {
            objectName: `artifacts/${jobId}/${randomUUID()}`,
            name: 'MyApp',
            size: 3,
            sha256: 'ab'.repeat(32),
            target: '',
          },
          ...(whileRunning ? { whileRunning: true as const } : {}),
        });
      const refusal = async (attempt: number, whileRunning = true) => {
        const err = await register(attempt, whileRunning).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(HubError);
        return (err as HubError).code;
      };
      const recorded = async () =>
        (
          await db.query<RowDataPacket[]>('SELECT attempt FROM artifacts WHERE job_id = ? ORDER BY attempt', [jobId])
        )[0].map((r) => Number(r['attempt']));

      expect((await register(2, true)).token).toMatch(/^[0-9a-f-]{36}$/);
      // The attempt before (its job since reassigned): refused, nothing recorded.
      expect(await refusal(1)).toBe('JOB_NOT_RUNNING');
      // Released (back in the queue) or ended: refused.
      await db.query("UPDATE builds SET status = 'queued' WHERE id = ?", [jobId]);
      expect(await refusal(2)).toBe('JOB_NOT_RUNNING');
      await db.query("UPDATE builds SET status = 'completed' WHERE id = ?", [jobId]);
      expect(await refusal(2)).toBe('JOB_NOT_RUNNING');
      expect(await recorded()).toEqual([2]);
      // Asked without it (the scheduler authorized the upload just before), it records as before,
      // for the job's attempt only: one assigned again since fences out the old attempt.
      await register(2, false);
      expect(await recorded()).toEqual([2, 2]);
      expect(await refusal(1, false)).toBe('JOB_NOT_RUNNING');
      expect(await recorded()).toEqual([2, 2]);
      // Each with the stage of the job it was recorded in.
      const [stages] = await db.query<RowDataPacket[]>('SELECT DISTINCT stage FROM artifacts WHERE job_id = ?', [
        jobId,
      ]);
      expect(stages.map((r) => r['stage'])).toEqual(['build']);
    } finally {
      await close();
    }
  });
});
