// The end of a download, around its last byte: a transfer that dies between marking its last byte
// and sending it leaves the token usable (after a short wait), while a request racing a transfer
// that does finish finds the token spent.
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { claimDownloadEndpoint, finishDownloadEndpoint, subjects } from '@perry-hub/contracts';
import { type RowDataPacket } from '@perry-hub/db';
import { call } from '@perry-hub/runtime';
import { test } from '@perry-hub/testkit';
import { startArtifactStore } from './support.js';

describe('the end of a download', () => {
  test('at its last byte a cut transfer leaves the token usable; a finished one spends it, also for a racing request', async ({
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
      const state = async (token: string) =>
        String(
          (await db.query<RowDataPacket[]>('SELECT state FROM artifacts WHERE token = ?', [token]))[0][0]!['state'],
        );

      // Claiming spends nothing: the same link serves again.
      const cut = await artifact();
      expect(await claim(cut)).toMatchObject({ name: 'MyApp', size: 3 });
      expect(await claim(cut)).toMatchObject({ name: 'MyApp' });
      // Marked at its last byte, then its instance died: served again, after the wait.
      await call(nc, s, finishDownloadEndpoint, { token: cut, step: 'last-byte' });
      expect(await state(cut)).toBe('spending');
      expect(await claim(cut)).toMatchObject({ name: 'MyApp' });

      // A request arriving while a transfer is at its last byte waits for it: spent.
      const raced = await artifact();
      await call(nc, s, finishDownloadEndpoint, { token: raced, step: 'last-byte' });
      const racing = claim(raced).then(
        () => 'served',
        (err: Error) => err.message,
      );
      await new Promise((r) => setTimeout(r, 200));
      await call(nc, s, finishDownloadEndpoint, { token: raced, step: 'sent' });
      expect(await racing).toMatch(/not found/i);
      expect(await state(raced)).toBe('done');
      await expect(claim(raced)).rejects.toThrow(/not found/i);

      // Spent by the object its claim named (the row is not read again); another object's name
      // spends nothing.
      const named = await artifact();
      await call(nc, s, finishDownloadEndpoint, { token: named, step: 'sent', objectName: 'artifacts/other' });
      expect(await state(named)).toBe('fresh');
      const { objectName } = await claim(named);
      await call(nc, s, finishDownloadEndpoint, { token: named, step: 'sent', objectName });
      expect(await state(named)).toBe('done');
    } finally {
      await close();
    }
  });
});
