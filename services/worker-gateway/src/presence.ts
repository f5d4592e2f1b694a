/**
 * Worker presence in the KV bucket shared by every gateway instance, the scheduler and the
 * vm-controller (key = worker id). Each gateway writes its own workers and keeps a watched copy
 * of everyone's, from which it answers `workers-summary` and the admin routes without reading the
 * bucket per request. Entries of a gateway that died (kill -9) are not counted from the moment its
 * liveness record is gone or expired (the scheduler then re-queues their jobs). A live gateway's
 * record vouches for every entry of it, whatever the entry's age (it rewrites an entry at once
 * when anything about it changes, and deletes it when its worker goes); an entry of a gateway
 * not known to be live counts until its own heartbeat is older than the lost limit. Only
 * gateways write the bucket: a dead gateway's entries are deleted by the live ones once they are
 * `ABANDONED_AFTER_LOST` lost limits old (`abandoned`), long after the scheduler, a new leader
 * included, has read the names of their workers to hold their jobs for them.
 */
import type { KV } from '@nats-io/kv';
import { WorkerPresence } from '@perry-hub/contracts';
import { isValid, jsonOf, watchKv, type InstanceState } from '@perry-hub/runtime';
import type { Logger } from 'pino';

/** An entry of a gateway that is not live, silent this many lost limits, is deleted. */
export const ABANDONED_AFTER_LOST = 2;

/** The only labels the original's status ever reported, in its order (reference 1.2 #1). */
const STATUS_TARGETS = ['macos', 'ios', 'android', 'linux', 'windows'] as const;

export function supportedTargets(workers: readonly WorkerPresence[]): string[] {
  const caps = new Set(workers.flatMap((w) => w.capabilities));
  return STATUS_TARGETS.filter((t) => caps.has(t));
}

export interface PresenceViewOptions {
  readonly kv: KV;
  /** An entry whose heartbeat is older than this belongs to a dead gateway (see `abandoned`). */
  readonly staleMs: number;
  /** What is known of a gateway instance (its liveness record). */
  readonly gatewayState: (gatewayId: string, now: number) => InstanceState;
  /** When a live gateway last vouched for its workers (its liveness record), on its clock. */
  readonly vouchedAt: (gatewayId: string, now: number) => number | undefined;
  readonly log: Logger;
}

export class PresenceView {
  readonly #entries = new Map<string, WorkerPresence>();
  /** Each entry's revision, so a delete of an abandoned one cannot remove a newer write. */
  readonly #revisions = new Map<string, number>();
  readonly #options: PresenceViewOptions;
  #stop: (() => void) | undefined;

  constructor(options: PresenceViewOptions) {
    this.#options = options;
  }

  /** Start watching. The copy catches up within milliseconds; readers accept that lag. */
  async start(): Promise<void> {
    const watch = await watchKv(this.#options.kv);
    this.#stop = () => watch.stop();
    void (async () => {
      for await (const entry of watch) {
        const value = entry.operation === 'PUT' ? jsonOf(entry) : undefined;
        if (isValid(WorkerPresence, value)) {
          this.#entries.set(entry.key, value);
          this.#revisions.set(entry.key, entry.revision);
        } else {
          this.#entries.delete(entry.key);
          this.#revisions.delete(entry.key);
        }
      }
    })().catch((err: unknown) => this.#options.log.error({ err }, 'presence watch ended'));
  }

  /** Workers whose heartbeat is fresh, across all gateway instances. */
  live(now = Date.now()): WorkerPresence[] {
    const out: WorkerPresence[] = [];
    for (const value of this.#entries.values()) {
      // A live gateway vouches for its entries whatever their age (it deletes a gone worker's).
      const vouched = this.#options.vouchedAt(value.gatewayId, now) !== undefined;
      if (!vouched && now - value.heartbeatAt > this.#options.staleMs) continue;
      if (this.#options.gatewayState(value.gatewayId, now) === 'dead') continue;
      out.push(value);
    }
    return out;
  }

  /**
   * Entries of gateways that are not live (dead, or never seen: their record long gone), silent
   * for `ABANDONED_AFTER_LOST` lost limits, with the revision a guarded delete must match.
   */
  abandoned(now = Date.now()): { key: string; revision: number }[] {
    const out: { key: string; revision: number }[] = [];
    for (const [key, value] of this.#entries) {
      if (this.#options.gatewayState(value.gatewayId, now) === 'live') continue;
      if (now - value.heartbeatAt <= ABANDONED_AFTER_LOST * this.#options.staleMs) continue;
      out.push({ key, revision: this.#revisions.get(key)! });
    }
    return out;
  }

  /** The ids of this copy's entries written by one gateway instance (live or not). */
  keysOf(gatewayId: string): string[] {
    const out: string[] = [];
    for (const [key, value] of this.#entries) if (value.gatewayId === gatewayId) out.push(key);
    return out;
  }

  stop(): void {
    this.#stop?.();
  }
}
