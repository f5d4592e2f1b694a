/**
 * Ensure the declared topology exists. Idempotent and safe when several processes start at
 * once: a create that loses the race falls back to reading and updating what the winner made.
 */
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import type { ConsumerSpec, StreamSpec, TopologyEntry } from '@perry-hub/contracts';

const RETENTION = {
  limits: RetentionPolicy.Limits,
  workqueue: RetentionPolicy.Workqueue,
  interest: RetentionPolicy.Interest,
} as const;

function streamConfig(spec: StreamSpec): Partial<StreamConfig> & { name: string } {
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    retention: RETENTION[spec.retention],
    storage: StorageType.File,
    max_age: nanos(spec.maxAgeMs),
    duplicate_window: nanos(spec.duplicateWindowMs),
    max_msg_size: spec.maxMsgBytes,
    max_bytes: spec.maxBytes,
    discard: spec.discard === 'new' ? DiscardPolicy.New : DiscardPolicy.Old,
    num_replicas: 1,
  };
}

function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: spec.durable,
    filter_subject: spec.filterSubject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(spec.ackWaitMs),
    max_deliver: spec.maxDeliver,
    max_ack_pending: spec.maxAckPending,
  };
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return (
    e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014 || /not found/i.test(String(e?.message ?? ''))
  );
}

async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  const wanted = streamConfig(spec);
  try {
    await jsm.streams.info(spec.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add(wanted);
      return;
    } catch (addErr) {
      // Another instance created it between our info and add; fall through to update.
      await jsm.streams.info(spec.name).catch(() => {
        throw addErr;
      });
    }
  }
  await jsm.streams.update(spec.name, wanted);
}

async function ensureConsumer(jsm: JetStreamManager, spec: ConsumerSpec): Promise<void> {
  const wanted = consumerConfig(spec);
  try {
    await jsm.consumers.info(spec.stream, spec.durable);
    await jsm.consumers.update(spec.stream, spec.durable, {
      ack_wait: wanted.ack_wait,
      max_deliver: wanted.max_deliver,
      max_ack_pending: wanted.max_ack_pending,
    } as Parameters<JetStreamManager['consumers']['update']>[2]);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(spec.stream, wanted);
  }
}

async function setLimits(
  jsm: JetStreamManager,
  stream: string,
  maxBytes: number,
  discard?: 'old' | 'new',
): Promise<void> {
  const { config } = await jsm.streams.info(stream);
  const wanted = discard === undefined ? config.discard : discard === 'old' ? DiscardPolicy.Old : DiscardPolicy.New;
  if (config.max_bytes !== maxBytes || config.discard !== wanted) {
    await jsm.streams.update(stream, { max_bytes: maxBytes, discard: wanted });
  }
}

/**
 * JetStream reserves a stream's max_bytes against the server's (or account's) storage limit up
 * front; a refusal names the settings to change instead of a bare "insufficient resources".
 */
function explainReservation(err: unknown, entry: TopologyEntry): unknown {
  const e = err as { message?: unknown; api_error?: { err_code?: number } } | undefined;
  if (e?.api_error?.err_code !== 10047 && !/insufficient storage resources/i.test(String(e?.message ?? ''))) {
    return err;
  }
  const what = entry.kind === 'consumer' ? entry.durable : entry.kind === 'stream' ? entry.name : entry.bucket;
  return new Error(
    `JetStream cannot reserve the configured size of ${what} (max_bytes ${'maxBytes' in entry ? entry.maxBytes : '?'}): ` +
      "raise the nats-server's jetstream max_file_store (or the account's limit) or lower PERRY_HUB_BLOBS_MAX_BYTES / PERRY_HUB_EVENTS_MAX_BYTES",
    { cause: err },
  );
}

export async function ensureTopology(nc: NatsConnection, entries: readonly TopologyEntry[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  // Streams before their consumers.
  const ordered = [...entries].sort((a, b) => (a.kind === 'consumer' ? 1 : 0) - (b.kind === 'consumer' ? 1 : 0));
  for (const entry of ordered) {
    try {
      await ensureEntry(nc, jsm, entry);
    } catch (err) {
      throw explainReservation(err, entry);
    }
  }
}

async function ensureEntry(nc: NatsConnection, jsm: JetStreamManager, entry: TopologyEntry): Promise<void> {
  switch (entry.kind) {
    case 'stream':
      await ensureStream(jsm, entry);
      break;
    case 'consumer':
      await ensureConsumer(jsm, entry);
      break;
    case 'kv':
      await new Kvm(nc).create(entry.bucket, {
        history: entry.history,
        ...(entry.ttlMs > 0 ? { ttl: entry.ttlMs } : {}),
        max_bytes: entry.maxBytes,
        storage: StorageType.File,
      });
      // create() leaves an existing bucket as it was: a changed size limit is applied here.
      await setLimits(jsm, `KV_${entry.bucket}`, entry.maxBytes, entry.discard);
      break;
    case 'obj':
      await new Objm(nc).create(entry.bucket, { storage: StorageType.File, max_bytes: entry.maxBytes });
      await setLimits(jsm, `OBJ_${entry.bucket}`, entry.maxBytes);
      break;
  }
}
