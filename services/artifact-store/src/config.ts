import Type, { type Static } from 'typebox';
import {
  configSchema,
  publicUrlFields,
  dbFields,
  fromEnv,
  natsFields,
  processFields,
  storageFields,
} from '@perry-hub/runtime';

export const ArtifactStoreConfig = configSchema({
  ...natsFields,
  ...dbFields,
  ...processFields,
  ...storageFields,
  ...publicUrlFields,
  artifactTtlSecs: fromEnv('PERRY_HUB_ARTIFACT_TTL_SECS', Type.Integer({ minimum: 1, default: 600 }), {
    description: 'How long an artifact download link stays valid',
  }),
  orphanGraceMins: fromEnv('PERRY_HUB_ORPHAN_GRACE_MINS', Type.Integer({ minimum: 1, default: 30 }), {
    description:
      'Age after which a tarball without a job record, an upload never submitted, or chunks no object names (an unfinished upload; a tarball a NATS client stored itself, once its job ended) are deleted (longer than PERRY_HUB_REQUEST_TIMEOUT_MS)',
  }),
  sweepIntervalSecs: fromEnv('PERRY_HUB_SWEEP_INTERVAL_SECS', Type.Integer({ minimum: 1, default: 300 }), {
    description: 'How often the artifact-store looks for such orphans',
  }),
});
export type ArtifactStoreConfig = Static<typeof ArtifactStoreConfig>;
