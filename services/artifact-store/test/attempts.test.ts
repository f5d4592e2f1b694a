// An upload recorded when the hub died before its artifact_ready was published: asking what the
// attempt delivered announces it (once, even when the earlier publish did happen), so a build
// completed from its upload never reaches its CLI without an artifact.
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import {
  attemptArtifactsEndpoint,
  registerArtifactEndpoint,
  subjects,
  topologyNames,
  type Subjects,
} from '@perry-hub/contracts';
import { type RowDataPacket } from '@perry-hub/db';
import { call, type NatsConnection } from '@perry-hub/runtime';
import { forgetMessageIds, test } from '@perry-hub/testkit';
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

      const events = await eventLog(nc, prefix, s, jobId);
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

describe('an artifact announced again', () => {
  test('is not stored twice where JetStream no longer remembers its id: a retried registration, a lost mark', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const s = subjects(prefix);
      // The ids' memory misses the first announcement, as a new cluster leader's does for an
      // append its predecessor proposed.
      const { forgotten } = await forgetMessageIds(nc, topologyNames(prefix).eventsStream);

      const jobId = randomUUID();
      await db.query("INSERT INTO builds (id, status, attempt) VALUES (?, 'running', 1)", [jobId]);
      const artifact = {
        objectName: `artifacts/${jobId}/${randomUUID()}`,
        name: 'MyApp',
        size: 3,
        sha256: 'ab'.repeat(32),
        target: 'linux',
      };
      const register = (retried: boolean) =>
        call(nc, s, registerArtifactEndpoint, {
          jobId,
          attempt: 1,
          artifact,
          whileRunning: true,
          ...(retried ? { retried } : {}),
        });
      const { token } = await register(false);
      await forgotten();
      // The ingest asks again, its first answer lost: the same token, announced once.
      expect((await register(true)).token).toBe(token);
      // Its mark not recorded (a crash): the attempt check announces it again, found stored.
      expect(await call(nc, s, attemptArtifactsEndpoint, { jobId, attempt: 1 })).toEqual({ announced: 1 });
      await db.query('UPDATE artifacts SET announced = FALSE WHERE token = ?', [token]);
      await forgotten();
      expect(await call(nc, s, attemptArtifactsEndpoint, { jobId, attempt: 1 })).toEqual({ announced: 1 });
      expect((await eventLog(nc, prefix, s, jobId)).map((e) => JSON.parse(e).download_url)).toEqual([
        `http://hub.test/api/v1/dl/${token}`,
      ]);

      // Without the search, the same announcement would be stored again here.
      await jetstream(nc).publish(s.jobEvents(jobId), '{}', { msgID: `artifact-ready:${token}` });
      expect(await eventLog(nc, prefix, s, jobId)).toHaveLength(2);
    } finally {
      await close();
    }
  });
});

/** A job's event log, as stored. */
async function eventLog(nc: NatsConnection, prefix: string, s: Subjects, jobId: string): Promise<string[]> {
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
  return events;
}
