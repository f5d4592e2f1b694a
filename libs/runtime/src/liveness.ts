/**
 * Instance liveness: every service instance keeps a short-lived record in the instances bucket,
 * so whoever depends on what an instance holds (the scheduler on a gateway's workers, every
 * gateway's `/status` count) learns within seconds that it died, instead of waiting for the
 * much longer silence that a live instance's worker is allowed.
 *
 * The bucket has no per-message TTL on nats-server 2.10 that a watcher would hear about, so the
 * record carries its own `expiresAt` (like a lease) and readers judge it on their clock.
 *
 * A record's key is `<service>.<instanceId>` (`instanceKey`): a reader watches only the services
 * it judges (the scheduler and the gateways the gateways, the license service the ingest
 * instances), so the frequent refreshes of the others never reach it.
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { InstanceLiveness, SERVICE_NAMES, type ServiceName } from '@perry-hub/contracts';
import type { Logger } from 'pino';
import { watchKv } from './kv-watch.js';
import { moveToAnotherServer } from './nats.js';
import { JETSTREAM_PUBLISH_RETRY_MS, retrying } from './retry.js';
import { isValid, jsonOf } from './validate.js';

/** What a reader knows of one instance: its last record, or that the record was deleted. */
export type InstanceRecord =
  ({ readonly kind: 'live'; readonly expiresAt: number } & PresenceStamp) | { readonly kind: 'gone' };

/** What a gateway's record says of its presence writes (`InstanceLiveness`). */
export type PresenceStamp = Pick<InstanceLiveness, 'presenceRevision' | 'presenceCurrentAt'>;

/**
 * What a live instance's latest record says for it: when it was written (on the writer's clock)
 * and, for a gateway, how far its presence writes had gone.
 */
export type Vouch = { readonly at: number } & PresenceStamp;

/** What an instance adds to each of its records (a gateway: its `PresenceStamp`). */
export type LivenessStamp = () => PresenceStamp;

export type InstanceState = 'live' | 'dead' | 'unknown';

/** A new instance id: its service's name, a dash and 8 random hex digits. */
export function newInstanceId(service: ServiceName): string {
  return `${service}-${randomBytes(4).toString('hex')}`;
}

/** The key of an instance's record: `<service>.<instanceId>`. */
export function instanceKey(service: ServiceName, instanceId: string): string {
  return `${service}.${instanceId}`;
}

/** The service an id of `newInstanceId` names, or undefined for an id of another form. */
export function serviceOfInstance(instanceId: string): ServiceName | undefined {
  return SERVICE_NAMES.find((service) => instanceId.startsWith(`${service}-`));
}

/**
 * Pure: is an instance alive? A deleted record means dead at once (an orderly stop, or the same
 * all-in-one restarted). An expired one means dead only once the reader itself has watched for a
 * whole TTL: after the reader's own (re)connect, writers may not have had the chance to refresh.
 * No record at all is `unknown` (a record not yet seen, or long gone): callers fall back to slower
 * rules rather than guess.
 */
export function instanceState(
  record: InstanceRecord | undefined,
  now: number,
  watchingSince: number,
  ttlMs: number,
): InstanceState {
  if (!record) return 'unknown';
  if (record.kind === 'gone') return 'dead';
  return now > Math.max(record.expiresAt, watchingSince + ttlMs) ? 'dead' : 'live';
}

export interface LivenessWriterOptions {
  readonly kv: KV;
  readonly instanceId: string;
  readonly service: ServiceName;
  readonly ttlMs: number;
  readonly log: Logger;
  /**
   * The instance's connection: when the record cannot be written through it for
   * `MOVE_AFTER_FAILING_MS`, its nats-server has likely lost the rest of a cluster (a network
   * partition keeps clients attached to the cut-off node), and it is asked to reconnect, which
   * picks another server of `PERRY_HUB_NATS_URL`.
   */
  readonly nc?: Pick<NatsConnection, 'reconnect' | 'getServer' | 'status' | 'getServers'>;
}

/** JetStream unreachable this long through one server: try another (see `nc`). */
export const MOVE_AFTER_FAILING_MS = 4_000;
/** At most one such move this often, so a cluster without quorum is not a reconnect storm. */
const MOVE_AT_MOST_EVERY_MS = 15_000;
const RECHECK_AFTER_FAILURE_MS = 1_000;

/** Keeps this instance's record fresh: written before the service starts, deleted when it stops. */
export class LivenessWriter {
  readonly #options: LivenessWriterOptions;
  readonly #startedAt = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failingSince: number | undefined;
  #movedAt = 0;
  #recheck: NodeJS.Timeout | undefined;
  #stamp: LivenessStamp = () => ({});

  constructor(options: LivenessWriterOptions) {
    this.#options = options;
  }

  /** From now on each record carries what `stamp` returns when it is written. */
  stampWith(stamp: LivenessStamp): void {
    this.#stamp = stamp;
  }

  /**
   * The first write is awaited: nothing the instance registers may predate its record. It rides
   * out a bucket that does not answer yet (no responders, a timeout): on a cluster, a stream
   * just created is not reachable through every node at once, and one whose node has just died
   * has no leader for seconds. It fails after JETSTREAM_PUBLISH_RETRY_MS, or once stopped.
   */
  async start(): Promise<void> {
    await retrying(() => this.#write(), {
      forMs: JETSTREAM_PUBLISH_RETRY_MS,
      maxDelayMs: 1_000,
      cancelled: () => this.#stopped,
    });
    const everyMs = Math.max(50, Math.floor(this.#options.ttlMs / 3));
    this.#timer = setInterval(() => this.#refresh(), everyMs);
    this.#timer.unref();
  }

  #refresh(): void {
    this.#write().then(
      () => (this.#failingSince = undefined),
      (err: unknown) => {
        this.#options.log.warn({ err }, 'liveness record not refreshed');
        this.#failed();
      },
    );
  }

  /**
   * A failed write is tried again soon, whatever the refresh period, so that a connection that
   * cannot reach JetStream is noticed within MOVE_AFTER_FAILING_MS and moved.
   */
  #failed(): void {
    const now = Date.now();
    this.#failingSince ??= now;
    const { nc, log } = this.#options;
    if (!this.#stopped && !this.#recheck) {
      this.#recheck = setTimeout(() => {
        this.#recheck = undefined;
        this.#refresh();
      }, RECHECK_AFTER_FAILURE_MS);
      this.#recheck.unref();
    }
    // With one server there is nowhere to move: a reconnect would only drop the subscriptions.
    if (!nc || nc.getServers().length < 2 || this.#stopped || now - this.#failingSince < MOVE_AFTER_FAILING_MS) return;
    if (now - this.#movedAt < MOVE_AT_MOST_EVERY_MS) return;
    this.#movedAt = now;
    this.#failingSince = undefined;
    log.warn(
      { server: nc.getServer(), failingMs: MOVE_AFTER_FAILING_MS },
      'JetStream unreachable through this NATS server: moving to another',
    );
    moveToAnotherServer(nc, log).catch((err: unknown) => log.warn({ err }, 'NATS reconnect failed'));
  }

  /** Stop refreshing without deleting the record: what a kill -9 leaves behind (for tests). */
  abandon(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#recheck);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#recheck);
    const { kv, service, instanceId } = this.#options;
    await kv.delete(instanceKey(service, instanceId)).catch(() => undefined);
  }

  async #write(): Promise<void> {
    if (this.#stopped) return;
    const { kv, instanceId, service, ttlMs } = this.#options;
    const record: InstanceLiveness = {
      instanceId,
      service,
      startedAt: this.#startedAt,
      expiresAt: Date.now() + ttlMs,
      ...this.#stamp(),
    };
    await kv.put(instanceKey(service, instanceId), JSON.stringify(record));
  }
}

/**
 * Remove the records of instances known to be dead (the previous run of this all-in-one). Only
 * ids of `newInstanceId`'s form name the service their record is kept under; others are skipped
 * (their records expire).
 */
export async function forgetInstances(kv: KV, instanceIds: readonly string[]): Promise<void> {
  for (const id of instanceIds) {
    const service = serviceOfInstance(id);
    if (service) await kv.delete(instanceKey(service, id));
  }
}

export interface LivenessViewOptions {
  /** The instances bucket's name. */
  readonly bucket: string;
  /** The services whose instances this reader judges: only their records are delivered to it. */
  readonly services: readonly ServiceName[];
  readonly ttlMs: number;
  /** Called with an instance's id when its record is deleted. */
  readonly onGone?: (instanceId: string) => void;
  /**
   * Called after the watch was found behind the bucket and started afresh (see
   * `CATCH_UP_WINDOW_MS`): judgements made before it may have been wrong.
   */
  readonly onBehind?: () => void;
}

/**
 * How long after a record expired unrenewed the view still asks the bucket whether its writer
 * renewed it after all. On a cluster, a watch's consumer lives on one node; cut off from the
 * reader's node, it goes silent while the reader's connection is fine, and the library notices
 * only after two missed heartbeats of its ordered consumer, 30 s each. Meanwhile every record
 * would expire and every instance look dead. A writer that is really gone renews nothing, so the
 * bucket holds the record the view has; a newer one means the watch is behind: it is started
 * afresh. The asking stops this long after the expiry (a killed instance's record stays).
 */
const CATCH_UP_WINDOW_MS = 60_000;
/** A newer record the watch has not delivered this long after the bucket showed it: behind. */
const DELIVERY_MARGIN_MS = 500;

/** A watched copy of the records of some services' instances (`LivenessViewOptions.services`). */
export class LivenessView {
  readonly #options: LivenessViewOptions;
  readonly #records = new Map<string, InstanceRecord>();
  /** Each instance's record key and the revision of its record as last delivered. */
  readonly #seen = new Map<string, { key: string; revision: number }>();
  #watchingSince = Date.now();
  #kv: KV | undefined;
  #log: Logger | undefined;
  #stop: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  #stopped = false;

  constructor(options: LivenessViewOptions) {
    this.#options = options;
  }

  /**
   * Resolves once the current records of the watched services are in: judgements before that
   * would be guesses. Every reconnect of ours restarts the wait before an expiry is believed.
   */
  async start(log: Logger, nc: NatsConnection): Promise<void> {
    this.#watchingSince = Date.now();
    this.#log = log;
    void (async () => {
      for await (const s of nc.status()) {
        if (this.#stopped) break;
        if (s.type === 'reconnect') this.reconnected();
      }
    })();
    const { bucket, services, ttlMs } = this.#options;
    this.#kv = await new Kvm(nc).open(bucket);
    const { caughtUp } = await this.#watch();
    this.#timer = setInterval(() => void this.#checkCaughtUp(), ttlMs);
    this.#timer.unref();
    // No record of the watched services sends nothing to catch up with.
    if ((await recordsOf(nc, bucket, services)) === 0) return;
    await Promise.race([caughtUp, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
  }

  /** Watches the records; `caughtUp` resolves once the watch delivered what the bucket held. */
  async #watch(): Promise<{ caughtUp: Promise<void> }> {
    const watch = await watchKv(this.#kv!, { key: this.#options.services.map((service) => `${service}.>`) });
    this.#stop = () => watch.stop();
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    void (async () => {
      for await (const entry of watch) {
        this.#apply(entry);
        if (entry.delta === 0) caughtUp();
      }
    })().catch((err: unknown) => this.#log?.error({ err }, 'instances watch ended'));
    return { caughtUp: ready };
  }

  /**
   * Asks the bucket for the records that expired unrenewed lately (CATCH_UP_WINDOW_MS); if it
   * holds a newer one that the watch does not deliver, the watch is started afresh.
   */
  async #checkCaughtUp(now = Date.now()): Promise<void> {
    if (this.#checking || this.#stopped) return;
    this.#checking = true;
    try {
      for (const [instanceId, record] of this.#records) {
        if (record.kind !== 'live' || now <= record.expiresAt || now - record.expiresAt > CATCH_UP_WINDOW_MS) continue;
        const seen = this.#seen.get(instanceId);
        const stored = seen && (await this.#kv!.get(seen.key));
        if (!seen || !stored || stored.revision <= seen.revision) continue;
        await new Promise((resolve) => setTimeout(resolve, DELIVERY_MARGIN_MS));
        if (this.#stopped || this.#seen.get(instanceId)!.revision >= stored.revision) continue;
        this.#log?.warn(
          { bucket: this.#options.bucket, instanceId, delivered: seen.revision, stored: stored.revision },
          'the watch of liveness records fell behind its bucket (its consumer cannot be reached); watching afresh',
        );
        // No expiry is believed until the new watch has had a TTL to deliver the records.
        this.#stop?.();
        this.#watchingSince = Date.now();
        await this.#watch();
        this.#watchingSince = Date.now();
        this.#options.onBehind?.();
        return;
      }
    } catch (err) {
      this.#log?.warn(
        { err, bucket: this.#options.bucket },
        'could not compare the liveness records with their bucket',
      );
    } finally {
      this.#checking = false;
    }
  }

  /** After our own connection was down, expiries we could not hear renewed are not trusted yet. */
  reconnected(now = Date.now()): void {
    this.#watchingSince = now;
  }

  state(instanceId: string, now = Date.now()): InstanceState {
    return instanceState(this.#records.get(instanceId), now, this.#watchingSince, this.#options.ttlMs);
  }

  /**
   * When a live instance last vouched for itself (its latest record's write, on its own clock:
   * `expiresAt` less the TTL); undefined unless the instance is live. A gateway's record vouches
   * for its workers too: their presence entries need no heartbeats of their own while it is fresh.
   */
  vouchedAt(instanceId: string, now = Date.now()): number | undefined {
    return this.vouch(instanceId, now)?.at;
  }

  /** `vouchedAt`, with the presence revision the record was written at (a gateway's). */
  vouch(instanceId: string, now = Date.now()): Vouch | undefined {
    const record = this.#records.get(instanceId);
    if (record?.kind !== 'live' || this.state(instanceId, now) !== 'live') return undefined;
    const { expiresAt, kind: _, ...stamp } = record;
    return { at: expiresAt - this.#options.ttlMs, ...stamp };
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#stop?.();
  }

  #apply(entry: KvEntry): void {
    // `<service>.<instanceId>`: the id follows the first dot.
    const instanceId = entry.key.slice(entry.key.indexOf('.') + 1);
    this.#seen.set(instanceId, { key: entry.key, revision: entry.revision });
    if (entry.operation !== 'PUT') {
      this.#records.set(instanceId, { kind: 'gone' });
      this.#options.onGone?.(instanceId);
      return;
    }
    const value = jsonOf(entry);
    if (!isValid(InstanceLiveness, value)) return;
    const { expiresAt, presenceRevision, presenceCurrentAt } = value;
    this.#records.set(instanceId, {
      kind: 'live',
      expiresAt,
      ...(presenceRevision === undefined ? {} : { presenceRevision }),
      ...(presenceCurrentAt === undefined ? {} : { presenceCurrentAt }),
    });
  }
}

/** How many records (deleted ones too) the bucket keeps for `services`: one request. */
async function recordsOf(nc: NatsConnection, bucket: string, services: readonly ServiceName[]): Promise<number> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const prefix = `$KV.${bucket}.`;
  const filter = services.length === 1 ? `${prefix}${services[0]}.>` : `${prefix}>`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: filter });
  const wanted = services.map((service) => `${prefix}${service}.`);
  return Object.entries(info.state.subjects ?? {})
    .filter(([subject]) => wanted.some((w) => subject.startsWith(w)))
    .reduce((sum, [, count]) => sum + count, 0);
}
