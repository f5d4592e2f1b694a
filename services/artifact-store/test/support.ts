/**
 * A real artifact-store on the test's servers, with a client connection, a MySQL pool, the blobs
 * bucket and the job event log.
 */
import { pino } from 'pino';
import { dbOptions, openPool, type Pool } from '@perry-hub/db';
import { topologyFor, topologyNames } from '@perry-hub/contracts';
import { BlobStore, ensureTopology, launchService, loadConfig, type NatsConnection } from '@perry-hub/runtime';
import { connectTestNats, serviceEnv, type ServiceEnvInput } from '@perry-hub/testkit';
import { artifactStore } from '../src/index.js';

export interface ArtifactStoreHarness {
  nc: NatsConnection;
  db: Pool;
  /** The bucket the store keeps tarballs and artifacts in, through the client connection. */
  blobs: BlobStore;
  close(): Promise<void>;
}

export async function startArtifactStore(input: Required<ServiceEnvInput>): Promise<ArtifactStoreHarness> {
  const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
  const env = serviceEnv(input, { PERRY_HUB_PUBLIC_URL: 'http://hub.test' });
  const service = await launchService(artifactStore, loadConfig(artifactStore.config, env) as never, log);
  const nc = await connectTestNats(input.natsUrl);
  const db = openPool(dbOptions(input.database, 2));
  // The job event log the artifact-store announces artifacts in, as the scheduler makes it.
  await ensureTopology(nc, topologyFor(input.prefix, 'scheduler'));
  return {
    nc,
    db,
    blobs: await BlobStore.open(nc, topologyNames(input.prefix).blobsBucket),
    close: async () => {
      await nc.close();
      await db.end();
      await service.stop();
    },
  };
}
