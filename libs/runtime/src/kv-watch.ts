/**
 * A KV watch whose creation is asked for again when it is not answered in time. A watch is a
 * single-replica consumer that the cluster's meta leader places on one of the bucket's nodes; on
 * a cluster with a node cut off from the others (a network partition), that node is still a
 * candidate, and a consumer placed there is never confirmed: the request waits out the client's
 * whole JetStream timeout (5 s) and fails. Every third watch made during such a partition failed
 * so, and with them the scheduler's takeovers, five in a row. Asked again, the consumer is placed
 * afresh.
 *
 * An unanswered creation is not given up on: the next one is made beside it, and the first
 * created wins (the others are stopped as they arrive). On a machine so loaded that every
 * creation takes longer than the wait, the first still wins instead of each being dropped.
 */
import type { KV, KvWatchEntry, KvWatchOptions } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/nats-core';

/** How long one creation is waited for before another is made beside it. */
const WATCH_CREATE_MS = 2_000;
/** How long creations are made in all; then the last failure is the caller's. */
const WATCH_CREATE_FOR_MS = 20_000;
/** After a creation failed (rather than went unanswered), the next one is made this soon. */
const RETRY_AFTER_FAILURE_MS = 250;

export type KvWatch = QueuedIterator<KvWatchEntry>;

export function watchKv(kv: KV, options: KvWatchOptions = {}, forMs = WATCH_CREATE_FOR_MS): Promise<KvWatch> {
  // At least one creation gets its whole wait.
  const deadline = Date.now() + Math.max(forMs, WATCH_CREATE_MS);
  return new Promise<KvWatch>((resolve, reject) => {
    let settled = false;
    let pending = 0;
    let lastError: unknown;
    let next: NodeJS.Timeout | undefined;
    const settle = (outcome: { watch: KvWatch } | { error: unknown }) => {
      settled = true;
      clearTimeout(next);
      clearTimeout(giveUp);
      if ('watch' in outcome) resolve(outcome.watch);
      else reject(outcome.error);
    };
    const schedule = (inMs: number) => {
      clearTimeout(next);
      if (Date.now() + inMs < deadline) next = setTimeout(create, inMs);
    };
    const create = () => {
      if (settled) return;
      pending++;
      kv.watch(options).then(
        (watch) => {
          pending--;
          if (settled) watch.stop();
          else settle({ watch });
        },
        (err: unknown) => {
          pending--;
          lastError = err;
          if (settled) return;
          if (Date.now() >= deadline && pending === 0) settle({ error: err });
          else schedule(RETRY_AFTER_FAILURE_MS);
        },
      );
      schedule(WATCH_CREATE_MS);
    };
    const giveUp = setTimeout(() => {
      if (settled) return;
      settle({
        error: lastError ?? new Error(`a KV watch was not created within ${Math.max(forMs, WATCH_CREATE_MS)} ms`),
      });
    }, deadline - Date.now());
    create();
  });
}
