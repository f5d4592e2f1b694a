/**
 * The bus topology as data: JetStream streams, durable consumers, KV buckets and Object Store
 * buckets. Services never create any of these ad hoc; at start each one ensures (idempotently)
 * the entries it uses, so any service can start first.
 *
 * Consumer limits are always explicit: JetStream's defaults (30 s ack wait, unlimited
 * redeliveries, 1,000 pending) are rarely right.
 *
 * `usedBy` names the services that ensure an entry and the access each needs beyond ensuring it;
 * their NATS permissions are derived from it (permissions.ts), so a service that starts using an
 * entry must say so here or be refused by the server.
 */
import type { ServiceName } from './services.js';
import { subjects } from './subjects.js';

/**
 * Access beyond ensuring (INFO, CREATE, UPDATE) that every user of an entry has:
 * - stream `read`: ad-hoc ordered consumers over it (e.g. replaying a job's events);
 *   stream `purge`: purging it (by subject filter);
 * - consumer: its users always consume it (next, ack);
 * - kv / obj `read`: get, watch, list; `write`: put and delete (an Object Store delete or
 *   replace purges the old chunks, so obj `write` includes purging).
 */
export type StreamAccess = 'read' | 'purge';
export type BucketAccess = 'read' | 'write';
export type UsedBy<A extends string> = Readonly<Partial<Record<ServiceName, readonly A[]>>>;

export interface StreamSpec {
  readonly kind: 'stream';
  readonly name: string;
  readonly subjects: readonly string[];
  readonly retention: 'limits' | 'workqueue' | 'interest';
  readonly maxAgeMs: number;
  /** Window in which a repeated Nats-Msg-Id is dropped: intake retries dedupe by job id. */
  readonly duplicateWindowMs: number;
  readonly maxMsgBytes: number;
  readonly usedBy: UsedBy<StreamAccess>;
}

export interface ConsumerSpec {
  readonly kind: 'consumer';
  readonly stream: string;
  readonly durable: string;
  readonly filterSubject: string;
  readonly ackWaitMs: number;
  readonly maxDeliver: number;
  readonly maxAckPending: number;
  readonly usedBy: UsedBy<never>;
}

export interface KvSpec {
  readonly kind: 'kv';
  readonly bucket: string;
  /** Entries expire after this long unless refreshed (0 = never). */
  readonly ttlMs: number;
  readonly history: number;
  readonly usedBy: UsedBy<BucketAccess>;
}

export interface ObjectStoreSpec {
  readonly kind: 'obj';
  readonly bucket: string;
  readonly usedBy: UsedBy<BucketAccess>;
}

export type TopologyEntry = StreamSpec | ConsumerSpec | KvSpec | ObjectStoreSpec;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Names that cannot contain dots (streams, buckets) are derived from the prefix. */
export function topologyNames(prefix: string) {
  const up = prefix.toUpperCase().replace(/-/g, '_');
  return {
    intakeStream: `${up}_INTAKE`,
    eventsStream: `${up}_EVENTS`,
    schedulerIntakeConsumer: 'scheduler-intake',
    licenseUsageConsumer: 'license-usage',
    presenceBucket: `${prefix}-presence`,
    leasesBucket: `${prefix}-leases`,
    vmBucket: `${prefix}-vm`,
    blobsBucket: `${prefix}-blobs`,
  } as const;
}

export function topology(prefix: string): readonly TopologyEntry[] {
  const s = subjects(prefix);
  const n = topologyNames(prefix);
  return [
    {
      kind: 'stream',
      name: n.intakeStream,
      subjects: [s.intakeAll],
      retention: 'workqueue',
      maxAgeMs: 7 * DAY_MS,
      duplicateWindowMs: 24 * HOUR_MS,
      maxMsgBytes: 1024 * 1024,
      usedBy: { ingest: [], scheduler: [] },
    },
    {
      kind: 'consumer',
      stream: n.intakeStream,
      durable: n.schedulerIntakeConsumer,
      filterSubject: s.intakeAll,
      ackWaitMs: 30_000,
      maxDeliver: 20,
      maxAckPending: 256,
      usedBy: { scheduler: [] },
    },
    {
      kind: 'stream',
      name: n.eventsStream,
      subjects: [s.jobEventsAll, s.jobDoneAll],
      retention: 'limits',
      maxAgeMs: 7 * DAY_MS,
      // Long enough that a scheduler republishing its completion outbox after a crash is deduped.
      duplicateWindowMs: HOUR_MS,
      maxMsgBytes: 1024 * 1024,
      // The gateway replays a job's events to CLI watchers through ordered consumers.
      usedBy: { scheduler: [], 'worker-gateway': ['read'], license: [], ingest: [] },
    },
    {
      kind: 'consumer',
      stream: n.eventsStream,
      durable: n.licenseUsageConsumer,
      filterSubject: s.jobDoneAll,
      ackWaitMs: 30_000,
      maxDeliver: 50,
      maxAckPending: 64,
      usedBy: { license: [] },
    },
    {
      kind: 'kv',
      bucket: n.presenceBucket,
      ttlMs: 0,
      history: 1,
      usedBy: { 'worker-gateway': ['read', 'write'], scheduler: ['read'], 'vm-controller': ['read'] },
    },
    {
      kind: 'kv',
      bucket: n.leasesBucket,
      ttlMs: 0,
      history: 1,
      usedBy: { scheduler: ['read', 'write'], 'vm-controller': ['read', 'write'] },
    },
    {
      kind: 'kv',
      bucket: n.vmBucket,
      ttlMs: 0,
      history: 5,
      usedBy: { 'vm-controller': ['read', 'write'], scheduler: ['read'] },
    },
    { kind: 'obj', bucket: n.blobsBucket, usedBy: { 'artifact-store': ['read', 'write'], ingest: ['read', 'write'] } },
  ];
}

export function topologyFor(prefix: string, service: ServiceName): readonly TopologyEntry[] {
  return topology(prefix).filter((entry) => entry.usedBy[service] !== undefined);
}
