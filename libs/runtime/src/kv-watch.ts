/**
 * A KV watch whose creation is asked for again when it is not answered in time. A watch is a
 * single-replica consumer that the cluster's meta leader places on one of the bucket's nodes; on
 * a cluster with a node cut off from the others (a network partition), that node is still a
 * candidate, and a consumer placed there is never confirmed: the request waits out the client's
 * whole JetStream timeout (5 s) and fails. Every third watch made during such a partition failed
 * so, and with them the scheduler's takeovers, five in a row. Asked again, the consumer is placed
 * afresh; a watch created after it was given up on is stopped.
 */
import type { KV, KvWatchEntry, KvWatchOptions } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/nats-core';

/** How long one creation may take: milliseconds when its node answers, on a loaded machine too. */
const WATCH_CREATE_MS = 2_000;
/** How long the creations are asked for in all before the last failure is the caller's. */
const WATCH_CREATE_FOR_MS = 20_000;

export type KvWatch = QueuedIterator<KvWatchEntry>;

export async function watchKv(kv: KV, options: KvWatchOptions = {}, forMs = WATCH_CREATE_FOR_MS): Promise<KvWatch> {
  const deadline = Date.now() + forMs;
  for (;;) {
    const creating = kv.watch(options);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), WATCH_CREATE_MS)));
    try {
      const watch = await Promise.race([creating, late]);
      if (watch !== 'late') return watch;
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
      continue;
    } finally {
      clearTimeout(timer);
    }
    creating.then((watch) => watch.stop()).catch(() => undefined);
    if (Date.now() >= deadline) throw new Error(`a KV watch was not created within ${forMs} ms`);
  }
}
