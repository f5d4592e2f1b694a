// What interrupted intakes leave in the blobs bucket is swept once old enough; tarballs of
// recorded jobs and anything young are kept.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { topologyNames } from '@perry-hub/contracts';
import { dbOptions, openPool } from '@perry-hub/db';
import { BlobStore, launchService, loadConfig } from '@perry-hub/runtime';
import { test, connectTestNats, testNatsCredentialsDir } from '@perry-hub/testkit';
import { artifactStore, sweepOrphans } from '../src/index.js';

const log = pino({ level: 'silent' });

describe('orphan sweep', () => {
  test('removes unrecorded tarballs, unsubmitted uploads and unfinished chunks after the grace period', async ({
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
    };
    // The service ensures the bucket and migrates; its own timer is not what is tested here.
    const service = await launchService(artifactStore, loadConfig(artifactStore.config, env) as never, log);
    const nc = await connectTestNats(natsUrl);
    const db = openPool(dbOptions(database, 2));
    try {
      const bucket = topologyNames(prefix).blobsBucket;
      const blobs = await BlobStore.open(nc, bucket);
      const recorded = randomUUID();
      const lost = randomUUID();
      const upload = `uploads/${randomUUID()}`;
      await db.query("INSERT INTO builds (id, status) VALUES (?, 'queued')", [recorded]);
      for (const name of [`tarballs/${recorded}`, `tarballs/${lost}`, upload]) {
        await blobs.put(name, Readable.from([Buffer.from('data')]));
      }
      await jetstream(nc).publish(`$O.${bucket}.C.UNFINISHEDPUT`, Buffer.from('partial'));

      const deps = { db, blobs, jsm: await jetstreamManager(nc), log };
      expect(await sweepOrphans(deps, 30 * 60_000)).toEqual({ tarballs: 0, uploads: 0, chunkSets: 0 });
      const later = Date.now() + 31 * 60_000;
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({ tarballs: 1, uploads: 1, chunkSets: 1 });
      expect((await blobs.list()).map((o) => o.name)).toEqual([`tarballs/${recorded}`]);
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({ tarballs: 0, uploads: 0, chunkSets: 0 });
    } finally {
      await nc.close();
      await db.end();
      await service.stop();
    }
  });
});
