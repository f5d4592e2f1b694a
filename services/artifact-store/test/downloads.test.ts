// A download's life: claiming marks the token as in transfer; the transfer's end spends it or, cut,
// releases it; a transfer that died with its instance leaves it usable after a short wait, while a
// request racing a transfer that does finish finds the token spent.
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { claimDownloadEndpoint, finishDownloadEndpoint, subjects } from '@perry-hub/contracts';
import { type RowDataPacket } from '@perry-hub/db';
import { call } from '@perry-hub/runtime';
import { test } from '@perry-hub/testkit';
import { startArtifactStore } from './support.js';

describe('the end of a download', () => {
  test('a claim marks the token in transfer: a cut transfer releases it, a dead one leaves it usable, a finished one spends it, also for a racing request', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, close } = await startArtifactStore({ natsUrl, prefix, database });
    const s = subjects(prefix);
    try {
      const artifact = async () => {
        const token = randomUUID();
        await db.query(
          `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state, created_at, expires_at, announced)
           VALUES (?, ?, 1, ?, 'MyApp', 3, REPEAT('a', 64), 'linux', FALSE, 'fresh', ?, ?, TRUE)`,
          [token, randomUUID(), `artifacts/${token}`, Date.now(), Date.now() + 600_000],
        );
        return token;
      };
      const claim = (token: string) => call(nc, s, claimDownloadEndpoint, { token, resume: false });
      const finish = (token: string, step: 'sent' | 'released' | 'last-byte', objectName?: string) =>
        call(nc, s, finishDownloadEndpoint, { token, step, ...(objectName ? { objectName } : {}) });
      const state = async (token: string) =>
        String(
          (await db.query<RowDataPacket[]>('SELECT state FROM artifacts WHERE token = ?', [token]))[0][0]!['state'],
        );

      // Claimed, then cut: released, and the same link serves again.
      const cut = await artifact();
      expect(await claim(cut)).toMatchObject({ name: 'MyApp', size: 3 });
      expect(await state(cut)).toBe('spending');
      await finish(cut, 'released');
      expect(await state(cut)).toBe('fresh');
      expect(await claim(cut)).toMatchObject({ name: 'MyApp' });
      // Its transfer died with its instance (never finished): served again, after the wait.
      expect(await claim(cut)).toMatchObject({ name: 'MyApp' });
      expect(await state(cut)).toBe('spending');

      // A request arriving while a transfer is under way waits for its end: spent.
      const raced = await artifact();
      await claim(raced);
      const racing = claim(raced).then(
        () => 'served',
        (err: Error) => err.message,
      );
      await new Promise((r) => setTimeout(r, 200));
      await finish(raced, 'sent');
      expect(await racing).toMatch(/not found/i);
      expect(await state(raced)).toBe('done');
      await expect(claim(raced)).rejects.toThrow(/not found/i);
      // A late release (another transfer of it, cut) does not make a spent token usable again.
      await finish(raced, 'released');
      expect(await state(raced)).toBe('done');

      // Spent by the object its claim named (the row is not read again); another object's name
      // spends nothing.
      const named = await artifact();
      const { objectName } = await claim(named);
      await finish(named, 'sent', 'artifacts/other');
      expect(await state(named)).toBe('spending');
      await finish(named, 'sent', objectName);
      expect(await state(named)).toBe('done');

      // An ingest of an earlier version marks the transfer at its last byte.
      const older = await artifact();
      await finish(older, 'last-byte');
      expect(await state(older)).toBe('spending');
    } finally {
      await close();
    }
  });
});
