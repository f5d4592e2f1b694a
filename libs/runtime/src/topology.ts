/**
 * Ensure the declared topology exists. Idempotent and safe when several processes start at
 * once: a create that loses the race falls back to reading and updating what the winner made.
 */
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { backingStream, type ConsumerSpec, type StreamSpec, type TopologyEntry } from '@perry-hub/contracts';
import type { Logger } from 'pino';

/** How every stream, KV bucket and object store is placed (PERRY_HUB_JS_REPLICAS). */
export interface Placement {
  /** Replicas a new entry gets, and the least an existing one is raised to; never lowered. */
  readonly replicas: number;
  readonly log?: Pick<Logger, 'info' | 'warn'>;
  /** Ends the retries of a start that is being stopped (a signal while the cluster forms). */
  readonly signal?: AbortSignal;
}

const SINGLE: Placement = { replicas: 1 };

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
  };
}

export function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> & { durable_name: string } {
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

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return (
    e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014 || /not found/i.test(String(e?.message ?? ''))
  );
}

async function ensureStream(jsm: JetStreamManager, spec: StreamSpec, placement: Placement): Promise<void> {
  const wanted = streamConfig(spec);
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(spec.name)).config;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add({ ...wanted, num_replicas: placement.replicas });
      if (placement.replicas > 1) await replicated(jsm, spec.name, placement.replicas, placement);
      return;
    } catch (addErr) {
      // Another instance created it between our info and add; fall through to update. On a
      // cluster the add may be refused for subjects overlapping that stream (10065) before the
      // answering server has its copy: asked again (see isTransient), since the info fails too.
      current = (
        await jsm.streams.info(spec.name).catch(() => {
          throw addErr;
        })
      ).config;
    }
  }
  const replicas = replicasFor(spec.name, current, placement);
  await jsm.streams.update(spec.name, { ...wanted, num_replicas: replicas });
  if (replicas > 1) await replicated(jsm, spec.name, replicas, placement);
}

const SCALE_UP_WAIT_MS = 30_000;

/**
 * A replicated stream just created or raised takes a moment to elect its leader and bring its
 * replicas up to date; until then writes find no responder or time out. Waits for a leader and a
 * quorum of current replicas, what a write needs (at start only; an already settled stream costs
 * one info request). Not for every replica: with a node down or still catching up, a service
 * that restarted waited the whole SCALE_UP_WAIT_MS for each stream, minutes before it was up.
 */
async function replicated(
  jsm: JetStreamManager,
  stream: string,
  replicas: number,
  placement: Placement,
): Promise<void> {
  const deadline = Date.now() + SCALE_UP_WAIT_MS;
  for (;;) {
    const info = await jsm.streams.info(stream).catch(() => undefined);
    const current = (info?.cluster?.replicas ?? []).filter((p) => p.current && !p.offline).length;
    if (info?.cluster?.leader && 1 + current >= Math.floor(replicas / 2) + 1) return;
    if (Date.now() > deadline) {
      placement.log?.warn({ stream, replicas }, `stream ${stream} has not caught up on ${replicas} replicas yet`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The replicas an existing stream keeps: raised to the configured count, never lowered (an
 * operator may have raised it by hand, and lowering loses copies); a difference is logged.
 */
function replicasFor(stream: string, current: Pick<StreamConfig, 'num_replicas'>, placement: Placement): number {
  const have = current.num_replicas || 1;
  if (have > placement.replicas) {
    placement.log?.warn(
      { stream, replicas: have, configured: placement.replicas },
      `stream ${stream} has ${have} replicas, PERRY_HUB_JS_REPLICAS is ${placement.replicas}: keeping ${have} (replicas are never lowered)`,
    );
    return have;
  }
  if (have < placement.replicas) {
    placement.log?.info(
      { stream, replicas: placement.replicas, was: have },
      `raising stream ${stream} from ${have} to ${placement.replicas} replicas`,
    );
  }
  return placement.replicas;
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

/** Applies a changed size limit and the placement to a bucket's stream (create() leaves it as it was). */
async function reconcileBucket(
  jsm: JetStreamManager,
  stream: string,
  maxBytes: number,
  discard: 'old' | 'new' | undefined,
  placement: Placement,
): Promise<void> {
  const { config } = await jsm.streams.info(stream);
  const wanted = discard === undefined ? config.discard : discard === 'old' ? DiscardPolicy.Old : DiscardPolicy.New;
  const replicas = replicasFor(stream, config, placement);
  if (config.max_bytes !== maxBytes || config.discard !== wanted || (config.num_replicas || 1) !== replicas) {
    await jsm.streams.update(stream, { max_bytes: maxBytes, discard: wanted, num_replicas: replicas });
  }
  if (replicas > 1) await replicated(jsm, stream, replicas, placement);
}

/**
 * JetStream reserves a stream's max_bytes against the server's (or account's) storage limit up
 * front; a refusal names the settings to change instead of a bare "insufficient resources".
 */
function explain(err: unknown, entry: TopologyEntry): unknown {
  const e = err as { message?: unknown; api_error?: { err_code?: number } } | undefined;
  const what = entry.kind === 'consumer' ? entry.durable : entry.kind === 'stream' ? entry.name : entry.bucket;
  if (e?.api_error?.err_code !== 10047 && !/insufficient storage resources/i.test(String(e?.message ?? ''))) {
    return new Error(`cannot ensure ${entry.kind} ${what}: ${String(e?.message ?? err)}`, { cause: err });
  }
  return new Error(
    `JetStream cannot reserve the configured size of ${what} (max_bytes ${'maxBytes' in entry ? entry.maxBytes : '?'}): ` +
      "raise the nats-server's jetstream max_file_store (or the account's limit) or lower PERRY_HUB_BLOBS_MAX_BYTES / PERRY_HUB_EVENTS_MAX_BYTES",
    { cause: err },
  );
}

export async function ensureTopology(
  nc: NatsConnection,
  entries: readonly TopologyEntry[],
  placement: Placement = SINGLE,
): Promise<void> {
  const deadline = Date.now() + ENSURE_FOR_MS;
  const jsm = await checkedManager(nc, deadline, placement.signal);
  // Streams before their consumers.
  const ordered = [...entries].sort((a, b) => (a.kind === 'consumer' ? 1 : 0) - (b.kind === 'consumer' ? 1 : 0));
  for (const entry of ordered) {
    for (;;) {
      try {
        await ensureEntry(nc, jsm, entry, placement);
        break;
      } catch (err) {
        // A cluster still forming or busy electing leaders (every service starting at once) may
        // not answer in time or not know enough peers yet to place replicas; ensuring is
        // idempotent, so it is simply tried again for a while.
        if (Date.now() < deadline && isTransient(err) && !placement.signal?.aborted) {
          await new Promise((r) => setTimeout(r, ENSURE_RETRY_DELAY_MS));
          continue;
        }
        throw explain(err, entry);
      }
    }
  }
}

/**
 * The manager, once JetStream answered its API check (an account info request). A server without
 * JetStream says so at once (no responders), and that ends the start; a cluster still electing
 * its meta leader may not answer in time, or be temporarily unavailable (10008): asked again.
 */
async function checkedManager(nc: NatsConnection, deadline: number, signal?: AbortSignal): Promise<JetStreamManager> {
  for (;;) {
    try {
      return await jetstreamManager(nc, { timeout: ENSURE_TIMEOUT_MS });
    } catch (err) {
      const e = err as { name?: unknown; api_error?: { err_code?: number } } | undefined;
      const electing = e?.name === 'TimeoutError' || e?.api_error?.err_code === 10008;
      if (!electing || Date.now() >= deadline || signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, ENSURE_RETRY_DELAY_MS));
    }
  }
}

/**
 * How long one request of ensuring waits; it is then asked again (see ENSURE_FOR_MS). Short: on a
 * cluster, nats-server 2.10 drops the requests about a stream (creates and infos) made while
 * another instance's create of it is in flight, as every instance of a service starting at once
 * does; a request asked again a few seconds later is answered. A single create takes well under
 * a second.
 */
const ENSURE_TIMEOUT_MS = 4_000;
/** How long a start keeps trying while the cluster forms. */
const ENSURE_FOR_MS = 90_000;
const ENSURE_RETRY_DELAY_MS = 500;

/**
 * Not enough peers yet (10005), JetStream temporarily unavailable (10008), no answer in time, and
 * a stream not found (10059): on a cluster, a stream another instance has just created may be
 * reported missing until its copy on the answering server exists (its create was confirmed, or
 * the bucket's create found it, a moment before). Streams are ensured before their consumers, so
 * a stream that really is missing is still reported, once the retries end. Likewise subjects
 * overlapping an existing stream (10065), which a create racing another instance's gets: a
 * stream of another name that really overlaps is reported once the retries end.
 */
function isTransient(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown; api_error?: { err_code?: number } } | undefined;
  const code = e?.api_error?.err_code;
  return (
    e?.name === 'TimeoutError' ||
    code === 10005 ||
    code === 10008 ||
    code === 10059 ||
    code === 10065 ||
    /timeout|no responders|no suitable peers|temporarily unavailable|stream not found|subjects overlap/i.test(
      String(e?.message ?? ''),
    )
  );
}

async function ensureEntry(
  nc: NatsConnection,
  jsm: JetStreamManager,
  entry: TopologyEntry,
  placement: Placement,
): Promise<void> {
  switch (entry.kind) {
    case 'stream':
      await ensureStream(jsm, entry, placement);
      break;
    case 'consumer':
      await ensureConsumer(jsm, entry);
      break;
    case 'kv':
      await new Kvm(jetstream(nc, { timeout: ENSURE_TIMEOUT_MS })).create(entry.bucket, {
        history: entry.history,
        ...(entry.ttlMs > 0 ? { ttl: entry.ttlMs } : {}),
        max_bytes: entry.maxBytes,
        storage: StorageType.File,
        replicas: placement.replicas,
      });
      await reconcileBucket(jsm, backingStream(entry)!, entry.maxBytes, entry.discard, placement);
      break;
    case 'obj':
      await new Objm(jetstream(nc, { timeout: ENSURE_TIMEOUT_MS })).create(entry.bucket, {
        storage: StorageType.File,
        max_bytes: entry.maxBytes,
        replicas: placement.replicas,
      });
      await reconcileBucket(jsm, backingStream(entry)!, entry.maxBytes, undefined, placement);
      break;
  }
}
