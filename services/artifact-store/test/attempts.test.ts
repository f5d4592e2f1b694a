// An upload recorded when the hub died before its artifact_ready was published: asking what the
// attempt delivered announces it (once, even when the earlier publish did happen), so a build
// completed from its upload never reaches its CLI without an artifact.
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { jetstream } from '@nats-io/jetstream';
import { attemptArtifactsEndpoint, subjects, topologyFor, topologyNames } from '@perry-hub/contracts';
import { dbOptions, openPool, type RowDataPacket } from '@perry-hub/db';
import { call, ensureTopology, launchService, loadConfig } from '@perry-hub/runtime';
import { test, connectTestNats, testNatsCredentialsDir } from '@perry-hub/testkit';
import { artifactStore } from '../src/index.js';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

describe('what an attempt delivered', () => {
  test('an artifact recorded but never announced is announced when its attempt is looked at, once', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = {
      PERRY_HUB_NATS_URL: natsUrl,
      PERRY_HUB_NATS_CREDENTIALS_DIR: testNatsCredentialsDir(),
      PERRY_HUB_SUBJECT_PREFIX: prefix,
      PERRY_DB_HOST: database.host,
      PERRY_DB_PORT: String(database.port),
      PERRY_DB_USER: database.user,
      PERRY_DB_PASSWORD: database.password,
      PERRY_DB_NAME: database.database,
      PERRY_HUB_PUBLIC_URL: 'http://hub.test',
    };
    const service = await launchService(artifactStore, loadConfig(artifactStore.config, env) as never, log);
    const nc = await connectTestNats(natsUrl);
    // The job's event log, as the scheduler ensures it.
    await ensureTopology(nc, topologyFor(prefix, 'scheduler'));
    const db = openPool(dbOptions(database, 2));
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
      await nc.close();
      await db.end();
      await service.stop();
    }
  });
});
