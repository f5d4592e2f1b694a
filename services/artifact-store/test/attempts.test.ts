// An upload recorded when the hub died before its artifact_ready was published: asking what the
// attempt delivered announces it (once, even when the earlier publish did happen), so a build
// completed from its upload never reaches its CLI without an artifact.
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { attemptArtifactsEndpoint, subjects, topologyNames } from '@perry-hub/contracts';
import { type RowDataPacket } from '@perry-hub/db';
import { call } from '@perry-hub/runtime';
import { test } from '@perry-hub/testkit';
import { startArtifactStore } from './support.js';

describe('what an attempt delivered', () => {
  test('an artifact recorded but never announced is announced when its attempt is looked at, once', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const jobId = randomUUID();
      const insert = (token: string, attempt: number, held: boolean) =>
        db.query(
          `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state, created_at, expires_at, announced)
           VALUES (?, ?, ?, ?, 'MyApp', 3, 'abc', ?, ?, 'fresh', ?, ?, FALSE)`,
          [
            token,
            jobId,
            attempt,
            `artifacts/${token}`,
            held ? 'windows-precompiled' : 'linux',
            held,
            Date.now(),
            Date.now() + 600_000,
          ],
        );
      const token = randomUUID();
      await insert(token, 2, false);
      await insert(randomUUID(), 2, true);
      const s = subjects(prefix);
      const ask = (attempt: number) => call(nc, s, attemptArtifactsEndpoint, { jobId, attempt });
      expect(await ask(1)).toEqual({ announced: 0 });
      expect(await ask(2)).toEqual({ announced: 1 });
      expect(await ask(2)).toEqual({ announced: 1 });
      const [rows] = await db.query<RowDataPacket[]>('SELECT announced FROM artifacts WHERE token = ?', [token]);
      expect(Boolean(rows[0]!['announced'])).toBe(true);

      const events: string[] = [];
      const consumer = await jetstream(nc).consumers.get(topologyNames(prefix).eventsStream, {
        filter_subjects: [s.jobEvents(jobId)],
      });
      for (;;) {
        const m = await consumer.next({ expires: 1000 });
        if (!m) break;
        events.push(new TextDecoder().decode(m.data));
        if (m.info.pending === 0) break;
      }
      expect(events).toHaveLength(1);
      expect(JSON.parse(events[0]!)).toMatchObject({
        type: 'artifact_ready',
        job_id: jobId,
        artifact_name: 'MyApp',
        download_url: `http://hub.test/api/v1/dl/${token}`,
      });
    } finally {
      await close();
    }
  });
});
