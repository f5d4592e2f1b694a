/**
 * Fixed-window counters in the NATS KV bucket `<p>-limits`, so every ingest instance counts the
 * same attempts. An increment is a compare-and-set on the key's revision, retried on conflict:
 * two instances counting the same address at once both land. Keys name the window
 * (`<scope>.<digest of the subject>.<window number>`), so a new window starts from zero without
 * a reset, and old windows expire with the bucket's TTL. Subjects (addresses, license keys) are
 * stored only as digests.
 */
import { createHash } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';

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

export class WindowCounters {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, bucket: string): Promise<WindowCounters> {
    return new WindowCounters(await new Kvm(nc).open(bucket));
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
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(key);
      const current = entry && entry.operation === 'PUT' ? Number(entry.string()) || 0 : 0;
      try {
        if (entry) await this.kv.update(key, String(current + 1), entry.revision);
        else await this.kv.create(key, String(current + 1));
        return { count: current + 1, retryAfterSecs };
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw new Error(`rate-limit counter ${key}: too much contention`);
  }

  /** The current window's count without adding to it. */
  async peek(scope: string, subject: string, windowMs: number, now = Date.now()): Promise<WindowCount> {
    const { key, retryAfterSecs } = this.where(scope, subject, windowMs, now);
    const entry = await this.kv.get(key);
    return { count: entry && entry.operation === 'PUT' ? Number(entry.string()) || 0 : 0, retryAfterSecs };
  }
}
