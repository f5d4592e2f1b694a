/**
 * Worker presence in the KV bucket shared by every gateway instance, the scheduler and the
 * vm-controller (key = worker id). Each gateway writes its own workers and keeps a watched copy
 * of everyone's, from which it answers `workers-summary` and the admin routes without reading the
 * bucket per request. Entries of a gateway that died (kill -9) are not counted from the moment its
 * liveness record is gone or expired (the scheduler then deletes them and re-queues their jobs),
 * nor once they were last heard of longer ago than the lost limit: their entry's heartbeat, or
 * later their gateway's liveness record, which vouches for every entry of a live gateway (it
 * rewrites an entry at once when anything about it changes, and deletes it when its worker goes).
 */
import type { KV } from '@nats-io/kv';
import { WorkerPresence } from '@perry-hub/contracts';
import { isValid, jsonOf, type InstanceState } from '@perry-hub/runtime';
import type { Logger } from 'pino';

/** The only labels the original's status ever reported, in its order (reference 1.2 #1). */
const STATUS_TARGETS = ['macos', 'ios', 'android', 'linux', 'windows'] as const;

export function supportedTargets(workers: readonly WorkerPresence[]): string[] {
  const caps = new Set(workers.flatMap((w) => w.capabilities));
  return STATUS_TARGETS.filter((t) => caps.has(t));
}

export interface PresenceViewOptions {
  readonly kv: KV;
  /** An entry whose heartbeat is older than this belongs to a dead gateway (the scheduler deletes it). */
  readonly staleMs: number;
  /** What is known of a gateway instance (its liveness record). */
  readonly gatewayState: (gatewayId: string, now: number) => InstanceState;
  /** When a live gateway last vouched for its workers (its liveness record), on its clock. */
  readonly vouchedAt: (gatewayId: string, now: number) => number | undefined;
  readonly log: Logger;
}

export class PresenceView {
  readonly #entries = new Map<string, WorkerPresence>();
  readonly #options: PresenceViewOptions;
  #stop: (() => void) | undefined;

  constructor(options: PresenceViewOptions) {
    this.#options = options;
  }

  /** Start watching. The copy catches up within milliseconds; readers accept that lag. */
  async start(): Promise<void> {
    const watch = await this.#options.kv.watch();
    this.#stop = () => watch.stop();
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== 'PUT') {
          this.#entries.delete(entry.key);
          continue;
        }
        const value = jsonOf(entry);
        if (isValid(WorkerPresence, value)) this.#entries.set(entry.key, value);
        else this.#entries.delete(entry.key);
      }
    })().catch((err: unknown) => this.#options.log.error({ err }, 'presence watch ended'));
  }

  /** Workers whose heartbeat is fresh, across all gateway instances. */
  live(now = Date.now()): WorkerPresence[] {
    const out: WorkerPresence[] = [];
    for (const value of this.#entries.values()) {
      const heardAt = Math.max(value.heartbeatAt, this.#options.vouchedAt(value.gatewayId, now) ?? 0);
      if (now - heardAt > this.#options.staleMs) continue;
      if (this.#options.gatewayState(value.gatewayId, now) === 'dead') continue;
      out.push(value);
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
