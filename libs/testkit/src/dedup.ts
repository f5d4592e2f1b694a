import { jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';

/**
 * Makes `stream` forget message ids after 200 ms, as a new cluster stream leader forgets the id
 * of an append its predecessor proposed: resolve the returned `forgotten()` and an id appended
 * before it is no longer a duplicate. For tests of appends that must be stored once all the same.
 */
export async function forgetMessageIds(nc: NatsConnection, stream: string): Promise<{ forgotten(): Promise<void> }> {
  const jsm = await jetstreamManager(nc);
  const { config } = await jsm.streams.info(stream);
  await jsm.streams.update(stream, { ...config, duplicate_window: nanos(200) });
  return { forgotten: () => new Promise((resolve) => setTimeout(resolve, 500)) };
}
