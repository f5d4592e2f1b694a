// What interrupted intakes leave in the blobs bucket is swept once old enough; tarballs of
// recorded jobs and anything young are kept.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { topologyNames } from '@perry-hub/contracts';
import { BlobStore } from '@perry-hub/runtime';
import { pino } from 'pino';
import { test } from '@perry-hub/testkit';
import { sweepOrphans } from '../src/index.js';
import { startArtifactStore } from './support.js';

describe('orphan sweep', () => {
  test('removes unrecorded tarballs, unsubmitted uploads and unfinished chunks after the grace period', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, close } = await startArtifactStore({ natsUrl, prefix, database });
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

      const deps = { db, blobs, jsm: await jetstreamManager(nc), log: pino({ level: 'silent' }) };
      expect(await sweepOrphans(deps, 30 * 60_000)).toEqual({ tarballs: 0, uploads: 0, chunkSets: 0 });
      const later = Date.now() + 31 * 60_000;
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({ tarballs: 1, uploads: 1, chunkSets: 1 });
      expect((await blobs.list()).map((o) => o.name)).toEqual([`tarballs/${recorded}`]);
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({ tarballs: 0, uploads: 0, chunkSets: 0 });
    } finally {
      await close();
    }
  });
});
