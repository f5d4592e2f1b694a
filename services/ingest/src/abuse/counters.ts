/**
 * Fixed-window counters in the NATS KV bucket `<p>-limits`, so every ingest instance counts the
 * same attempts. An increment is a compare-and-set on the key's revision, retried on conflict:
 * two instances counting the same address at once both land. Keys name the window
 * (`<scope>.<digest of the subject>.<window number>`), so a new window starts from zero without
 * a reset, and old windows expire with the bucket's TTL. Subjects (addresses, license keys) are
 * stored only as digests.
 *
 * Submissions are counted in memory and added to the bucket every few (`hitShared`): most
 * addresses and licenses submit a few builds an hour, far below their limits.
 *
 * Failed authentications are asked about on every authenticated request (a build, each worker
 * transfer) and almost never recorded: those counters are watched into memory once, so asking
 * costs no round trip.
 */
import { createHash } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { watchKv } from '@perry-hub/runtime';

export interface WindowCount {
  /** Attempts in the current window, this one included for `hit`. */
  count: number;
  /** Seconds until the window ends (at least 1). */
  retryAfterSecs: number;
}

const MAX_CAS_ATTEMPTS = 20;

function isConflict(err: unknown): boolean {
  const e = err as { message?: unknown; api_error?: { err_code?: number } } | undefined;
  return e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(String(e?.message ?? ''));
}

/** The scope whose counters are watched into memory (see `peek`). */
const WATCHED_SCOPE = 'authfail';
/** Watched keys kept before the windows that ended are dropped. */
const WATCHED_MAX_KEYS = 10_000;

export class WindowCounters {
  /** Counts of the watched scope by key, while the watch runs. */
  private watched: Map<string, number> | undefined;

  /** The count and revision of this instance's last write per key (a compare-and-set needs both). */
  private readonly written = new Map<string, { count: number; revision: number }>();

  /** Attempts counted by this instance and not yet added to the bucket, per key (see `hitShared`). */
  private readonly unshared = new Map<string, number>();

  private constructor(private readonly kv: KV) {}

  private remember(key: string, count: number, revision: number): void {
    // Keys name their window: once many are known, the old windows' are of no use.
    if (this.written.size >= WATCHED_MAX_KEYS) this.written.clear();
    this.written.set(key, { count, revision });
    // This instance's own write counts at once, not when its watch echoes it: the client that
    // got its answer may ask again sooner than that.
    if (this.watched && key.startsWith(`${WATCHED_SCOPE}.`)) raise(this.watched, key, count);
  }

  static async open(nc: NatsConnection, bucket: string): Promise<WindowCounters> {
    const counters = new WindowCounters(await new Kvm(nc).open(bucket));
    await counters.watch();
    return counters;
  }

  /**
   * Follows the watched scope's counters. The replay of the current ones takes milliseconds at
   * start, during which a count may read low: a limit, not a ledger. Without the watch (it ended
   * with its connection), `peek` asks the bucket.
   */
  private async watch(): Promise<void> {
    const seen = new Map<string, number>();
    const watcher = await watchKv(this.kv, { key: `${WATCHED_SCOPE}.>` });
    this.watched = seen;
    void (async () => {
      for await (const e of watcher) {
        // A window's count only grows: an echo older than this instance's own write changes nothing.
        if (e.operation === 'PUT') raise(seen, e.key, Number(e.string()) || 0);
        else seen.delete(e.key);
      }
    })()
      .catch(() => undefined)
      .finally(() => (this.watched = undefined));
  }

  private where(scope: string, subject: string, windowMs: number, now: number) {
    const window = Math.floor(now / windowMs);
    const digest = createHash('sha256').update(subject).digest('hex').slice(0, 32);
    const retryAfterSecs = Math.max(1, Math.ceil(((window + 1) * windowMs - now) / 1000));
    return { key: `${scope}.${digest}.${window}`, retryAfterSecs };
  }

  /** Count one attempt of `subject` in `scope`'s current window. */
  async hit(scope: string, subject: string, windowMs: number, now = Date.now()): Promise<WindowCount> {
    const { key, retryAfterSecs } = this.where(scope, subject, windowMs, now);
    return { count: await this.add(key, 1), retryAfterSecs };
  }

  /**
   * Count one attempt as `hit` does, but add it to the bucket only with every `shareEvery`-th
   * attempt this instance counts of the key: the others are counted in memory. The count
   * answered is the bucket's at this instance's last write plus what it has not shared, so an
   * instance alone is exact, and each instance adds at most `shareEvery - 1` attempts the
   * others do not know of (and a restarted instance forgets at most as many).
   */
  async hitShared(
    scope: string,
    subject: string,
    windowMs: number,
    shareEvery: number,
    now = Date.now(),
  ): Promise<WindowCount> {
    const { key, retryAfterSecs } = this.where(scope, subject, windowMs, now);
    const pending = (this.unshared.get(key) ?? 0) + 1;
    if (pending < shareEvery) {
      // Keys name their window: once many are held, the old windows' are of no use.
      if (this.unshared.size >= WATCHED_MAX_KEYS && !this.unshared.has(key)) this.dropEndedWindows(this.unshared, key);
      this.unshared.set(key, pending);
      return { count: (this.written.get(key)?.count ?? 0) + pending, retryAfterSecs };
    }
    // Taken at once (an attempt counted meanwhile starts the next share), and put back if the
    // bucket cannot be reached: none is lost.
    this.unshared.delete(key);
    try {
      return { count: await this.add(key, pending), retryAfterSecs };
    } catch (err) {
      this.unshared.set(key, (this.unshared.get(key) ?? 0) + pending);
      throw err;
    }
  }

  private dropEndedWindows(counts: Map<string, unknown>, current: string): void {
    const window = current.slice(current.lastIndexOf('.'));
    for (const k of counts.keys()) if (!k.endsWith(window)) counts.delete(k);
  }

  /** Adds `n` to the key's count in the bucket; answers the count after. */
  private async add(key: string, n: number): Promise<number> {
    // This instance's own last write of the key is usually still the latest: try it first.
    const last = this.written.get(key);
    if (last) {
      try {
        const revision = await this.kv.update(key, String(last.count + n), last.revision);
        this.remember(key, last.count + n, revision);
        return last.count + n;
      } catch (err) {
        if (!isConflict(err)) throw err;
        this.written.delete(key);
      }
    } else {
      // A key this instance has not written is usually a new window's: create it without reading.
      try {
        const revision = await this.kv.create(key, String(n));
        this.remember(key, n, revision);
        return n;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(key);
      const current = entry && entry.operation === 'PUT' ? Number(entry.string()) || 0 : 0;
      try {
        const revision = entry
          ? await this.kv.update(key, String(current + n), entry.revision)
          : await this.kv.create(key, String(current + n));
        this.remember(key, current + n, revision);
        return current + n;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw new Error(`rate-limit counter ${key}: too much contention`);
  }

  /** The current window's count without adding to it. */
  async peek(scope: string, subject: string, windowMs: number, now = Date.now()): Promise<WindowCount> {
    const { key, retryAfterSecs } = this.where(scope, subject, windowMs, now);
    const watched = scope === WATCHED_SCOPE ? this.watched : undefined;
    if (watched) {
      if (watched.size > WATCHED_MAX_KEYS) {
        const current = key.slice(key.lastIndexOf('.'));
        for (const k of watched.keys()) if (!k.endsWith(current)) watched.delete(k);
      }
      return { count: watched.get(key) ?? 0, retryAfterSecs };
    }
    const entry = await this.kv.get(key);
    return { count: entry && entry.operation === 'PUT' ? Number(entry.string()) || 0 : 0, retryAfterSecs };
  }
}

function raise(counts: Map<string, number>, key: string, count: number): void {
  counts.set(key, Math.max(counts.get(key) ?? 0, count));
}
