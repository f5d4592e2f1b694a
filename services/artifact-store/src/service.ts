/**
 * The artifact-store owns tarballs and artifacts: bytes in a JetStream Object Store bucket,
 * digests, one-time download tokens and expiry. So far it ensures its bucket and answers health.
 */
import { configSchema, defineService, natsFields, processFields } from '@perry-hub/runtime';

export const ArtifactStoreConfig = configSchema({ ...natsFields, ...processFields });

export const artifactStore = defineService({
  name: 'artifact-store',
  config: ArtifactStoreConfig,
  needsDb: false,
  start: async () => ({ stop: async () => undefined }),
});
