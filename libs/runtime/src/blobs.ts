/**
 * Bytes in the JetStream Object Store, always streamed (never a whole object in memory).
 * - `put` (Node Readable in, byte limit, transforms, abort signal) writes the Object Store's own
 *   format, readable by any client, with several chunks in flight and no extra copies (the
 *   library's put awaits each ack and copies each chunk twice: half the throughput). The meta
 *   record comes last, so an interrupted put (even kill -9) leaves no visible object, only
 *   orphaned chunks (`${chunkSubjectPrefix}<nuid>` that no object names), for the owner to sweep.
 * - `get` reads a small object chunk by chunk with direct gets (one request each, no consumer,
 *   no stream info), a larger one through a pull consumer (a slow reader slows the transfer
 *   instead of buffering it, unlike the library's push-based `get`), and checks the digest
 *   before it hands on the last chunk.
 * - Meta records are read with a direct get too: the library's `info` goes through the
 *   JetStream API, which answers from the stream leader and emits an advisory per call. A small
 *   object this instance has just put is read back without its meta record (RECENT_TTL_MS).
 * - `delete` purges instead of writing a tombstone, so deleted objects leave no record behind.
 *   An object put under a fresh name has its name's token as its chunk id: one purge removes
 *   it whole, without reading it first (`purgeNamed`).
 * - Transforms: base64 decoding and encoding (a partial group is carried across chunks), a gzip
 *   magic check and a byte limit.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { headers, nuid, type NatsConnection } from '@nats-io/nats-core';
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StoredMsg,
} from '@nats-io/jetstream';
import { Objm, setSha256Backend, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import { HubError } from '@perry-hub/contracts';
import { publishRetrying, unconfirmedDuplicate } from './retry.js';

export type { ObjectInfo } from '@nats-io/obj';

export interface PutOptions {
  /** Fail with `tooLarge()` (default UPLOAD_TOO_LARGE) as soon as more bytes than this arrive. */
  maxBytes?: number;
  tooLarge?: (maxBytes: number) => Error;
  /** Transforms applied in order before storing (e.g. base64Decoder(), gzipCheck()). */
  through?: readonly Transform[];
  signal?: AbortSignal;
  metadata?: Record<string, string>;
  /** Chunk size in the stream (default 512 KiB); capped by the server's max payload. */
  chunkBytes?: number;
  /**
   * The name is new (it holds a fresh id): no earlier object's chunks to remove, so the put
   * does not look for one. Were there one, its chunks would be left to the orphan sweep.
   */
  fresh?: boolean;
}

/**
 * Chunks of 512 KiB. Chunks of nearly the server's max payload (1 MiB - 4 KiB) halved the
 * messages per object and took about a fifth off the CPU of puts under `sync_interval: always`,
 * but tripled the hub's CPU per MiB of a download (measured; the likely cause: the NATS client
 * assembles a message longer than a socket read in a buffer it doubles as it fills, which for
 * such a chunk ends at 2 MiB).
 */
const DEFAULT_CHUNK_BYTES = 512 * 1024;
const CHUNKS_IN_FLIGHT = 2;
/**
 * What a read through a consumer asks JetStream for ahead of its reader, in bytes of chunks (it
 * was 8 chunks, 4 MiB): enough that the next pull is answered before the reader has used up the
 * last one, and a bound on what a slow reader holds. With 16 MiB, a 64 MiB artifact's download
 * took about a quarter less hub CPU per MiB and ran faster (`npm run bench -- dispatch`).
 */
const GET_PREFETCH_BYTES = 16 * 1024 * 1024;
/**
 * Objects of at most this many chunks are read with one direct get per chunk: a consumer costs a
 * stream info, a consumer creation (and its advisory) and its deletion before the first byte,
 * more than a few chunks' round trips; past it, the consumer's prefetch wins.
 */
const DIRECT_GET_MAX_CHUNKS = 4;
/**
 * What a put of a small object under a fresh name wrote is remembered this long (and for at most
 * RECENT_MAX objects), so that reading it back (a worker's tarball, a CLI's artifact, often
 * within seconds of the put on the same instance) does not first read its meta record.
 */
const RECENT_TTL_MS = 10 * 60_000;
const RECENT_MAX = 1_000;

/** The Object Store's encoding of names and digests: base64url with padding. */
const base64urlPadded = (data: Buffer) => data.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
/** An object's name as the last token of its meta subject (`$O.<bucket>.M.<token>`). */
const nameToken = (name: string) => base64urlPadded(Buffer.from(name));

/** A SHA-256 as the Object Store writes it in `ObjectInfo.digest` (what `put` returns). */
export const blobDigest = (sha256: Buffer): string => `SHA-256=${base64urlPadded(sha256)}`;

/**
 * Publishes `body` as chunks of `chunkBytes` with up to CHUNKS_IN_FLIGHT acks outstanding. On
 * failure it waits for what is in flight, so that a purge afterwards catches every chunk.
 *
 * A chunk JetStream did not take (a leader election, this client's server cut off from the
 * cluster) is sent again, for as long as `publishRetrying` waits, but only once the chunk before
 * it is stored, so chunks stay in order; each carries a message id, so one stored whose ack was
 * lost is not stored twice, and one JetStream leaves unconfirmed (see `unconfirmedDuplicate`) is
 * looked for after the chunk before it (`storedAfter`). The stream sequences in the acks prove
 * the order at the end.
 */
async function writeChunks(
  js: JetStreamClient,
  subject: string,
  msgIdPrefix: string,
  chunkBytes: number,
  body: Readable,
  storedAfter: (subject: string, seq: number) => Promise<number | undefined>,
) {
  const hash = createHash('sha256');
  const inFlight = new Set<Promise<unknown>>();
  const sequences: number[] = [];
  let previous: Promise<unknown> = Promise.resolve();
  let [size, chunks, pendingBytes, pending] = [0, 0, 0, [] as Buffer[]];
  const send = async (chunk: Buffer) => {
    hash.update(chunk);
    const index = chunks;
    [size, chunks] = [size + chunk.length, chunks + 1];
    const msgID = `${msgIdPrefix}.${index}`;
    const before = previous;
    const confirmed = (ack: PubAck) => {
      if (unconfirmedDuplicate(ack)) throw new Error(`chunk ${index} of ${subject} not confirmed`);
      return ack;
    };
    const ack = js
      .publish(subject, chunk, { msgID })
      .then(confirmed)
      .catch(async () => {
        await before;
        const stored = () => storedAfter(subject, index === 0 ? 0 : sequences[index - 1]!);
        return publishRetrying(js, subject, chunk, { msgID, stored });
      });
    const stored = ack.then((a) => (sequences[index] = a.seq));
    previous = stored;
    inFlight.add(stored);
    stored.then(() => inFlight.delete(stored)).catch(() => undefined);
    if (inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(inFlight);
  };
  try {
    for await (const data of body) {
      pending.push(data as Buffer);
      pendingBytes += (data as Buffer).length;
      while (pendingBytes >= chunkBytes) {
        const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        await send(all.subarray(0, chunkBytes));
        pending = all.length > chunkBytes ? [all.subarray(chunkBytes)] : [];
        pendingBytes -= chunkBytes;
      }
    }
    if (pendingBytes > 0) await send(Buffer.concat(pending, pendingBytes));
    await Promise.all(inFlight);
    await previous;
  } catch (err) {
    await Promise.allSettled(inFlight);
    throw err;
  }
  if (sequences.some((seq, i) => i > 0 && seq <= sequences[i - 1]!))
    throw new Error(`the chunks of ${subject} were stored out of order after a retry`);
  return { size, chunks, digest: `SHA-256=${base64urlPadded(hash.digest())}` };
}

export class BlobStore {
  /** Small objects this instance put under fresh names, by name, oldest first (RECENT_TTL_MS). */
  private readonly recent = new Map<string, { info: ObjectInfo; at: number }>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    readonly bucket: string,
    readonly store: ObjectStore,
  ) {}

  /** Opens an existing bucket (the topology creates it). Selects the native SHA-256 first. */
  static async open(nc: NatsConnection, bucket: string): Promise<BlobStore> {
    // Process-wide and idempotent: the pure-JS default hashes 25 times slower.
    setSha256Backend('native');
    const store = await new Objm(nc).open(bucket);
    return new BlobStore(nc, await jetstreamManager(nc), bucket, store);
  }

  /** The JetStream stream behind the bucket, and the subjects of its chunks. */
  get streamName(): string {
    return `OBJ_${this.bucket}`;
  }
  get chunkSubjectPrefix(): string {
    return `$O.${this.bucket}.C.`;
  }
  private readonly purge = (filter: string) =>
    this.jsm.streams.purge(this.streamName, { filter }).catch(() => undefined);

  /** Store `source` under `name` (replacing an object of that name once complete). */
  async put(name: string, source: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    let failure: unknown;
    const stages = [source, ...(options.through ?? []), byteLimit(options.maxBytes ?? Infinity, options.tooLarge)];
    // The last stage, whose error is the first failure of any stage (kept to be rethrown).
    const body = (pipeline as (...s: unknown[]) => Readable)(...stages, (err: unknown) => (failure ??= err));
    const onAbort = () => body.destroy(options.signal?.reason ?? new Error('aborted'));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // Under a fresh name the chunks take the name's own token as their id, so that one purge
    // (`$O.<bucket>.*.<token>`) removes chunks and meta record together (`delete`). Message ids
    // are this put's own whatever the chunk id, so a later put of the name is not deduplicated.
    const id = options.fresh ? nameToken(name) : nuid.next();
    const putId = nuid.next();
    const maxPayload = this.nc.info?.max_payload ?? DEFAULT_CHUNK_BYTES;
    const chunkBytes = Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, maxPayload);
    try {
      const written = await writeChunks(
        jetstream(this.nc),
        `${this.chunkSubjectPrefix}${id}`,
        putId,
        chunkBytes,
        body,
        (s, seq) => this.storedAfter(s, seq),
      );
      const previous = options.fresh ? null : await this.rawInfo(name);
      const meta = {
        ...{ name, description: '', options: { max_chunk_size: chunkBytes } },
        ...(options.metadata ? { metadata: options.metadata } : {}),
        ...{ bucket: this.bucket, nuid: id, ...written, mtime: new Date().toISOString(), deleted: false },
      };
      const rollup = headers();
      rollup.set('Nats-Rollup', 'sub');
      const ack = await publishRetrying(jetstream(this.nc), this.metaSubject(name), JSON.stringify(meta), {
        headers: rollup,
        msgID: `${this.bucket}.meta.${putId}`,
        stored: async () => {
          const latest = await this.leaderRead({ last_by_subj: this.metaSubject(name) });
          const stored = latest?.json<ObjectInfo>();
          return stored?.nuid === id && stored.mtime === meta.mtime ? latest!.seq : undefined;
        },
      });
      if (previous && previous.nuid !== id) await this.purge(`${this.chunkSubjectPrefix}${previous.nuid}`);
      const info = { ...meta, revision: ack.seq } as ObjectInfo;
      if (options.fresh && info.chunks <= DIRECT_GET_MAX_CHUNKS) this.remember(name, info);
      return info;
    } catch (err) {
      body.destroy();
      await this.purge(`${this.chunkSubjectPrefix}${id}`);
      throw storageFull(err) ?? failure ?? err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  private remember(name: string, info: ObjectInfo): void {
    const now = Date.now();
    for (const [key, entry] of this.recent) {
      if (this.recent.size < RECENT_MAX && now - entry.at < RECENT_TTL_MS) break;
      this.recent.delete(key);
    }
    this.recent.set(name, { info, at: now });
  }

  /**
   * A small object this instance put, read without its meta record. Its chunks are gone if it
   * was deleted since (by any instance): then, or on any failure, null, and it is read afresh.
   */
  private async getRecent(name: string): Promise<{ info: ObjectInfo; stream: Readable } | null> {
    const entry = this.recent.get(name);
    if (!entry) return null;
    if (Date.now() - entry.at >= RECENT_TTL_MS) {
      this.recent.delete(name);
      return null;
    }
    try {
      const parts: Uint8Array[] = [];
      for await (const data of this.chunks(entry.info)) parts.push(data);
      return { info: entry.info, stream: Readable.from(parts, { objectMode: false }) };
    } catch {
      this.recent.delete(name);
      return null;
    }
  }

  /** The object as a Node Readable (null if absent); the stream fails if the digest differs. */
  async get(name: string): Promise<{ info: ObjectInfo; stream: Readable } | null> {
    const recent = await this.getRecent(name);
    if (recent) return recent;
    const info = await this.info(name);
    if (!info) return null;
    if (info.options?.link) throw new Error(`${name} is a link; links are not supported`);
    if (info.chunks <= DIRECT_GET_MAX_CHUNKS) {
      // A small object is read whole here, so a failed read (NATS restarting) fails this call,
      // which the caller may retry, rather than a response that has already begun.
      const parts: Uint8Array[] = [];
      for await (const data of this.chunks(info)) parts.push(data);
      return { info, stream: Readable.from(parts, { objectMode: false }) };
    }
    return { info, stream: Readable.from(this.chunks(info), { objectMode: false }) };
  }

  private async *chunks(info: ObjectInfo): AsyncGenerator<Uint8Array> {
    if (info.size === 0) return;
    const source = info.chunks <= DIRECT_GET_MAX_CHUNKS ? this.directChunks(info) : this.consumedChunks(info);
    const hash = createHash('sha256');
    let received = 0;
    // Each chunk goes on once the next has arrived, and the last once the digest is checked: a
    // corrupt object never reaches its reader whole (an HTTP answer ends short of its length).
    let held: Uint8Array | undefined;
    for await (const data of source) {
      hash.update(data);
      received += data.length;
      if (held) yield held;
      held = data;
    }
    const digest = `SHA-256=${base64urlPadded(hash.digest())}`;
    if (received !== info.size || digest.replace(/=+$/, '') !== info.digest.replace(/=+$/, '')) {
      throw new Error(`${info.name}: corrupt object (${received} of ${info.size} bytes, digest ${digest})`);
    }
    if (held) yield held;
  }

  /** Each chunk by a direct get of the next message on the object's chunk subject. */
  private async *directChunks(info: ObjectInfo): AsyncGenerator<Uint8Array> {
    const subject = `${this.chunkSubjectPrefix}${info.nuid}`;
    let seq = 1;
    for (let i = 0; i < info.chunks; i++) {
      const m = await this.read({ seq, next_by_subj: subject });
      if (!m) break; // missing chunks: the digest check names the object corrupt
      seq = m.seq + 1;
      yield m.data;
    }
  }

  private async *consumedChunks(info: ObjectInfo): AsyncGenerator<Uint8Array> {
    const consumer = await jetstream(this.nc).consumers.get(this.streamName, {
      filter_subjects: `${this.chunkSubjectPrefix}${info.nuid}`,
    });
    const chunkBytes = info.options?.max_chunk_size || DEFAULT_CHUNK_BYTES;
    const messages = await consumer.consume({ max_messages: Math.max(2, Math.floor(GET_PREFETCH_BYTES / chunkBytes)) });
    try {
      for await (const m of messages) {
        yield m.data;
        if (m.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
  }

  private metaSubject(name: string): string {
    return `$O.${this.bucket}.M.${nameToken(name)}`;
  }

  /**
   * A direct get (any replica answers), and on a miss the stream leader's answer: a replica that
   * was cut off from its cluster answers direct gets before it has caught up, and would make a
   * stored object look missing or corrupt.
   */
  private async read(
    query: { seq: number; next_by_subj: string } | { last_by_subj: string },
  ): Promise<StoredMsg | null> {
    return (await this.jsm.direct.getMessage(this.streamName, query)) ?? this.leaderRead(query);
  }

  /** The stream leader's answer (the JetStream API), which no lagging replica gives. */
  private async leaderRead(
    query: { seq: number; next_by_subj: string } | { last_by_subj: string },
  ): Promise<StoredMsg | null> {
    try {
      return await this.jsm.streams.getMessage(this.streamName, query);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
      throw err;
    }
  }

  /** The sequence of the first message on `subject` after `seq`, as the stream leader has it. */
  private async storedAfter(subject: string, seq: number): Promise<number | undefined> {
    return (await this.leaderRead({ seq: seq + 1, next_by_subj: subject }))?.seq;
  }

  /** The object's latest meta record, deleted or not. */
  private async rawInfo(name: string): Promise<ObjectInfo | null> {
    const m = await this.read({ last_by_subj: this.metaSubject(name) });
    if (!m) return null;
    return { ...(m.json<ObjectInfo>() as object), revision: m.seq } as ObjectInfo;
  }

  async info(name: string): Promise<ObjectInfo | null> {
    const info = await this.rawInfo(name);
    return info && !info.deleted ? info : null;
  }

  /**
   * Delete an object and its chunks; false if it did not exist. No tombstone is written: its meta
   * record is purged, so deleted objects leave nothing behind (`list` does not grow with them).
   * A caller that read the object (`known.nuid`, its chunk id) saves reading its meta record
   * again. An object put under a fresh name (its chunk id is its name's token) goes with one
   * purge; any other with two (its chunks, its meta record).
   */
  async delete(name: string, known?: { nuid: string }): Promise<boolean> {
    this.recent.delete(name);
    const info: { nuid: string; deleted?: boolean } | null = known ?? (await this.rawInfo(name));
    if (!info) return false;
    if (info.nuid === nameToken(name)) return (await this.purgeNamed(name)) > 0;
    if (info.deleted) {
      // A tombstone (earlier versions wrote them) whose chunks went with it: it goes too.
      await this.purgeMeta(name);
      return false;
    }
    await this.jsm.streams.purge(this.streamName, { filter: `${this.chunkSubjectPrefix}${info.nuid}` });
    await this.purgeMeta(name);
    return true;
  }

  private async purgeMeta(name: string): Promise<void> {
    await this.jsm.streams.purge(this.streamName, { filter: this.metaSubject(name) });
  }

  /**
   * Delete an object put under a fresh name without reading it: one purge of its meta record and
   * of the chunks named by its token. Returns how many messages went: 0 if there was nothing,
   * 1 if only a meta record (an object renamed to this name, whose chunks have another id and are
   * left to the owner's sweep of unnamed chunks), more for a fresh object and its chunks.
   */
  async purgeNamed(name: string): Promise<number> {
    this.recent.delete(name);
    const { purged } = await this.jsm.streams.purge(this.streamName, {
      filter: `$O.${this.bucket}.*.${nameToken(name)}`,
    });
    return purged;
  }

  /** Rename without copying bytes (a new meta record, then the old one is purged). */
  async rename(from: string, to: string): Promise<void> {
    this.recent.delete(from);
    const info = await this.info(from);
    if (!info) throw new HubError('NOT_FOUND', `Object not found: ${from}`);
    const { description, metadata, options } = info;
    await this.store.update(from, { name: to, description, metadata, options });
  }

  /** Live objects whose names start with `prefix`. */
  async list(prefix = ''): Promise<ObjectInfo[]> {
    return (await this.store.list()).filter((o) => !o.deleted && o.name.startsWith(prefix));
  }

  /**
   * Every object's latest meta record, tombstones included, with its stream sequence as
   * `revision`: one pass of an ordered consumer over the meta subjects.
   */
  async entries(): Promise<ObjectInfo[]> {
    const consumer = await jetstream(this.nc).consumers.get(this.streamName, {
      filter_subjects: `$O.${this.bucket}.M.>`,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    const found: ObjectInfo[] = [];
    if ((await consumer.info(true)).num_pending === 0) return found;
    const messages = await consumer.consume();
    try {
      for await (const m of messages) {
        found.push({ ...(m.json<ObjectInfo>() as object), revision: m.seq } as ObjectInfo);
        if (m.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
    return found;
  }

  /**
   * Purge a tombstone (earlier versions, and other clients, write them on delete) read by
   * `entries`: the meta record at its revision and older ones only, so an object put under the
   * same name since is kept.
   */
  async dropTombstone(tombstone: ObjectInfo): Promise<void> {
    await this.jsm.streams.purge(this.streamName, {
      filter: this.metaSubject(tombstone.name),
      seq: tombstone.revision + 1,
    });
  }
}

/**
 * A write the server refused because the bucket reached its `max_bytes` (or the server its
 * JetStream storage) as the hub's error, so that clients get an answer (507), not a 500.
 */
export function storageFull(err: unknown): HubError | undefined {
  const e = err as { message?: unknown; api_error?: { description?: unknown } } | undefined;
  const text = `${String(e?.message ?? '')} ${String(e?.api_error?.description ?? '')}`;
  if (!/maximum bytes exceeded|insufficient (storage|resources)|no space left/i.test(text)) return undefined;
  return new HubError('INSUFFICIENT_STORAGE', 'The hub is out of storage space; try again later', { cause: err });
}

/** Fails with `tooLarge(maxBytes)` once more than `maxBytes` bytes have passed. */
export function byteLimit(maxBytes: number, tooLarge?: (maxBytes: number) => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      seen += chunk.length;
      if (seen <= maxBytes) return callback(null, chunk);
      callback(tooLarge?.(maxBytes) ?? new HubError('UPLOAD_TOO_LARGE', `Upload exceeds ${maxBytes} bytes`));
    },
  });
}

export function isGzipHeader(head: Uint8Array): boolean {
  return head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08;
}

/** Passes bytes through once the first three are the gzip magic (deflate); else fails. */
export function gzipCheck(notGzip: () => Error = () => new HubError('BAD_REQUEST', 'Data is not gzip')): Transform {
  let head: Buffer | undefined = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      if (!head) return callback(null, chunk);
      const data = Buffer.concat([head, chunk]);
      if (data.length < 3) {
        head = data;
        return callback();
      }
      if (!isGzipHeader(data)) return callback(notGzip());
      head = undefined;
      callback(null, data);
    },
    flush: (callback) => callback(head ? notGzip() : null),
  });
}

// Decoding table: 0-63 alphabet values, then whitespace, padding, invalid.
const [WS, PAD, BAD] = [64, 65, 255];
const TABLE = new Uint8Array(256).fill(BAD);
[...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].forEach((c, i) => (TABLE[c.charCodeAt(0)] = i));
for (const c of [9, 10, 13, 32]) TABLE[c] = WS;
TABLE[61] = PAD;

/**
 * Standard base64 (RFC 4648, padded or not, whitespace ignored) to bytes. Anything else, the
 * URL-safe alphabet included, fails with `invalid(offset)` naming the input offset.
 *
 * Fast path (the CLI's unbroken base64): Node's decoder skips characters outside its alphabet,
 * so a chunk without '-', '_' or '=' is valid exactly when it decodes to 3/4 of its length.
 * Anything else takes the per-character path, which also finds the offending offset.
 */
export function base64Decoder(
  invalid: (offset: number) => Error = (at) => new HubError('BAD_REQUEST', `Invalid base64 at offset ${at}`),
): Transform {
  let [carry, padded, offset] = ['', false, 0];
  const emit = (text: string, callback: TransformCallback, bytes?: Buffer) => {
    const whole = text.length - (text.length % 4);
    carry = text.slice(whole);
    callback(null, whole > 0 ? (bytes ?? Buffer.from(text.slice(0, whole), 'base64')) : undefined);
  };
  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      if (!padded && chunk.indexOf(45) < 0 && chunk.indexOf(95) < 0 && chunk.indexOf(61) < 0) {
        const text = carry + chunk.toString('latin1');
        const whole = text.length - (text.length % 4);
        const bytes = Buffer.from(text.slice(0, whole), 'base64');
        if (bytes.length === (whole / 4) * 3 && [...text.slice(whole)].every((c) => TABLE[c.charCodeAt(0)]! < 64)) {
          offset += chunk.length;
          return emit(text, callback, bytes);
        }
      }
      const out = Buffer.allocUnsafe(carry.length + chunk.length);
      let n = out.write(carry, 'latin1');
      for (let i = 0; i < chunk.length; i++) {
        const t = TABLE[chunk[i]!]!;
        if (t === WS) continue;
        // Only '=' may follow '=', which fills the last one or two places of a group.
        if (t === BAD || (t < 64 && padded) || (t === PAD && n % 4 < 2)) return callback(invalid(offset + i));
        padded ||= t === PAD;
        out[n++] = chunk[i]!;
      }
      offset += chunk.length;
      emit(out.toString('latin1', 0, n), callback);
    },
    flush(callback) {
      // An unpadded tail of 2 or 3 characters still encodes whole bytes; 1 cannot.
      if (carry.length === 1 || (padded && carry.length > 0)) return callback(invalid(offset));
      callback(null, carry.length > 0 ? Buffer.from(carry, 'base64') : undefined);
    },
  });
}

/**
 * Input bytes encoded per string: 48 KiB make 64 KiB of text, under V8's large-object size. A
 * larger string is allocated in the old generation, which only a full collection frees: encoding
 * a 256 KiB chunk at once made a full collection (5 to 20 ms with the world stopped) every
 * 150 ms at 20 builds/s, each worker's tarball and each CLI's artifact being such a string.
 */
const ENCODE_SLICE_BYTES = 48 * 1024;

/**
 * Bytes to standard padded base64, three-byte groups carried across chunks. A carried group is
 * completed from the head of the next chunk, so a chunk is never copied whole to join it.
 */
export function base64Encoder(): Transform {
  let carry = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      let [start, head] = [0, ''];
      if (carry.length > 0) {
        start = Math.min(3 - carry.length, chunk.length);
        carry = Buffer.concat([carry, chunk.subarray(0, start)]);
        if (carry.length < 3) return callback();
        [head, carry] = [carry.toString('base64'), Buffer.alloc(0)];
      }
      const whole = chunk.length - ((chunk.length - start) % 3);
      if (whole < chunk.length) carry = Buffer.from(chunk.subarray(whole));
      if (whole === start) return callback(null, head ? Buffer.from(head, 'latin1') : undefined);
      const out = Buffer.allocUnsafe(head.length + ((whole - start) / 3) * 4);
      let at = out.write(head, 0, 'latin1');
      for (let from = start; from < whole; from += ENCODE_SLICE_BYTES) {
        at += out.write(chunk.toString('base64', from, Math.min(whole, from + ENCODE_SLICE_BYTES)), at, 'latin1');
      }
      callback(null, out);
    },
    flush: (callback) => callback(null, carry.length > 0 ? Buffer.from(carry.toString('base64'), 'latin1') : undefined),
  });
}
