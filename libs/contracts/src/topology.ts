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
import { SERVICE_NAMES, type ServiceName } from './services.js';
import { subjects } from './subjects.js';

/**
 * Access beyond ensuring (INFO, CREATE, UPDATE) that every user of an entry has:
 * - stream `read`: ad-hoc ordered consumers over it (e.g. replaying a job's events);
 *   stream `purge`: purging it (by subject filter);
 *   stream `check`: the last message on a subject, read from the stream leader after a barrier
 *   (a purge of a subject nothing is on), to tell whether an append whose answer was lost went
 *   through (NATS permissions cannot limit a purge to a subject: this grants purging too);
 * - consumer: its users always consume it (next, ack);
 * - kv / obj `read`: get, watch, list; `write`: put and delete (an Object Store delete or
 *   replace purges the old chunks, so obj `write` includes purging).
 */
export type StreamAccess = 'read' | 'purge' | 'check';
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
  /** Total size the stream may reach (-1 = unlimited); what happens then is `discard`. */
  readonly maxBytes: number;
  /** 'old' drops the oldest messages to make room; 'new' refuses the write. */
  readonly discard: 'old' | 'new';
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
  /** Total size of the bucket (-1 = unlimited). */
  readonly maxBytes: number;
  /** When full: 'new' (KV's default) refuses writes, 'old' drops the oldest entries. */
  readonly discard?: 'old' | 'new';
  readonly usedBy: UsedBy<BucketAccess>;
}

export interface ObjectStoreSpec {
  readonly kind: 'obj';
  readonly bucket: string;
  /** Total size of the bucket (-1 = unlimited); a full bucket refuses writes, never drops. */
  readonly maxBytes: number;
  readonly usedBy: UsedBy<BucketAccess>;
}

/**
 * Sizes that are configuration (PERRY_HUB_BLOBS_MAX_BYTES, PERRY_HUB_EVENTS_MAX_BYTES): every
 * service that ensures an entry must be given the same values, or they undo each other's update.
 */
export interface TopologyLimits {
  readonly blobsMaxBytes: number;
  readonly eventsMaxBytes: number;
}

const GiB = 1024 * 1024 * 1024;

export const DEFAULT_TOPOLOGY_LIMITS: TopologyLimits = { blobsMaxBytes: 10 * GiB, eventsMaxBytes: 1 * GiB };

/** Counters of the HTTP abuse limits live at most this long (the longest window they count). */
export const LIMITS_BUCKET_TTL_MS = 24 * 3_600_000;

export type TopologyEntry = StreamSpec | ConsumerSpec | KvSpec | ObjectStoreSpec;

/** The JetStream stream an entry is kept in: its own, or its bucket's (`KV_`, `OBJ_`); none for a consumer. */
export function backingStream(entry: TopologyEntry): string | undefined {
  switch (entry.kind) {
    case 'stream':
      return entry.name;
    case 'kv':
      return `KV_${entry.bucket}`;
    case 'obj':
      return `OBJ_${entry.bucket}`;
    case 'consumer':
      return undefined;
  }
}

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
    ingestCallbacksConsumer: 'ingest-callbacks',
    presenceBucket: `${prefix}-presence`,
    instancesBucket: `${prefix}-instances`,
    leasesBucket: `${prefix}-leases`,
    vmBucket: `${prefix}-vm`,
    blobsBucket: `${prefix}-blobs`,
    limitsBucket: `${prefix}-limits`,
  } as const;
}

export function topology(prefix: string, limits: TopologyLimits = DEFAULT_TOPOLOGY_LIMITS): readonly TopologyEntry[] {
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
      maxBytes: -1,
      discard: 'old',
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
      subjects: [s.jobEventsAll, s.jobDoneAll, s.jobCallbacksAll],
      retention: 'limits',
      maxAgeMs: 7 * DAY_MS,
      // Long enough that a scheduler republishing its completion outbox after a crash is deduped.
      duplicateWindowMs: HOUR_MS,
      maxMsgBytes: 1024 * 1024,
      // A log: when full, the oldest jobs' history goes first; new events are never refused.
      maxBytes: limits.eventsMaxBytes,
      discard: 'old',
      // The gateway replays a job's events to CLI watchers, and the ingest to
      // `GET /api/v1/jobs/:id/events`, through ordered consumers. The scheduler's final events
      // and the artifact-store's artifact_ready are each stored once (`check`).
      usedBy: {
        scheduler: ['check'],
        'worker-gateway': ['read'],
        license: [],
        ingest: ['read'],
        'artifact-store': ['check'],
      },
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
      // Each finished job's signed callbacks are queued (in MySQL) from its outcome, published
      // on this subject for jobs with a callback URL only.
      kind: 'consumer',
      stream: n.eventsStream,
      durable: n.ingestCallbacksConsumer,
      filterSubject: s.jobCallbacksAll,
      ackWaitMs: 30_000,
      maxDeliver: 1000,
      maxAckPending: 64,
      usedBy: { ingest: [] },
    },
    {
      kind: 'kv',
      bucket: n.presenceBucket,
      ttlMs: 0,
      history: 1,
      maxBytes: -1,
      usedBy: { 'worker-gateway': ['read', 'write'], scheduler: ['read'], 'vm-controller': ['read'] },
    },
    {
      kind: 'kv',
      bucket: n.leasesBucket,
      ttlMs: 0,
      history: 1,
      maxBytes: -1,
      usedBy: { scheduler: ['read', 'write'], 'vm-controller': ['read', 'write'] },
    },
    {
      kind: 'kv',
      bucket: n.vmBucket,
      ttlMs: 0,
      history: 5,
      maxBytes: -1,
      usedBy: { 'vm-controller': ['read', 'write'], scheduler: ['read'] },
    },
    // Fixed-window counters of the HTTP abuse limits, shared by every ingest instance. Bounded so
    // that counting many addresses cannot fill the disk; when full the oldest counters go, so a
    // flood of addresses cannot turn the limits off by making every write fail.
    {
      kind: 'kv',
      bucket: n.limitsBucket,
      ttlMs: LIMITS_BUCKET_TTL_MS,
      history: 1,
      maxBytes: 64 * 1024 * 1024,
      discard: 'old',
      usedBy: { ingest: ['read', 'write'] },
    },
    {
      kind: 'obj',
      bucket: n.blobsBucket,
      maxBytes: limits.blobsMaxBytes,
      usedBy: { 'artifact-store': ['read', 'write'], ingest: ['read', 'write'] },
    },
    {
      // Liveness records carry their own expiry; the bucket's TTL only clears away dead instances.
      // Every instance writes its own; whichever starts first after a crash of the all-in-one
      // deletes its predecessors'; the scheduler and the gateways read them.
      kind: 'kv',
      bucket: n.instancesBucket,
      ttlMs: HOUR_MS,
      history: 1,
      maxBytes: -1,
      usedBy: Object.fromEntries(SERVICE_NAMES.map((name) => [name, ['read', 'write'] as const])),
    },
  ];
}

export function topologyFor(
  prefix: string,
  service: ServiceName,
  limits: TopologyLimits = DEFAULT_TOPOLOGY_LIMITS,
): readonly TopologyEntry[] {
  return topology(prefix, limits).filter((entry) => entry.usedBy[service] !== undefined);
}
