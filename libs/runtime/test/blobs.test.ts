import { createHash, randomBytes } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { headers } from '@nats-io/nats-core';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { test, connectTestNats, tapStreamRequests } from '@perry-hub/testkit';
import { base64Decoder, base64Encoder, BlobStore, gzipCheck, type ObjectInfo } from '../src/index.js';

/** Feed `data` in random-sized chunks (including 1-byte ones) through a transform. */
async function through(transform: Transform, data: Buffer, maxChunk = 7): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length;) {
    const size = 1 + Math.floor(Math.random() * maxChunk);
    parts.push(data.subarray(i, i + size));
    i += size;
  }
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), transform, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

describe('base64 transforms', () => {
  it('decode whatever the chunking, padded or not, ignoring line breaks', async () => {
    for (const size of [0, 1, 2, 3, 4, 5, 100, 4099]) {
      const data = randomBytes(size);
      const text = data.toString('base64');
      expect(await through(base64Decoder(), Buffer.from(text))).toEqual(data);
      expect(await through(base64Decoder(), Buffer.from(text.replace(/=+$/, '')))).toEqual(data);
      const wrapped = text.replace(/(.{76})/g, '$1\r\n');
      expect(await through(base64Decoder(), Buffer.from(wrapped), 300)).toEqual(data);
    }
  });

  it('refuse anything but the standard alphabet, naming the offset', async () => {
    const cases: [string, number][] = [
      ['QUJD$EVG', 4],
      ['QUJD-_VG', 4],
      ['QQ==QUJD', 4],
      ['Q===', 1],
      ['QQ=A', 3],
      ['=QUJ', 0],
    ];
    for (const [text, offset] of cases) {
      await expect(through(base64Decoder(), Buffer.from(text), 3)).rejects.toMatchObject({
        code: 'BAD_REQUEST',
        message: `Invalid base64 at offset ${offset}`,
      });
    }
    await expect(through(base64Decoder(), Buffer.from('QUJDR'))).rejects.toThrow(/Invalid base64/);
    // Large chunks (the fast path) find the offset too.
    const big = Buffer.from(randomBytes(300_000).toString('base64'));
    big[123_457] = 0x24;
    await expect(through(base64Decoder(), big, 65_536)).rejects.toThrow('Invalid base64 at offset 123457');
    await expect(through(base64Decoder(), Buffer.from('QQ='))).rejects.toThrow(/Invalid base64/);
  });

  it('encode to what Buffer encodes, whatever the chunking', async () => {
    // Up to 300,001 bytes a chunk: several 48 KiB slices each, with groups carried across chunks.
    for (const size of [0, 1, 2, 3, 1000, 65537, 300_001]) {
      const data = randomBytes(size);
      for (const maxChunk of [7, 5000, 300_001]) {
        if (maxChunk === 7 && size > 65537) continue;
        expect((await through(base64Encoder(), data, maxChunk)).toString()).toBe(data.toString('base64'));
      }
    }
  });
});

describe('gzipCheck', () => {
  it('passes gzip through unchanged and refuses anything else', async () => {
    const gz = gzipSync(randomBytes(1000));
    expect(await through(gzipCheck(), gz, 1)).toEqual(gz);
    await expect(through(gzipCheck(), Buffer.from('plain text, not gzip'))).rejects.toThrow(/not gzip/);
    await expect(through(gzipCheck(), Buffer.from([0x1f]))).rejects.toThrow(/not gzip/);
    await expect(through(gzipCheck(), Buffer.alloc(0))).rejects.toThrow(/not gzip/);
  });
});

async function read(blobs: BlobStore, name: string): Promise<Buffer> {
  const found = await blobs.get(name);
  const parts: Buffer[] = [];
  for await (const chunk of found!.stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** A fresh bucket of its own, opened as the services open theirs. */
async function openBlobs(natsUrl: string, prefix: string) {
  const nc = await connectTestNats(natsUrl);
  const bucket = `${prefix}-blobs`;
  await new Objm(nc).create(bucket);
  return { nc, bucket, blobs: await BlobStore.open(nc, bucket) };
}

describe('BlobStore', () => {
  test('streams in and out with the digest checked; limits and aborts leave nothing visible', async ({
    natsUrl,
    prefix,
  }) => {
    const { nc, bucket, blobs } = await openBlobs(natsUrl, prefix);
    try {
      const data = randomBytes(5 * 1024 * 1024 + 17);
      const info = await blobs.put('tarballs/a', Readable.from([data.subarray(0, 1000), data.subarray(1000)]), {
        metadata: { kind: 'tarball' },
      });
      expect(info.size).toBe(data.length);
      // Chunks of 512 KiB; more than 4 are read through a consumer.
      expect(info.chunks).toBe(Math.ceil(data.length / (512 * 1024)));
      expect(info.chunks).toBeGreaterThan(4);
      const got = await blobs.get('tarballs/a');
      const hash = createHash('sha256');
      for await (const chunk of got!.stream) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      expect(await blobs.get('missing')).toBeNull();

      // What the library's put wrote, get reads (and a second put replaces the first).
      const small = randomBytes(1000);
      await blobs.store.putBlob({ name: 'by-library' }, small);
      expect(await read(blobs, 'by-library')).toEqual(small);
      await blobs.put('by-library', Readable.from([data]));
      expect((await read(blobs, 'by-library')).equals(data)).toBe(true);
      await blobs.delete('by-library');

      // Decoding on the way in.
      const b64 = Buffer.from(gzipSync(Buffer.from('hello')).toString('base64'));
      await blobs.put('tarballs/b', Readable.from([b64]), { through: [base64Decoder(), gzipCheck()] });
      expect((await blobs.info('tarballs/b'))!.size).toBe(gzipSync(Buffer.from('hello')).length);

      // Too large: refused mid-stream, nothing visible, no chunks left behind.
      await expect(
        blobs.put('tarballs/c', Readable.from([randomBytes(600_000), randomBytes(600_000)]), { maxBytes: 1_000_000 }),
      ).rejects.toMatchObject({ code: 'UPLOAD_TOO_LARGE' });
      expect(await blobs.info('tarballs/c')).toBeNull();
      const controller = new AbortController();
      const slow = new Readable({ read() {} });
      slow.push(randomBytes(300_000));
      const aborted = blobs.put('tarballs/d', slow, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('client went away')), 50);
      await expect(aborted).rejects.toThrow('client went away');
      expect(await blobs.info('tarballs/d')).toBeNull();

      // Rename keeps the bytes and the metadata.
      await blobs.rename('tarballs/a', 'tarballs/renamed');
      expect(await blobs.info('tarballs/a')).toBeNull();
      const renamed = await blobs.info('tarballs/renamed');
      expect(renamed).toMatchObject({ size: data.length, metadata: { kind: 'tarball' } });
      expect((await read(blobs, 'tarballs/renamed')).equals(data)).toBe(true);
      expect((await blobs.list('tarballs/')).map((o) => o.name).sort()).toEqual(['tarballs/b', 'tarballs/renamed']);

      // Failed puts purged their chunks: only the two live objects' chunks (and metas) remain.
      const jsm = await jetstreamManager(nc);
      const si = await jsm.streams.info(blobs.streamName, { subjects_filter: `${blobs.chunkSubjectPrefix}>` });
      expect(Object.keys(si.state.subjects ?? {}).sort()).toEqual(
        (await blobs.list()).map((o) => `${blobs.chunkSubjectPrefix}${o.nuid}`).sort(),
      );
      // Another client reads what put wrote (the Object Store's own format and digest).
      expect(Buffer.from((await blobs.store.getBlob('tarballs/renamed'))!).equals(data)).toBe(true);
      expect(await blobs.delete('tarballs/renamed')).toBe(true);
      expect(await blobs.info('tarballs/renamed')).toBeNull();

      // A small object put under a fresh name is read back without its meta record, and is gone
      // for this instance too once another one deleted it.
      const fresh = randomBytes(2_000);
      await blobs.put('artifacts/fresh', Readable.from([fresh]), { fresh: true });
      const other = await BlobStore.open(nc, bucket);
      expect(await read(blobs, 'artifacts/fresh')).toEqual(fresh);
      expect(await other.delete('artifacts/fresh')).toBe(true);
      expect(await blobs.get('artifacts/fresh')).toBeNull();

      // Deleted by a caller that read it (its chunk id known): gone, chunks and all.
      const known = await blobs.put('artifacts/known', Readable.from([fresh]), { fresh: true });
      expect(await other.delete('artifacts/known', { nuid: known.nuid })).toBe(true);
      expect(await blobs.info('artifacts/known')).toBeNull();
      expect(await blobs.get('artifacts/known')).toBeNull();
      const left = await jsm.streams.info(blobs.streamName, {
        subjects_filter: `${blobs.chunkSubjectPrefix}${known.nuid}`,
      });
      expect(left.state.subjects ?? {}).toEqual({});
    } finally {
      await nc.close();
    }
  });

  test('a corrupt object fails its reader before the reader has it whole', async ({ natsUrl, prefix }) => {
    const { nc, bucket, blobs } = await openBlobs(natsUrl, prefix);
    try {
      const jsm = await jetstreamManager(nc);
      // The object's meta record rewritten with the digest of other bytes: what a reader sees of
      // chunks that are no longer what was put.
      const corrupt = async (name: string) => {
        const token = Buffer.from(name).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
        const subject = `$O.${bucket}.M.${token}`;
        const meta = (await jsm.streams.getMessage(blobs.streamName, { last_by_subj: subject }))!.json<ObjectInfo>();
        const other = createHash('sha256').update('other bytes').digest('base64url');
        const rollup = headers();
        rollup.set('Nats-Rollup', 'sub');
        await jetstream(nc).publish(subject, JSON.stringify({ ...meta, digest: `SHA-256=${other}=` }), {
          headers: rollup,
        });
      };
      const reader = await BlobStore.open(nc, bucket);

      // Streamed (more than 4 chunks): the stream fails, and its last chunk never comes.
      const large = randomBytes(3 * 1024 * 1024 + 5);
      await blobs.put('artifacts/large', Readable.from([large]));
      await corrupt('artifacts/large');
      const found = await reader.get('artifacts/large');
      let received = 0;
      await expect(
        (async () => {
          for await (const chunk of found!.stream) received += (chunk as Buffer).length;
        })(),
      ).rejects.toThrow(/corrupt object/);
      expect(received).toBe(large.length - (large.length % (512 * 1024)));

      // Read whole (at most 4 chunks): the open fails, before any byte.
      await blobs.put('artifacts/small', Readable.from([randomBytes(100_000)]));
      await corrupt('artifacts/small');
      await expect(reader.get('artifacts/small')).rejects.toThrow(/corrupt object/);
    } finally {
      await nc.close();
    }
  });

  test('deletes leave no record; an object put under a fresh name goes with one purge, unread', async ({
    natsUrl,
    prefix,
  }) => {
    const { nc, bucket, blobs } = await openBlobs(natsUrl, prefix);
    try {
      const jsm = await jetstreamManager(nc);
      const stored = async () =>
        Object.keys((await jsm.streams.info(blobs.streamName, { subjects_filter: '>' })).state.subjects ?? {}).sort();
      const tap = await tapStreamRequests(natsUrl, blobs.streamName);
      const counted = tap.during;

      // Fresh, larger than one chunk: one purge takes its chunks and its meta record.
      const data = randomBytes(1_200_000);
      await blobs.put('tarballs/job-1', Readable.from([data]), { fresh: true });
      expect(await stored()).toHaveLength(2);
      expect(await counted(() => blobs.purgeNamed('tarballs/job-1'))).toEqual({
        result: 4,
        requests: ['STREAM.PURGE'],
      });
      expect(await stored()).toEqual([]);
      expect(await blobs.get('tarballs/job-1')).toBeNull();
      // Gone already: nothing purged, still one request.
      expect(await blobs.purgeNamed('tarballs/job-1')).toBe(0);

      // The same name put again after its delete is stored afresh (no message id deduplicates it).
      const again = randomBytes(1_000);
      await blobs.put('tarballs/job-1', Readable.from([again]), { fresh: true });
      expect(await read(await BlobStore.open(nc, bucket), 'tarballs/job-1')).toEqual(again);
      // Deleted knowing its chunk id: one purge; without it: a read and one purge.
      const known = await blobs.info('tarballs/job-1');
      expect(await counted(() => blobs.delete('tarballs/job-1', { nuid: known!.nuid }))).toEqual({
        result: true,
        requests: ['STREAM.PURGE'],
      });
      await blobs.put('artifacts/a', Readable.from([again]), { fresh: true });
      expect(await counted(() => blobs.delete('artifacts/a'))).toEqual({
        result: true,
        requests: ['DIRECT.GET', 'STREAM.PURGE'],
      });
      expect(await blobs.delete('artifacts/a')).toBe(false);
      expect(await stored()).toEqual([]);

      // Written by another client (its own chunk id): its chunks and its meta record, no tombstone.
      await blobs.store.putBlob({ name: 'uploads/by-library' }, again);
      expect(await counted(() => blobs.delete('uploads/by-library'))).toEqual({
        result: true,
        requests: ['DIRECT.GET', 'STREAM.PURGE', 'STREAM.PURGE'],
      });
      expect(await stored()).toEqual([]);

      // Renamed to a name: purging the name takes its meta record only (1); its chunks are left
      // for the sweep of chunks no object names.
      await blobs.store.putBlob({ name: 'uploads/renamed' }, again);
      await blobs.rename('uploads/renamed', 'tarballs/job-2');
      const chunks = `${blobs.chunkSubjectPrefix}${(await blobs.info('tarballs/job-2'))!.nuid}`;
      expect(await blobs.purgeNamed('tarballs/job-2')).toBe(1);
      expect(await stored()).toEqual([chunks]);

      // A tombstone read by `entries` is purged up to its own sequence: an object put under the
      // same name since stays.
      await blobs.store.putBlob({ name: 'uploads/again' }, again);
      await blobs.store.delete('uploads/again');
      const [tombstone] = (await blobs.entries()).filter((o) => o.name === 'uploads/again');
      expect(tombstone).toMatchObject({ deleted: true });
      await blobs.put('uploads/again', Readable.from([data]), { fresh: true });
      await blobs.dropTombstone(tombstone!);
      expect((await read(blobs, 'uploads/again')).equals(data)).toBe(true);
      await blobs.delete('uploads/again');
      await blobs.store.putBlob({ name: 'uploads/tombstoned-too' }, again);
      await blobs.store.delete('uploads/tombstoned-too');
      const [other] = (await blobs.entries()).filter((o) => o.deleted);
      await blobs.dropTombstone(other!);
      expect(await stored()).toEqual([chunks]);
      expect(await blobs.entries()).toEqual([]);

      // A tombstone the library (and earlier versions) wrote goes when its name is deleted.
      await blobs.store.putBlob({ name: 'uploads/tombstoned' }, again);
      await blobs.store.delete('uploads/tombstoned');
      expect(await stored()).toHaveLength(2);
      expect(await blobs.delete('uploads/tombstoned')).toBe(false);
      expect(await stored()).toEqual([chunks]);
      await tap.close();
    } finally {
      await nc.close();
    }
  });
});
