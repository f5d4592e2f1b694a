// What interrupted intakes leave in the blobs bucket is swept once old enough; tarballs of
// recorded jobs and anything young are kept.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { topologyNames } from '@perry-hub/contracts';
import type { RowDataPacket } from '@perry-hub/db';
import { pino } from 'pino';
import { tapStreamRequests, test } from '@perry-hub/testkit';
import { expireArtifacts, sweepOrphans } from '../src/index.js';
import { startArtifactStore } from './support.js';

describe('sweeps', () => {
  test('removes unrecorded tarballs and artifacts, unsubmitted uploads, unfinished chunks and tombstones after the grace period', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, blobs, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const bucket = topologyNames(prefix).blobsBucket;
      const recorded = randomUUID();
      const lost = randomUUID();
      const upload = `uploads/${randomUUID()}`;
      await db.query("INSERT INTO builds (id, status) VALUES (?, 'queued')", [recorded]);
      const [kept, unrecorded] = [`artifacts/${recorded}/${randomUUID()}`, `artifacts/${lost}/${randomUUID()}`];
      await db.query(
        `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state, created_at, expires_at, announced)
         VALUES (?, ?, 1, ?, 'MyApp', 4, REPEAT('a', 64), 'linux', FALSE, 'fresh', ?, ?, TRUE)`,
        [randomUUID(), recorded, kept, Date.now(), Date.now() + 600_000],
      );
      for (const name of [`tarballs/${recorded}`, `tarballs/${lost}`, upload, kept, unrecorded]) {
        await blobs.put(name, Readable.from([Buffer.from('data')]), { fresh: true });
      }
      await jetstream(nc).publish(`$O.${bucket}.C.UNFINISHEDPUT`, Buffer.from('partial'));

      // Deleted by another client (or an earlier version): its tombstone stays in the bucket.
      await blobs.store.putBlob({ name: 'uploads/by-library' }, Buffer.from('data'));
      await blobs.store.delete('uploads/by-library');

      const deps = { db, blobs, jsm: await jetstreamManager(nc), log: pino({ level: 'silent' }) };
      const jsm = deps.jsm;
      const metas = async () =>
        Object.keys(
          (await jsm.streams.info(blobs.streamName, { subjects_filter: `$O.${bucket}.M.>` })).state.subjects ?? {},
        ).length;
      expect(await metas()).toBe(6);
      expect(await sweepOrphans(deps, 30 * 60_000)).toEqual({
        tarballs: 0,
        uploads: 0,
        artifacts: 0,
        chunkSets: 0,
        tombstones: 1,
      });
      expect(await metas()).toBe(5);
      const later = Date.now() + 31 * 60_000;
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({
        tarballs: 1,
        uploads: 1,
        artifacts: 1,
        chunkSets: 1,
        tombstones: 0,
      });
      expect((await blobs.list()).map((o) => o.name).sort()).toEqual([kept, `tarballs/${recorded}`].sort());
      // Nothing is left of what went: the two kept objects' meta records and chunk sets.
      expect(await metas()).toBe(2);
      const chunkSets = await jsm.streams.info(blobs.streamName, { subjects_filter: `$O.${bucket}.C.>` });
      expect(Object.keys(chunkSets.state.subjects ?? {})).toHaveLength(2);
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({
        tarballs: 0,
        uploads: 0,
        artifacts: 0,
        chunkSets: 0,
        tombstones: 0,
      });
    } finally {
      await close();
    }
  });

  test('held intermediates stay while their job may read them, and go once it ended', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { db, blobs, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const waiting = randomUUID();
      const ended = randomUUID();
      await db.query("INSERT INTO builds (id, status) VALUES (?, 'queued'), (?, 'completed')", [waiting, ended]);
      for (const jobId of [waiting, ended]) {
        const objectName = `artifacts/${jobId}/precompiled`;
        await blobs.put(objectName, Readable.from([Buffer.from('bundle')]), { fresh: true });
        await db.query(
          `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state, created_at, expires_at, announced)
           VALUES (?, ?, 1, ?, 'bundle', 6, REPEAT('a', 64), 'windows-precompiled', TRUE, 'fresh', ?, ?, FALSE)`,
          [randomUUID(), jobId, objectName, Date.now(), Date.now() - 1],
        );
      }
      // Held ones are not counted as expired, whatever their expiry says.
      expect(await expireArtifacts({ db, blobs })).toBe(0);
      const [rows] = await db.query<RowDataPacket[]>('SELECT job_id FROM artifacts');
      expect(rows.map((r) => r['job_id'])).toEqual([waiting]);
      expect((await blobs.list()).map((o) => o.name)).toEqual([`artifacts/${waiting}/precompiled`]);
    } finally {
      await close();
    }
  });
  test('expiry: an expired link goes with its bytes (one purge, no read); spent ones go in one statement, without a message, and bytes whose delete failed go with the sweep', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { nc, db, blobs, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const artifact = async (state: string, expiresAt: number, bytes: 'kept' | 'deleted') => {
        const jobId = randomUUID();
        const objectName = `artifacts/${jobId}/${randomUUID()}`;
        // As the ingest stores artifacts: under a fresh name.
        await blobs.put(objectName, Readable.from([Buffer.from('app')]), { fresh: true });
        if (bytes === 'deleted') await blobs.delete(objectName);
        await db.query(
          `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state, created_at, expires_at, announced)
           VALUES (?, ?, 1, ?, 'MyApp', 3, REPEAT('a', 64), 'linux', FALSE, ?, ?, ?, TRUE)`,
          [randomUUID(), jobId, objectName, state, Date.now(), expiresAt],
        );
        return objectName;
      };
      const expired = await artifact('fresh', Date.now() - 1, 'kept');
      const spentLeft = await artifact('done', Date.now() + 600_000, 'kept'); // its delete had failed
      const spentGone = await artifact('done', Date.now() + 600_000, 'deleted'); // as spending does
      const live = await artifact('fresh', Date.now() + 600_000, 'kept');
      // The pass's requests to the bucket's stream: reads (direct or not) and purges.
      const tap = await tapStreamRequests(natsUrl, blobs.streamName);
      try {
        const { result, requests } = await tap.during(() => expireArtifacts({ db, blobs }));
        expect(result).toBe(3);
        expect(requests).toEqual(['STREAM.PURGE']);
      } finally {
        await tap.close();
      }
      const jsm = await jetstreamManager(nc);
      const [rows] = await db.query<RowDataPacket[]>('SELECT object_name FROM artifacts');
      expect(rows.map((r) => r['object_name'])).toEqual([live]);
      for (const gone of [expired, spentGone]) expect(await blobs.info(gone)).toBeNull();
      expect(await blobs.info(live)).not.toBeNull();
      // The spent one whose delete had failed: no row names it, so the sweep takes it once old.
      expect(await blobs.info(spentLeft)).not.toBeNull();
      const later = Date.now() + 31 * 60_000;
      const swept = await sweepOrphans({ db, blobs, jsm, log: pino({ level: 'silent' }) }, 30 * 60_000, later);
      expect(swept).toMatchObject({ artifacts: 1 });
      expect(await blobs.info(spentLeft)).toBeNull();
    } finally {
      await close();
    }
  });
});
