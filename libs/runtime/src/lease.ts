/**
 * A lease in a KV bucket: at most one instance of a service acts at a time (the vm-controller
 * starting VMs, the scheduler dispatching). The leases bucket has no TTL, so the entry carries
 * its own expiry, `{holder, expiresAt}`, and every write is a compare-and-set on the entry's
 * revision: `create` when the key is absent (or deleted), `update(key, value, revision)` to renew
 * our own lease or to take over one whose expiry has passed. A writer that lost the race gets
 * "wrong last sequence" and simply is not the holder.
 *
 * Expiry is judged on each contender's wall clock, so clocks must agree to well within the TTL
 * (NTP does). The holder also stops believing in its lease once its own deadline passes without a
 * successful renewal, which happens before anyone else may take over (the deadline is computed
 * from the time the renewal was sent).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from 'pino';

export interface LeaseRecord {
  holder: string;
  /** Epoch ms after which anyone may take the lease over. */
  expiresAt: number;
}

export interface LeaseOptions {
  key: string;
  /** Unique per process (an instance id). */
  holder: string;
  ttlMs: number;
  /** Holders known to be dead (this launcher's previous run): their unexpired leases are taken at once. */
  predecessors?: readonly string[];
  /** Called once each time the lease is won. */
  onAcquired?: () => void;
  /** Called when a held lease is lost without release(): taken over, or not renewed in time. */
  onLost?: (reason: 'taken' | 'expired') => void;
  log?: Logger;
  /** For tests; defaults to Date.now. */
  now?: () => number;
}

const encoder = new TextEncoder();

function parse(entry: KvEntry | null): LeaseRecord | null {
  if (!entry || entry.operation !== 'PUT' || entry.length === 0) return null;
  try {
    const value = entry.json<Partial<LeaseRecord>>();
    if (typeof value.holder === 'string' && typeof value.expiresAt === 'number') return value as LeaseRecord;
  } catch {
    // A garbled entry is treated as expired: whoever writes next repairs it.
  }
  return { holder: '', expiresAt: 0 };
}

/** JetStream's answer to a compare-and-set whose expected revision is stale. */
function isConflict(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(String(e?.message ?? ''));
}

export class Lease {
  readonly #kv: KV;
  readonly #options: LeaseOptions;
  readonly #now: () => number;
  #revision = 0;
  #expiresAt = 0;
  #held = false;
  #timer: NodeJS.Timeout | undefined;
  #campaigning = false;
  #closed = false;

  constructor(kv: KV, options: LeaseOptions) {
    if (!(options.ttlMs > 0)) throw new RangeError('lease ttlMs must be positive');
    this.#kv = kv;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** True while we hold the lease and its deadline (on our clock) has not passed. */
  isHolder(): boolean {
    return this.#held && this.#now() < this.#expiresAt;
  }

  /** True once close() was called: the lease is no longer campaigned for. */
  get closed(): boolean {
    return this.#closed;
  }

  get holder(): string {
    return this.#options.holder;
  }

  /** One attempt to take the lease. Resolves true if we hold it afterwards. */
  async acquire(): Promise<boolean> {
    if (this.#closed) return false;
    if (this.#held) return this.renew();
    const { key, holder } = this.#options;
    const entry = await this.#kv.get(key);
    const current = parse(entry);
    const sentAt = this.#now();
    const dead = this.#options.predecessors?.includes(current?.holder ?? '') === true;
    if (current && current.holder !== holder && current.expiresAt > sentAt && !dead) return false;
    const body = this.#record(sentAt);
    try {
      this.#revision =
        entry && current ? await this.#kv.update(key, body, entry.revision) : await this.#kv.create(key, body);
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
    this.#held = true;
    this.#expiresAt = sentAt + this.#options.ttlMs;
    this.#options.log?.info({ lease: key, holder }, 'lease acquired');
    this.#options.onAcquired?.();
    return true;
  }

  /**
   * Extend our lease. Resolves false (and reports onLost) if someone else holds it now. A renewal
   * still unanswered at our deadline loses the lease then, not when the request gives up: its
   * timeout (5 s) may be longer than the TTL, and a contender takes over at the deadline.
   */
  async renew(): Promise<boolean> {
    if (!this.#held) return false;
    const sentAt = this.#now();
    // (Past the deadline already, the answer says how it was lost: taken, or expired.)
    const deadline =
      this.#expiresAt > sentAt
        ? setTimeout(() => {
            if (this.#now() >= this.#expiresAt) this.#lose('expired');
          }, this.#expiresAt - sentAt).unref()
        : undefined;
    try {
      this.#revision = await this.#kv.update(this.#options.key, this.#record(sentAt), this.#revision);
    } catch (err) {
      if (isConflict(err)) {
        this.#lose('taken');
        return false;
      }
      // A NATS hiccup: keep the lease until our own deadline, the next tick tries again.
      this.#options.log?.warn({ err, lease: this.#options.key }, 'lease renewal failed');
      if (this.#now() >= this.#expiresAt) this.#lose('expired');
      return this.isHolder();
    } finally {
      clearTimeout(deadline);
    }
    // Lost at the deadline while the answer was on its way: the record is ours again, and the
    // next tick takes it as a new term (whoever stepped down starts afresh).
    if (!this.#held) return false;
    this.#expiresAt = sentAt + this.#options.ttlMs;
    return true;
  }

  /** Give the lease up at once, so a contender does not wait for the expiry. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    this.#expiresAt = 0;
    try {
      await this.#kv.delete(this.#options.key, { previousSeq: this.#revision });
      this.#options.log?.info({ lease: this.#options.key }, 'lease released');
    } catch (err) {
      // Already taken over or unreachable: either way it is no longer ours.
      if (!isConflict(err)) this.#options.log?.warn({ err, lease: this.#options.key }, 'lease release failed');
    }
  }

  /**
   * Keep contending: renew at ttl/3 while held, try to acquire at ttl/3 while not. Errors are
   * logged and retried on the next tick.
   */
  campaign(): void {
    if (this.#campaigning || this.#closed) return;
    this.#campaigning = true;
    const tick = async (): Promise<void> => {
      try {
        if (this.#held && this.#now() >= this.#expiresAt) this.#lose('expired');
        if (this.#held) await this.renew();
        else await this.acquire();
      } catch (err) {
        this.#options.log?.warn({ err, lease: this.#options.key }, 'lease attempt failed');
      }
      if (this.#campaigning && !this.#closed) this.#schedule(tick);
    };
    void tick();
  }

  /** Stop contending and release the lease if held. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#campaigning = false;
    clearTimeout(this.#timer);
    await this.release();
  }

  #schedule(tick: () => Promise<void>): void {
    this.#timer = setTimeout(() => void tick(), Math.max(1, Math.floor(this.#options.ttlMs / 3)));
    this.#timer.unref();
  }

  #record(now: number): Uint8Array {
    const record: LeaseRecord = { holder: this.#options.holder, expiresAt: now + this.#options.ttlMs };
    return encoder.encode(JSON.stringify(record));
  }

  #lose(reason: 'taken' | 'expired'): void {
    if (!this.#held) return;
    this.#held = false;
    this.#options.log?.warn({ lease: this.#options.key, reason }, 'lease lost');
    this.#options.onLost?.(reason);
  }
}
