/**
 * Instance liveness: every service instance keeps a short-lived record in the instances bucket,
 * so whoever depends on what an instance holds (the scheduler on a gateway's workers, every
 * gateway's `/status` count) learns within seconds that it died, instead of waiting for the
 * much longer silence that a live instance's worker is allowed.
 *
 * The bucket has no per-message TTL on nats-server 2.10 that a watcher would hear about, so the
 * record carries its own `expiresAt` (like a lease) and readers judge it on their clock.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { InstanceLiveness, type ServiceName } from '@perry-hub/contracts';
import type { Logger } from 'pino';
import { moveToAnotherServer } from './nats.js';
import { isValid, jsonOf } from './validate.js';

/** What a reader knows of one instance: its last record, or that the record was deleted. */
export type InstanceRecord = { readonly kind: 'live'; readonly expiresAt: number } | { readonly kind: 'gone' };

export type InstanceState = 'live' | 'dead' | 'unknown';

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

  constructor(options: LivenessWriterOptions) {
    this.#options = options;
  }

  /** The first write is awaited: nothing the instance registers may predate its record. */
  async start(): Promise<void> {
    await this.#write();
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
    await this.#options.kv.delete(this.#options.instanceId).catch(() => undefined);
  }

  async #write(): Promise<void> {
    if (this.#stopped) return;
    const { kv, instanceId, service, ttlMs } = this.#options;
    const record: InstanceLiveness = { instanceId, service, startedAt: this.#startedAt, expiresAt: Date.now() + ttlMs };
    await kv.put(instanceId, JSON.stringify(record));
  }
}

/** Remove the records of instances known to be dead (the previous run of this all-in-one). */
export async function forgetInstances(kv: KV, instanceIds: readonly string[]): Promise<void> {
  for (const id of instanceIds) await kv.delete(id);
}

/** A watched copy of the instances bucket. */
export class LivenessView {
  readonly #kv: KV;
  readonly #ttlMs: number;
  readonly #records = new Map<string, InstanceRecord>();
  readonly #onGone: (instanceId: string) => void;
  #watchingSince = Date.now();
  #stop: (() => void) | undefined;
  #stopped = false;

  constructor(kv: KV, ttlMs: number, onGone: (instanceId: string) => void = () => undefined) {
    this.#kv = kv;
    this.#ttlMs = ttlMs;
    this.#onGone = onGone;
  }

  /**
   * Resolves once the bucket's current records are in: judgements before that would be guesses.
   * With `nc`, every reconnect of ours restarts the wait before an expiry is believed.
   */
  async start(log: Logger, nc?: NatsConnection): Promise<void> {
    this.#watchingSince = Date.now();
    if (nc) {
      void (async () => {
        for await (const s of nc.status()) {
          if (this.#stopped) break;
          if (s.type === 'reconnect') this.reconnected();
        }
      })();
    }
    const watch = await this.#kv.watch();
    this.#stop = () => watch.stop();
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    void (async () => {
      for await (const entry of watch) {
        this.#apply(entry);
        if (entry.delta === 0) caughtUp();
      }
    })().catch((err: unknown) => log.error({ err }, 'instances watch ended'));
    // An empty bucket sends nothing to catch up with.
    const status = await this.#kv.status();
    if (status.values === 0) caughtUp();
    await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
  }

  /** After our own connection was down, expiries we could not hear renewed are not trusted yet. */
  reconnected(now = Date.now()): void {
    this.#watchingSince = now;
  }

  state(instanceId: string, now = Date.now()): InstanceState {
    return instanceState(this.#records.get(instanceId), now, this.#watchingSince, this.#ttlMs);
  }

  /**
   * When a live instance last vouched for itself (its latest record's write, on its own clock:
   * `expiresAt` less the TTL); undefined unless the instance is live. A gateway's record vouches
   * for its workers too: their presence entries need no heartbeats of their own while it is fresh.
   */
  vouchedAt(instanceId: string, now = Date.now()): number | undefined {
    const record = this.#records.get(instanceId);
    if (record?.kind !== 'live' || this.state(instanceId, now) !== 'live') return undefined;
    return record.expiresAt - this.#ttlMs;
  }

  stop(): void {
    this.#stopped = true;
    this.#stop?.();
  }

  #apply(entry: KvEntry): void {
    if (entry.operation !== 'PUT') {
      this.#records.set(entry.key, { kind: 'gone' });
      this.#onGone(entry.key);
      return;
    }
    const value = jsonOf(entry);
    if (isValid(InstanceLiveness, value)) this.#records.set(entry.key, { kind: 'live', expiresAt: value.expiresAt });
  }
}
