/**
 * The bus topology as data: JetStream streams, durable consumers, KV buckets and Object Store
 * buckets. Services never create any of these ad hoc; at start each one ensures (idempotently)
 * the entries it uses, so any service can start first.
 *
 * Consumer limits are always explicit: JetStream's defaults (30 s ack wait, unlimited
 * redeliveries, 1,000 pending) are rarely right.
 */
import type { ServiceName } from './services.js';
import { subjects } from './subjects.js';

export interface StreamSpec {
  readonly kind: 'stream';
  readonly name: string;
  readonly subjects: readonly string[];
  readonly retention: 'limits' | 'workqueue' | 'interest';
  readonly maxAgeMs: number;
  /** Window in which a repeated Nats-Msg-Id is dropped: intake retries dedupe by job id. */
  readonly duplicateWindowMs: number;
  readonly maxMsgBytes: number;
  readonly usedBy: readonly ServiceName[];
}

export interface ConsumerSpec {
  readonly kind: 'consumer';
  readonly stream: string;
  readonly durable: string;
  readonly filterSubject: string;
  readonly ackWaitMs: number;
  readonly maxDeliver: number;
  readonly maxAckPending: number;
  readonly usedBy: readonly ServiceName[];
}

export interface KvSpec {
  readonly kind: 'kv';
  readonly bucket: string;
  /** Entries expire after this long unless refreshed (0 = never). */
  readonly ttlMs: number;
  readonly history: number;
  readonly usedBy: readonly ServiceName[];
}

export interface ObjectStoreSpec {
  readonly kind: 'obj';
  readonly bucket: string;
  readonly usedBy: readonly ServiceName[];
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
    instancesBucket: `${prefix}-instances`,
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
      usedBy: ['ingest', 'scheduler'],
    },
    {
      kind: 'consumer',
      stream: n.intakeStream,
      durable: n.schedulerIntakeConsumer,
      filterSubject: s.intakeAll,
      ackWaitMs: 30_000,
      maxDeliver: 20,
      maxAckPending: 256,
      usedBy: ['scheduler'],
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
      usedBy: ['scheduler', 'worker-gateway', 'license', 'ingest'],
    },
    {
      kind: 'consumer',
      stream: n.eventsStream,
      durable: n.licenseUsageConsumer,
      filterSubject: s.jobDoneAll,
      ackWaitMs: 30_000,
      maxDeliver: 50,
      maxAckPending: 64,
      usedBy: ['license'],
    },
    {
      kind: 'kv',
      bucket: n.presenceBucket,
      ttlMs: 0,
      history: 1,
      usedBy: ['worker-gateway', 'scheduler', 'vm-controller'],
    },
    {
      // Liveness records carry their own expiry; the bucket's TTL only clears away dead instances.
      kind: 'kv',
      bucket: n.instancesBucket,
      ttlMs: HOUR_MS,
      history: 1,
      usedBy: ['license', 'artifact-store', 'scheduler', 'worker-gateway', 'vm-controller', 'ingest'],
    },
    { kind: 'kv', bucket: n.leasesBucket, ttlMs: 0, history: 1, usedBy: ['scheduler', 'vm-controller'] },
    { kind: 'kv', bucket: n.vmBucket, ttlMs: 0, history: 5, usedBy: ['vm-controller', 'scheduler'] },
    { kind: 'obj', bucket: n.blobsBucket, usedBy: ['artifact-store', 'ingest'] },
  ];
}

export function topologyFor(prefix: string, service: ServiceName): readonly TopologyEntry[] {
  return topology(prefix).filter((entry) => entry.usedBy.includes(service));
}
