// What interrupted intakes leave in the blobs bucket is swept once old enough; tarballs of
// recorded jobs and anything young are kept.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { topologyNames } from '@perry-hub/contracts';
import type { RowDataPacket } from '@perry-hub/db';
import { pino } from 'pino';
import { connectTestNats, test } from '@perry-hub/testkit';
import { expireArtifacts, sweepOrphans } from '../src/index.js';
import { startArtifactStore } from './support.js';

describe('sweeps', () => {
  test('removes unrecorded tarballs, unsubmitted uploads and unfinished chunks after the grace period', async ({
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
      for (const name of [`tarballs/${recorded}`, `tarballs/${lost}`, upload]) {
        await blobs.put(name, Readable.from([Buffer.from('data')]));
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
      expect(await metas()).toBe(4);
      expect(await sweepOrphans(deps, 30 * 60_000)).toEqual({ tarballs: 0, uploads: 0, chunkSets: 0, tombstones: 1 });
      expect(await metas()).toBe(3);
      const later = Date.now() + 31 * 60_000;
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({
        tarballs: 1,
        uploads: 1,
        chunkSets: 1,
        tombstones: 0,
      });
      expect((await blobs.list()).map((o) => o.name)).toEqual([`tarballs/${recorded}`]);
      // Nothing is left of what went: one meta record, one chunk set.
      expect(await metas()).toBe(1);
      expect(await sweepOrphans(deps, 30 * 60_000, later)).toEqual({
        tarballs: 0,
        uploads: 0,
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
        await blobs.put(objectName, Readable.from([Buffer.from('bundle')]));
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
  test('expiry: an expired link and a spent one go with their bytes and leave no record; a spent one costs one purge and no read', async ({
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
      const tap = await connectTestNats(natsUrl);
      const requests: string[] = [];
      tap.subscribe('$JS.API.>', {
        callback: (_e, m) => {
          const tokens = m.subject.split('.');
          const at = tokens.indexOf(blobs.streamName);
          if (at > 0) requests.push(tokens.slice(2, at).join('.'));
        },
      });
      await tap.flush();
      try {
        expect(await expireArtifacts({ db, blobs })).toBe(3);
        await tap.flush();
        // The expired link's object is read (its chunk id) and purged; each spent one is purged.
        expect(requests.sort()).toEqual(['DIRECT.GET', 'STREAM.PURGE', 'STREAM.PURGE', 'STREAM.PURGE']);
      } finally {
        await tap.close();
      }
      // Nothing of the three is left in the stream, not even a tombstone.
      const jsm = await jetstreamManager(nc);
      const left = await jsm.streams.info(blobs.streamName, { subjects_filter: '>' });
      expect(Object.keys(left.state.subjects ?? {})).toHaveLength(2); // the live one's chunk and meta
      const [rows] = await db.query<RowDataPacket[]>('SELECT object_name FROM artifacts');
      expect(rows.map((r) => r['object_name'])).toEqual([live]);
      for (const gone of [expired, spentLeft, spentGone]) expect(await blobs.info(gone)).toBeNull();
      expect(await blobs.info(live)).not.toBeNull();
    } finally {
      await close();
    }
  });
});
