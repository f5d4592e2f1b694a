// Storage sizes are configuration: ensureTopology applies them when it creates a stream or
// bucket and when one already exists with other sizes (an operator changing the limit).
import { expect } from 'vitest';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { topology, topologyNames } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { ensureTopology } from '../src/index.js';

const MiB = 1024 * 1024;

test('max_bytes of the blobs bucket and the events stream, on creation and on a later change', async ({
  natsUrl,
  prefix,
}) => {
  const nc = await connectTestNats(natsUrl);
  try {
    const jsm = await jetstreamManager(nc);
    const names = topologyNames(prefix);
    const sizes = async () => {
      const blobs = (await jsm.streams.info(`OBJ_${names.blobsBucket}`)).config;
      const events = (await jsm.streams.info(names.eventsStream)).config;
      const limits = (await jsm.streams.info(`KV_${names.limitsBucket}`)).config;
      return {
        blobs: [blobs.max_bytes, blobs.discard],
        events: [events.max_bytes, events.discard],
        limits: [limits.max_bytes, limits.discard],
      };
    };
    await ensureTopology(nc, topology(prefix, { blobsMaxBytes: 64 * MiB, eventsMaxBytes: 32 * MiB }));
    // A full store refuses new objects (never drops parts of old ones); a full log drops its oldest events.
    expect(await sizes()).toEqual({
      blobs: [64 * MiB, DiscardPolicy.New],
      events: [32 * MiB, DiscardPolicy.Old],
      limits: [64 * MiB, DiscardPolicy.Old],
    });
    await ensureTopology(nc, topology(prefix, { blobsMaxBytes: 128 * MiB, eventsMaxBytes: 16 * MiB }));
    expect(await sizes()).toEqual({
      blobs: [128 * MiB, DiscardPolicy.New],
      events: [16 * MiB, DiscardPolicy.Old],
      limits: [64 * MiB, DiscardPolicy.Old],
    });
  } finally {
    await nc.close();
  }
});
